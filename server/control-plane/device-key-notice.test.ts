import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { revocationChannel, type RevocationNotice } from '../bus-contract/streams.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { deviceFrame, makeHarness, sqlJsTarget, type Harness } from './test-support.js';

/**
 * verifyDeviceFrame caches a device's key and status (docs/decisions/0008). Changes made by
 * another control plane on the same stores reach this one through the revocation notice (a
 * revocation) or a fresh read when a signature fails under the cached key (a renewal). Here the
 * "other control plane" is SQL changed directly plus the notice it would publish.
 */
describe('device key cache across control planes', () => {
  const target = sqlJsTarget;
  const provider = createNodeEd25519Provider();
  const device = 'dev-notice';
  let h: Harness;
  const seedOf = (fill: number) => new Uint8Array(32).fill(fill);
  const alertFrame = (seed: Uint8Array) => deviceFrame({ deviceId: device, seed, type: 'ALERT', ts: h.clock.nowMs(), body: { severity: 'warning', kind: 'risk_score', message: 'test alert' } });
  const refusal = async (frame: string) => h.cp.devices.verifyDeviceFrame(device, frame, 'ALERT').then(() => 'accepted', (error: unknown) => (SdcError.is(error) ? error.code : String(error)));

  before(async () => {
    h = await makeHarness(target);
    await h.cp.devices.start();
    await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
      [device, h.clock.nowMs(), base64urlFromBytes(provider.publicKeyFromSeed(seedOf(1)))]);
  });
  after(async () => {
    await h.close();
    await target.cleanup();
  });

  it('a key renewed elsewhere: the frame signed with the new key is accepted within the TTL (a fresh read after the failure)', async () => {
    assert.equal(await refusal(alertFrame(seedOf(1))), 'accepted');
    await h.db.execute('UPDATE devices SET public_key = ? WHERE id = ?', [base64urlFromBytes(provider.publicKeyFromSeed(seedOf(2))), device]);
    assert.equal(await refusal(alertFrame(seedOf(2))), 'accepted');
    assert.equal(await refusal(alertFrame(seedOf(1))), 'CRYPTO_SIGNATURE_INVALID', 'the old key no longer verifies');
  });

  it('a revocation elsewhere: refused as soon as its notice arrives, not after the TTL', async () => {
    assert.equal(await refusal(alertFrame(seedOf(2))), 'accepted');
    await h.db.execute("UPDATE devices SET status = 'revoked' WHERE id = ?", [device]);
    // Without the notice, the cached row stands until the TTL (the bound for a lost notice).
    assert.equal(await refusal(alertFrame(seedOf(2))), 'accepted');
    const notice: RevocationNotice = { device_id: device, serials: ['1f'] };
    await h.cp.context.kv.publish(revocationChannel, JSON.stringify(notice));
    let code = 'accepted';
    for (let i = 0; i < 100 && code === 'accepted'; i += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      code = await refusal(alertFrame(seedOf(2)));
    }
    assert.equal(code, 'API_DEVICE_REVOKED');
  });
});
