import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../errors/index.js';
import { defaultProtocolLimits, resolveProtocolLimits, type ProtocolLimits } from './limits.js';

test('default limits are the documented values and frozen', () => {
  assert.deepEqual({ ...defaultProtocolLimits }, {
    frameBytesMax: 65_536, depthMax: 32, stringLengthMax: 16_384, arrayLengthMax: 4_096, objectMembersMax: 256,
  });
  assert.ok(Object.isFrozen(defaultProtocolLimits));
  assert.throws(() => { (defaultProtocolLimits as { depthMax: number }).depthMax = 1000; }, TypeError);
});

test('resolveProtocolLimits merges overrides and refuses non-integers', () => {
  const limits = resolveProtocolLimits({ depthMax: 4 });
  assert.equal(limits.depthMax, 4);
  assert.equal(limits.frameBytesMax, defaultProtocolLimits.frameBytesMax);
  assert.ok(Object.isFrozen(limits));
  for (const bad of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => resolveProtocolLimits({ arrayLengthMax: bad }), (e) => SdcError.is(e, 'PROTO_INVALID_ARGUMENT'));
  }
});

test('resolveProtocolLimits hands back what it resolved, and never caches a caller\'s overrides object', () => {
  assert.equal(resolveProtocolLimits(), defaultProtocolLimits);
  const resolved = resolveProtocolLimits({ depthMax: 4 });
  // A session resolves once and passes the result to every parse: no second merge.
  assert.equal(resolveProtocolLimits(resolved), resolved);
  assert.throws(() => { (resolved as { depthMax: number }).depthMax = 1000; }, TypeError);
  // The caller's object may change between calls: each call reads it afresh.
  const overrides: Partial<ProtocolLimits> = { depthMax: 3 };
  const first = resolveProtocolLimits(overrides);
  overrides.depthMax = 5;
  const second = resolveProtocolLimits(overrides);
  assert.deepEqual([first.depthMax, second.depthMax], [3, 5]);
  assert.notEqual(resolveProtocolLimits(overrides), overrides);
  // One caller's overrides never reach another's defaults.
  assert.equal(resolveProtocolLimits({}).depthMax, defaultProtocolLimits.depthMax);
  assert.deepEqual({ ...resolveProtocolLimits({}) }, { ...defaultProtocolLimits });
  // A lookalike of a resolved object (all five limits, not frozen) is still checked and copied.
  const lookalike = { ...defaultProtocolLimits, arrayLengthMax: 1.5 };
  assert.throws(() => resolveProtocolLimits(lookalike), (e) => SdcError.is(e, 'PROTO_INVALID_ARGUMENT'));
});
