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
