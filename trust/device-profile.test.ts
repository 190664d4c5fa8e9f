import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import { deviceIdLimits } from '../core/protocol/device-id.js';
import { requireDeviceId } from './device-profile.js';

test('the certificate profile takes exactly the device ids the protocol can carry (core/protocol/device-id.ts)', () => {
  for (const id of ['lab-01', 'a.b_c-d', 'a'.repeat(deviceIdLimits.lengthMax)]) assert.equal(requireDeviceId(id), id);
  // Before the one rule, the profile took these and the gateway could not put them in a frame.
  for (const id of ['Lab-01', 'DEVICE', 'a'.repeat(deviceIdLimits.lengthMax + 1), '', 'a/b']) {
    assert.throws(() => requireDeviceId(id), (e) => SdcError.is(e, 'TRUST_DEVICE_ID_INVALID'), id);
  }
});
