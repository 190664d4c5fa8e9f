import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../../core/errors/index.js';
import { decodeBusEntry, encodeBusEntry } from './entries.js';

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
