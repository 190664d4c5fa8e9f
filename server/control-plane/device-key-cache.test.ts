import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceKeyCache, deviceKeyCacheLimits, type DeviceKeyRecord } from './device-key-cache.js';

const key = new Uint8Array(32).fill(7);

function setup() {
  let nowMs = 1_000_000;
  const rows = new Map<string, DeviceKeyRecord>([['d1', { publicKey: key, revoked: false }]]);
  const loads: string[] = [];
  let pending: (() => void) | undefined;
  let holdNext = false;
  const cache = new DeviceKeyCache({ nowMs: () => nowMs }, async (deviceId) => {
    loads.push(deviceId);
    const row = rows.get(deviceId) ?? { publicKey: null, revoked: false };
    if (holdNext) {
      holdNext = false;
      await new Promise<void>((resolve) => { pending = resolve; });
    }
    return row;
  });
  return {
    cache, rows, loads,
    advance: (ms: number) => { nowMs += ms; },
    holdNextLoad: () => { holdNext = true; },
    releaseLoad: () => pending?.(),
  };
}

describe('DeviceKeyCache (verifyDeviceFrame without a SQL read per sample)', () => {
  it('reads a device row once per TTL, however many frames ask', async () => {
    const t = setup();
    for (let i = 0; i < 100; i++) assert.equal((await t.cache.get('d1')).publicKey, key);
    assert.deepEqual(t.loads, ['d1']);
    t.advance(deviceKeyCacheLimits.ttlMs);
    await t.cache.get('d1');
    assert.deepEqual(t.loads, ['d1', 'd1'], 'read again once the TTL has passed');
  });

  it('sees a revocation made here at once: invalidate drops every entry', async () => {
    const t = setup();
    assert.equal((await t.cache.get('d1')).revoked, false);
    t.rows.set('d1', { publicKey: key, revoked: true });
    t.cache.invalidate();
    assert.equal((await t.cache.get('d1')).revoked, true);
  });

  it('never stores a row read before an invalidation (the read raced the revocation)', async () => {
    const t = setup();
    t.holdNextLoad();
    const racing = t.cache.get('d1');
    await Promise.resolve();
    t.rows.set('d1', { publicKey: key, revoked: true });
    t.cache.invalidate();
    t.releaseLoad();
    assert.equal((await racing).revoked, false, 'the racing read answers what it read');
    assert.equal((await t.cache.get('d1')).revoked, true, 'but did not poison the cache');
    assert.deepEqual(t.loads, ['d1', 'd1']);
  });

  it('shares one read among the frames of a device that miss at once (an ACK and a RESULT together)', async () => {
    const t = setup();
    t.holdNextLoad();
    const both = [t.cache.get('d1'), t.cache.get('d1')];
    await Promise.resolve();
    t.releaseLoad();
    assert.deepEqual((await Promise.all(both)).map((r) => r.publicKey), [key, key]);
    assert.deepEqual(t.loads, ['d1']);
  });

  it('reload reads the row again within the TTL (a key renewed by another control plane) and keeps what it read', async () => {
    const t = setup();
    await t.cache.get('d1');
    const renewed = new Uint8Array(32).fill(9);
    t.rows.set('d1', { publicKey: renewed, revoked: false });
    assert.equal((await t.cache.get('d1')).publicKey, key, 'still the cached row');
    assert.equal((await t.cache.reload('d1')).publicKey, renewed);
    assert.equal((await t.cache.get('d1')).publicKey, renewed, 'the fresh row is cached');
    assert.deepEqual(t.loads, ['d1', 'd1']);
  });
});
