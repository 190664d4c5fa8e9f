import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { busEntrySchemas, decodeBusEntry, encodeBusEntry, telemetryEntryIsCanonical } from './entries.js';

test('entries round-trip through their bus fields', () => {
  const data = { device_id: 'dev-1', gateway_id: 'gw-1', session_id: 's1', online: true, at_ms: 5 };
  const fields = encodeBusEntry('presence', data);
  assert.deepEqual(decodeBusEntry(fields), { kind: 'presence', data });
});

test('an invalid entry is refused on encode and on decode', () => {
  assert.throws(() => encodeBusEntry('presence', { device_id: 'BAD ID' } as never), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
  assert.throws(() => decodeBusEntry({ kind: 'presence', data: '{"device_id":"dev-1"}' }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
  assert.throws(() => decodeBusEntry({ kind: 'nope', data: '{}' }), (e) => SdcError.is(e, 'PROTO_UNKNOWN_TYPE'));
  assert.throws(() => decodeBusEntry({ kind: 'presence' }), (e) => SdcError.is(e));
});

test('arbitrary fields never throw anything but typed errors', () => {
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('kind', 'data', 'x'), fc.string()), (fields) => {
    try { decodeBusEntry(fields); } catch (e) { assert.ok(SdcError.is(e)); }
  }), { numRuns: 500 });
});

test('a telemetry entry carries its frame in a field of its own, verbatim, and decodes to the same value', () => {
  const frame = '{"body":{"metrics":{"cpu_pct":1}},"device_id":"dev-1","sig":{"alg":"x"},"type":"TELEMETRY"}';
  const data = { device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 5, frame };
  const fields = encodeBusEntry('telemetry', data);
  assert.deepEqual(Object.keys(fields).sort(), ['data', 'frame', 'kind']);
  assert.equal(fields.frame, frame, 'the frame text as given, not escaped');
  assert.equal(fields.data, '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5}');
  assert.deepEqual(decodeBusEntry(fields), { kind: 'telemetry', data });
  // The form appended before this change (the frame as a string inside data) still decodes the same.
  assert.deepEqual(decodeBusEntry({ kind: 'telemetry', data: JSON.stringify(data) }), { kind: 'telemetry', data });
});

test("a command's device frames (command_progress with an ACK, command_result) travel in a field of their own; entries without a frame stay whole", () => {
  const frame = '{"body":{"command_id":"c1","stage":"received"},"device_id":"dev-1","sig":{"alg":"x"},"type":"COMMAND_ACK"}';
  const ack = { command_id: 'c1', device_id: 'dev-1', gateway_id: 'gw-1', at_ms: 5, event: 'ack' as const, attempt: 1, frame, traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` };
  const result = { command_id: 'c1', device_id: 'dev-1', gateway_id: 'gw-1', at_ms: 6, frame: frame.replace('COMMAND_ACK', 'COMMAND_RESULT') };
  for (const [kind, data] of [['command_progress', ack], ['command_result', result]] as const) {
    const fields = encodeBusEntry(kind, data);
    assert.deepEqual(Object.keys(fields).sort(), ['data', 'frame', 'kind'], kind);
    assert.equal(fields.frame, data.frame, 'the frame text as given, not escaped');
    const { frame: _frame, ...rest } = data;
    assert.equal(fields.data, canonicalize(rest));
    assert.deepEqual(decodeBusEntry(fields), { kind, data });
    // The form appended before this change (the frame as a string inside data) still decodes the same.
    assert.deepEqual(decodeBusEntry({ kind, data: canonicalize(data) }), { kind, data });
    // Both at once is refused, as for telemetry.
    assert.throws(() => decodeBusEntry({ kind, data: canonicalize(data), frame }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
  }
  const deliver = { command_id: 'c1', device_id: 'dev-1', gateway_id: 'gw-1', at_ms: 5, event: 'deliver' as const, attempt: 1 };
  const fields = encodeBusEntry('command_progress', deliver);
  assert.deepEqual(fields, { kind: 'command_progress', data: canonicalize(deliver) });
  assert.deepEqual(decodeBusEntry(fields), { kind: 'command_progress', data: deliver });
});

test('an ack or start without the device frame is refused COMMAND_ACK_UNSIGNED on encode and decode, in either form; the gateway\'s own events need none', () => {
  const base = { command_id: 'c1', device_id: 'dev-1', gateway_id: 'gw-1', at_ms: 5, attempt: 1 };
  const unsigned = (run: () => unknown) => assert.throws(run, (e) => SdcError.is(e, 'COMMAND_ACK_UNSIGNED'));
  for (const event of ['ack', 'start'] as const) {
    unsigned(() => encodeBusEntry('command_progress', { ...base, event }));
    // No frame field, no frame in data: the same text in both forms.
    unsigned(() => decodeBusEntry({ kind: 'command_progress', data: canonicalize({ ...base, event }) }));
  }
  for (const event of ['deliver', 'dead_letter', 'requeue'] as const) {
    assert.deepEqual(decodeBusEntry(encodeBusEntry('command_progress', { ...base, event })), { kind: 'command_progress', data: { ...base, event } });
  }
});

test('a frame field is refused on a kind that does not carry one, beside a frame in data, or with data that is not an object', () => {
  const frame = '{"type":"ALERT"}';
  const refused = (fields: Record<string, string>) => assert.throws(() => decodeBusEntry(fields), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
  refused({ kind: 'ota_report', data: '{"at_ms":1,"device_id":"dev-1","gateway_id":"gw-1"}', frame });
  refused({ kind: 'telemetry', data: JSON.stringify({ device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 5, frame }), frame });
  refused({ kind: 'telemetry', data: '[1]', frame });
  refused({ kind: 'telemetry', data: 'null', frame });
  // The frame field alone is checked by the schema like the member was (a string within its length).
  refused({ kind: 'telemetry', data: '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5}', frame: 'x'.repeat(65_537) });
});

test('arbitrary fields with a frame field never throw anything but typed errors', () => {
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('kind', 'data', 'frame'), fc.oneof(fc.string(), fc.constantFrom('telemetry', 'presence', '{}', '[]', '{"frame":"x"}'))), (fields) => {
    try { decodeBusEntry(fields); } catch (e) { assert.ok(SdcError.is(e)); }
  }), { numRuns: 500 });
});

/**
 * The telemetry entry's shortcut (issue 17): encodeBusEntry writes, and decodeBusEntry reads, the
 * telemetry entry without the general canonicalize, strict parse and schema check when it is in
 * the exact form a gateway writes. These pin that the shortcut is taken for that form and that
 * every input, in that form or not, gives what the general path gives: the same fields, the same
 * value or the same typed refusal.
 */
const telemetryCheck = TypeCompiler.Compile(busEntrySchemas.telemetry);

/** encodeBusEntry('telemetry', ...) as the general path alone computes it: the schema, then canonical JSON of all but the frame. */
function encodeTelemetryGeneral(data: Record<string, unknown>): Record<string, string> | 'PROTO_SCHEMA_INVALID' {
  if (!telemetryCheck.Check(data)) return 'PROTO_SCHEMA_INVALID';
  const { frame, ...rest } = data;
  return { kind: 'telemetry', data: canonicalize(rest), frame: frame as string };
}

/** decodeBusEntry of a telemetry entry with a frame field as the general path alone computes it. */
function decodeTelemetryGeneral(dataText: string, frame: string): unknown {
  try {
    const parsed = parseStrictJson(dataText, { frameBytesMax: 256 * 1024 });
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.hasOwn(parsed, 'frame')) return 'PROTO_SCHEMA_INVALID';
    const data = { ...parsed, frame };
    return telemetryCheck.Check(data) ? { kind: 'telemetry', data } : 'PROTO_SCHEMA_INVALID';
  } catch (error) {
    return SdcError.is(error) ? error.code : error;
  }
}

const outcomeOf = (run: () => unknown): unknown => {
  try {
    return run();
  } catch (error) {
    return SdcError.is(error) ? error.code : error;
  }
};

const idLike = fc.oneof(
  fc.constantFrom('dev-1', 'gw-1', 'a', 'A', 'Dev-1', 'x'.repeat(64), 'x'.repeat(65), '', '-dev', 'dev 1', 'dev"1', 'dev\\1', 'dév', 'dev\u0000', '.gw', '_gw'),
  fc.stringMatching(/^[A-Za-z0-9._-]{0,66}$/),
  fc.string({ maxLength: 8 }),
);
const msLike = fc.oneof(fc.constantFrom(0, -0, 5, -1, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 1e21, Number.NaN, Number.POSITIVE_INFINITY), fc.integer(), fc.double());
const frameLike = fc.oneof(fc.constantFrom('{"type":"TELEMETRY"}', '', 'x'.repeat(65_536), 'x'.repeat(65_537), `${'x'.repeat(65_534)}\u{1F600}`), fc.string({ maxLength: 40 }));

test('a telemetry entry in the form a gateway writes takes the shortcut both ways', () => {
  const fields = encodeBusEntry('telemetry', { device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 1_733_360_000_000, frame: '{"type":"TELEMETRY"}' });
  assert.equal(fields.data, '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":1733360000000}');
  assert.ok(telemetryEntryIsCanonical(fields));
  // Another spelling of the same JSON is read by the general path, to the same value.
  const spaced = { ...fields, data: '{ "device_id": "dev-1", "gateway_id": "gw-1", "received_at_ms": 1733360000000 }' };
  assert.equal(telemetryEntryIsCanonical(spaced), false);
  assert.deepEqual(decodeBusEntry(spaced), decodeBusEntry({ ...fields }));
});

test('encodeBusEntry writes every telemetry value as the general path does, or refuses it the same way', () => {
  fc.assert(fc.property(idLike, idLike, msLike, frameLike, fc.boolean(), (deviceId, gatewayId, receivedAtMs, frame, extra) => {
    const data: Record<string, unknown> = { device_id: deviceId, gateway_id: gatewayId, received_at_ms: receivedAtMs, frame, ...(extra ? { x: 1 } : {}) };
    assert.deepEqual(outcomeOf(() => encodeBusEntry('telemetry', data as never)), encodeTelemetryGeneral(data));
  }), { numRuns: 2_000 });
  // Members missing, inherited, hidden or of another type, never written by the shortcut.
  const hidden = { device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 5 };
  Object.defineProperty(hidden, 'frame', { value: 'f', enumerable: false });
  for (const data of [{ device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 5 }, Object.assign(Object.create({ frame: 'f' }), { device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: 5 }), hidden, { device_id: 'dev-1', gateway_id: 'gw-1', received_at_ms: '5', frame: 'f' }]) {
    assert.deepEqual(outcomeOf(() => encodeBusEntry('telemetry', data as never)), outcomeOf(() => encodeTelemetryGeneral(data)));
  }
});

test('decodeBusEntry reads every telemetry data text and frame as the general path does, or refuses it with the same code', () => {
  const canonical = (deviceId: string, gatewayId: string, ms: string) => `{"device_id":"${deviceId}","gateway_id":"${gatewayId}","received_at_ms":${ms}}`;
  const dataLike = fc.oneof(
    fc.tuple(idLike, idLike, fc.oneof(fc.constantFrom('0', '-0', '5', '05', '5.0', '1e3', '9007199254740991', '9007199254740992', '9999999999999999', '99999999999999999', '-1', '"5"', 'null'), fc.nat().map(String)))
      .map(([d, g, ms]) => canonical(d, g, ms)),
    fc.constantFrom(
      '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5,"x":1}', '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5,"frame":"f"}',
      '{"gateway_id":"gw-1","device_id":"dev-1","received_at_ms":5}', '{"device_id":"dev-1","device_id":"dev-2","gateway_id":"gw-1","received_at_ms":5}',
      '{"device_id":"\\u0064ev-1","gateway_id":"gw-1","received_at_ms":5}', ' {"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5}',
      '{"device_id":"dev-1","gateway_id":"gw-1","received_at_ms":5}\n', '{"device_id":"dev-1","gateway_id":"gw-1"}', '[]', 'null', '',
    ),
    fc.string({ maxLength: 60 }),
  );
  fc.assert(fc.property(dataLike, frameLike, (dataText, frame) => {
    assert.deepEqual(outcomeOf(() => decodeBusEntry({ kind: 'telemetry', data: dataText, frame })), decodeTelemetryGeneral(dataText, frame));
  }), { numRuns: 3_000 });
});
