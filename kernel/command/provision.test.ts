import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { kernelKeyRotationInput, kernelProvisionLayout } from '../../core/protocol/kernel-key-rotation.js';
import { COMMAND_KEYS_MAX, Layout } from '../generated/contract.js';
import { encodeProvisionBody, provisionRotationInput } from './provision.js';

// The control plane signs kernel key rotations with core's encoding (server/ cannot import
// kernel/); it must be the kernel contract's, byte for byte, or no rotation would ever verify.
test('core\'s kernel rotation input is the kernel\'s own, for any device id and key set', () => {
  assert.equal(kernelProvisionLayout.bodyBytes, Layout.ProvisionRequest.rotationSignature.offset);
  assert.equal(kernelProvisionLayout.keysMax, COMMAND_KEYS_MAX);
  assert.equal(kernelProvisionLayout.keysOffset, Layout.ProvisionRequest.keys.offset);
  assert.equal(kernelProvisionLayout.keyCountOffset, Layout.ProvisionRequest.keyCount.offset);
  assert.equal(kernelProvisionLayout.deviceIdBytes, Layout.ProvisionRequest.deviceId.bytes);
  fc.assert(fc.property(
    fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
    fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: COMMAND_KEYS_MAX }),
    (deviceId, keys) => {
      assert.deepEqual(kernelKeyRotationInput({ deviceId, keys }), provisionRotationInput(encodeProvisionBody({ deviceId, keys })));
    },
  ), { numRuns: 200 });
});
