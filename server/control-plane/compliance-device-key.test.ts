import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { signEnvelope } from '../../core/protocol/envelope.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { DeviceKeyCache } from './device-key-cache.js';
import { makeHarness, sqlJsTargetCountingReads, type Harness } from './test-support.js';

/**
 * Issue 17: the compliance read at a device's AUTH reads its devices row already; it reads the
 * key and status with the certificate expiry and keeps them for the device's frames, so the
 * policy bundle report that follows every AUTH does not read the row again (2,000 reads of about
 * 100 µs at the start-up of 2,000 simulated agents). A revocation after that read still refuses.
 */
describe('the compliance read keeps the device key for its frames', () => {
  const provider = createNodeEd25519Provider();
  const deviceSeed = new Uint8Array(32).fill(5);
  let h: Harness;
  let keyReads = 0;
  let frameSeq = 0;

  /** Counts the device-key reads of verifyDeviceFrame (DeviceService.#readDeviceKeys). */
  const counting = sqlJsTargetCountingReads('SELECT id, public_key, status FROM devices', () => { keyReads += 1; });

  /** A frame signed with the device's key (not MAC'd: verified against the enrolled key). */
  const signedFrame = (deviceId: string): string => {
    frameSeq += 1;
    return canonicalize(signEnvelope({
      fields: {
        v: 1, type: 'TELEMETRY', id: `t${frameSeq}`, device_id: deviceId, session_id: 's1', seq: frameSeq, ts: h.clock.nowMs(),
        body: { sampled_at: h.clock.nowMs(), metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } },
      },
      kid: deviceKid(deviceId), seed: deviceSeed, provider,
    }));
  };
  const outcome = async (deviceId: string) => h.cp.devices.verifyDeviceFrame(deviceId, signedFrame(deviceId), 'TELEMETRY')
    .then(() => 'accepted', (error: unknown) => (SdcError.is(error) ? error.code : String(error)));
  const addDevice = (deviceId: string, serial: string) => h.db.execute(
    "INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
    [deviceId, h.clock.nowMs(), serial, h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(deviceSeed))],
  );

  before(async () => {
    h = await makeHarness(counting);
    await h.cp.devices.start();
    await addDevice('dev-ck-1', '1c');
    await addDevice('dev-ck-2', '2c');
  });
  after(async () => {
    await h.close();
    await counting.cleanup();
  });

  it("a device's report at AUTH, then its signed frame: verified without a read of its row", async () => {
    keyReads = 0;
    await h.cp.compliance.record('dev-ck-1', { agent_version: '1.0.0' }, h.clock.nowMs(), 'soon');
    assert.equal(await outcome('dev-ck-1'), 'accepted');
    assert.equal(keyReads, 0);
    // Past the cache's time to live the row is read again, as before.
    h.clock.advance(60_000);
    assert.equal(await outcome('dev-ck-1'), 'accepted');
    assert.equal(keyReads, 1);
  });

  it('a revocation after the compliance read: the frame is refused', async () => {
    await h.cp.compliance.record('dev-ck-2', { agent_version: '1.0.0' }, h.clock.nowMs(), 'soon');
    await h.cp.devices.revoke({ actor: 'root', deviceId: 'dev-ck-2', reason: 'keyCompromise' });
    assert.equal(await outcome('dev-ck-2'), 'API_DEVICE_REVOKED');
  });
});

describe('DeviceKeyCache.keep', () => {
  it('keeps a row read elsewhere since the mark, unless an invalidation came in between', async () => {
    let nowMs = 1_000;
    let loads = 0;
    const cache = new DeviceKeyCache({ nowMs: () => nowMs }, async () => {
      loads += 1;
      return { publicKey: null, revoked: false };
    });
    const record = { publicKey: new Uint8Array(32).fill(1), revoked: false };
    const fresh = cache.mark();
    cache.keep('dev-a', record, fresh);
    assert.equal(await cache.get('dev-a'), record);
    assert.equal(loads, 0);
    const stale = cache.mark();
    cache.invalidate();
    cache.keep('dev-b', record, stale);
    assert.deepEqual(await cache.get('dev-b'), { publicKey: null, revoked: false });
    assert.equal(loads, 1);
    // Kept as read at the mark: its time to live runs from then.
    const early = cache.mark();
    nowMs += 20_000;
    cache.keep('dev-c', record, early);
    await cache.get('dev-c');
    assert.equal(loads, 2);
  });
});
