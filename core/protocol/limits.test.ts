import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../errors/index.js';
import { defaultProtocolLimits, resolveProtocolLimits } from './limits.js';

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
