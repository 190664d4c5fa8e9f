import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { revocationChannel, type RevocationNotice } from '../bus-contract/streams.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { makeHarness, sqlJsTargetCountingReads, type Harness } from './test-support.js';

/**
 * Issue 17: a TELEMETRY frame the gateway checked under the session MAC needs only the device's
 * revoked flag, which every revocation drops from the device-key cache at once (this control
 * plane's revoke, another's notice). So the samples of a session do not read the devices row
 * each (a sample every 60 s outlived the 10 s TTL: 188 of 200 samples read it), and a revoked
 * device's samples are still refused from the moment of the revocation.
 */
describe('MAC-checked telemetry and the devices row', () => {
  const provider = createNodeEd25519Provider();
  const sessionCrypto = createNodeSessionKeyCrypto();
  const macKey = new Uint8Array(32).fill(3);
  const telemetryIntervalMs = 60_000;
  let h: Harness;
  let keyReads = 0;
  let frameSeq = 0;

  /** Counts the batched device-key reads (DeviceService.#readDeviceKeys) on the control plane's database. */
  const counting = sqlJsTargetCountingReads('SELECT id, public_key, status FROM devices', () => { keyReads += 1; });

  const sample = (deviceId: string) => {
    frameSeq += 1;
    const envelope = macEnvelope({
      fields: {
        v: 1, type: 'TELEMETRY', id: `t${frameSeq}`, device_id: deviceId, session_id: 's1', seq: frameSeq, ts: h.clock.nowMs(),
        body: { sampled_at: h.clock.nowMs(), metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } },
      },
      key: macKey, crypto: sessionCrypto,
    });
    return canonicalize(envelope);
  };
  const outcome = async (deviceId: string) => h.cp.devices.verifyDeviceFrame(deviceId, sample(deviceId), 'TELEMETRY', { gatewayAuthenticated: true })
    .then(() => 'accepted', (error: unknown) => (SdcError.is(error) ? error.code : String(error)));
  const addDevice = (deviceId: string, serial: string) => h.db.execute(
    "INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
    [deviceId, h.clock.nowMs(), serial, h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(1)))],
  );

  before(async () => {
    h = await makeHarness(counting);
    await h.cp.devices.start();
    await addDevice('dev-mac-1', '1a');
    await addDevice('dev-mac-2', '2b');
  });
  after(async () => {
    await h.close();
    await counting.cleanup();
  });

  it('one read of the devices row for ten samples a minute apart', async () => {
    keyReads = 0;
    for (let i = 0; i < 10; i += 1) {
      assert.equal(await outcome('dev-mac-1'), 'accepted');
      h.clock.advance(telemetryIntervalMs);
    }
    assert.equal(keyReads, 1);
  });

  it('a revocation here: the next sample is refused, within the hold', async () => {
    assert.equal(await outcome('dev-mac-1'), 'accepted');
    await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-mac-1', reason: 'keyCompromise' });
    assert.equal(await outcome('dev-mac-1'), 'API_DEVICE_REVOKED');
  });

  it("another control plane's revocation: refused as soon as its notice arrives", async () => {
    assert.equal(await outcome('dev-mac-2'), 'accepted');
    await h.db.execute("UPDATE devices SET status = 'revoked' WHERE id = ?", ['dev-mac-2']);
    const notice: RevocationNotice = { device_id: 'dev-mac-2', serials: ['2b'] };
    await h.cp.context.kv.publish(revocationChannel, JSON.stringify(notice));
    let code = 'accepted';
    for (let i = 0; i < 100 && code === 'accepted'; i += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      code = await outcome('dev-mac-2');
    }
    assert.equal(code, 'API_DEVICE_REVOKED');
  });
});
