// A device's AUTH while the key/value store is down, so that the gateway's `online` write fails
// (issue 15; docs/chaos.md, "Two more things were seen on the way"), on virtual time. Before the
// fix the AUTH task stopped at the failed write: the device's previous session on this gateway
// stayed open, and the control plane was never sent the new session's `online` (no redelivery on
// presence, no compliance facts), although its key came back at the next heartbeat. Pinned here:
// the older session ends at the newer AUTH (close 4001, GATEWAY_SESSION_REPLACED) whatever the
// store says; the owed online reaches the events stream once the store answers, exactly once,
// with the session's id; a blip shorter than the key's TTL does not end the newer session as
// replaced by the older session's lingering key; no online is ever reported for a session
// after it closed; and the policy bundle and OTA notice pushes that failed at AUTH are done once
// the owed online is reported, once each.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { kvKeys } from '../bus-contract/streams.js';
import { otaKeys } from '../bus-contract/ota-keys.js';
import { policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { exampleBodies } from '../../core/protocol/messages/examples.js';
import type { KeyValueStore, SetOptions } from '../stores/kv/kv-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { closeCodes } from './close-codes.js';
import type { GatewayCore } from './gateway-core.js';
import { presenceTtlMs } from './presence.js';
import { connectHeartbeating, makeCore, makeGatewayPki, onVirtualTime, outageKv, presenceSessionOf, settle, StreamReader, VirtualDriver, type GatewayPki, type TestAgent } from './test-support.js';

const heartbeatIntervalMs = 400;
const ttlMs = presenceTtlMs(heartbeatIntervalMs);
const replaced = { code: closeCodes.replaced, reason: 'GATEWAY_SESSION_REPLACED' };

/**
 * The store with a hold on the set-if-absent writes of one key (the refresh that re-creates a
 * missing key): while held, each is parked until `release`, so a test can close a session while
 * its write is out.
 */
function holdingKv(kv: KeyValueStore): { kv: KeyValueStore; hold(key: string): void; parked(): number; release(): void } {
  let holding: string | undefined;
  let parked: Array<() => void> = [];
  const wrapped = new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      if (property !== 'set') return (...args: unknown[]) => method.apply(target, args);
      return (key: string, text: string, opts?: SetOptions) => {
        if (key !== holding || opts?.onlyIfAbsent !== true) return method.call(target, key, text, opts);
        return new Promise((resolve, reject) => parked.push(() => { method.call(target, key, text, opts).then(resolve, reject); }));
      };
    },
  });
  return {
    kv: wrapped, hold: (key) => { holding = key; }, parked: () => parked.length,
    release: () => {
      holding = undefined;
      const waiting = parked;
      parked = [];
      for (const run of waiting) run();
    },
  };
}

describe('an AUTH whose online write fails (key/value store down; virtual time)', () => {
  const driver = new VirtualDriver();
  /** The store itself, read by the test (never cut). */
  const kv = new MemoryKeyValueStore({ clock: driver.time, keyPrefix: `online-outage-${randomBytes(4).toString('hex')}:` });
  const bus = new MemoryStreamBus({ clock: driver.time, scheduler: driver.time });
  const holding = holdingKv(kv);
  const outage = outageKv(holding.kv);
  const events = new StreamReader(bus);
  let gpki: GatewayPki;
  let core: GatewayCore;

  before(async () => {
    gpki = await makeGatewayPki();
    core = makeCore({ bus, kv: outage.kv }, { ...onVirtualTime(driver), heartbeatIntervalMs, ackTimeoutMs: 60_000 });
    await core.start();
  });
  after(async () => {
    outage.setDown(false);
    holding.release();
    await core.stop();
    await bus.close();
    await kv.close();
  });

  const runTo = (atMs: number) => driver.runTo(atMs);

  const keyNames = (deviceId: string) => presenceSessionOf(kv, deviceId);

  /** The presence entries of `sessionId` on the events stream, in order: 'online' or 'offline'. */
  const presenceOf = async (sessionId: string): Promise<string[]> => {
    const entries = await events.poll();
    return entries.flatMap((e) => (e.kind === 'presence' && e.data.session_id === sessionId ? [e.data.online ? 'online' : 'offline'] : []));
  };

  const connect = (deviceId: string, options: { onAuthSent?: () => void; firstBeatMs?: number } = {}) =>
    connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs, ...options });

  it('closes the older session as replaced at the newer AUTH while the store is down', async () => {
    const older = await connect('dev-replaced-in-cut');
    await runTo(driver.time.nowMs() + heartbeatIntervalMs + 20);
    try {
      const newer = await connect('dev-replaced-in-cut', { onAuthSent: () => outage.setDown(true) });
      // Well inside a heartbeat interval: neither the older session's silence deadline nor a refresh explains the close.
      await driver.advance(20);
      assert.deepEqual(older.agent.closed, replaced, 'the older session is still open');
      assert.equal(newer.agent.closed, undefined);
    } finally {
      outage.setDown(false);
    }
  });

  it("reports the newer session's online on the events stream once the store answers, exactly once", async () => {
    const older = await connect('dev-online-owed');
    await runTo(driver.time.nowMs() + 20);
    assert.deepEqual(await presenceOf(older.sessionId), ['online']);
    const newer = await connect('dev-online-owed', { onAuthSent: () => outage.setDown(true) });
    await runTo(newer.readyMs + 4 * heartbeatIntervalMs);
    assert.deepEqual(await presenceOf(newer.sessionId), [], 'reported although the store was down');
    outage.setDown(false);
    const healMs = driver.time.nowMs();
    await runTo(healMs + heartbeatIntervalMs);
    assert.deepEqual(await presenceOf(newer.sessionId), ['online'], 'not reported within one heartbeat of the heal');
    const online = events.entries.find((e) => e.kind === 'presence' && e.data.session_id === newer.sessionId);
    assert.ok(online?.kind === 'presence');
    assert.equal(online.data.device_id, 'dev-online-owed');
    assert.equal(online.data.gateway_id, core.gatewayId);
    assert.equal(online.data.last_command_seq, 0);
    assert.equal(online.data.agent_version, 'test');
    assert.equal(await keyNames('dev-online-owed'), newer.sessionId);
    await runTo(healMs + 6 * heartbeatIntervalMs);
    assert.deepEqual(await presenceOf(newer.sessionId), ['online'], 'reported more than once');
    assert.equal(newer.agent.closed, undefined);
    assert.deepEqual(older.agent.closed, replaced);
    assert.equal((await presenceOf(older.sessionId)).at(0), 'online');
  });

  it("after a cut shorter than the key's TTL, the newer session takes the key from the one it replaced (not closed as replaced)", async () => {
    const older = await connect('dev-short-cut');
    // Just after the older session's heartbeat refreshed its key: it lives a TTL from there.
    const refreshedMs = older.readyMs + heartbeatIntervalMs;
    await runTo(refreshedMs + 10);
    assert.equal(await keyNames('dev-short-cut'), older.sessionId);
    const newer = await connect('dev-short-cut', { onAuthSent: () => outage.setDown(true), firstBeatMs: 100 });
    await runTo(newer.readyMs + 50);
    outage.setDown(false);
    await settle();
    assert.equal(newer.readyMs + 100 < refreshedMs + ttlMs, true, 'the test needs the older key alive at the newer first heartbeat');
    assert.equal(await keyNames('dev-short-cut'), older.sessionId, 'the older session\'s key was expected to linger');
    await runTo(newer.readyMs + 100 + 20);
    assert.equal(newer.agent.closed, undefined, `the newer session was closed: ${JSON.stringify(newer.agent.closed)}`);
    assert.equal(await keyNames('dev-short-cut'), newer.sessionId);
    assert.deepEqual(await presenceOf(newer.sessionId), ['online']);
    await runTo(newer.readyMs + 100 + 4 * heartbeatIntervalMs);
    assert.equal(newer.agent.closed, undefined);
    assert.equal(await keyNames('dev-short-cut'), newer.sessionId);
    assert.deepEqual(await presenceOf(newer.sessionId), ['online']);
  });

  it('never reports online for a session that closed during the cut', async () => {
    const session = await connect('dev-closed-in-cut', { onAuthSent: () => outage.setDown(true) });
    await runTo(session.readyMs + 2 * heartbeatIntervalMs);
    session.handle.transportClosed();
    await runTo(driver.time.nowMs() + heartbeatIntervalMs);
    outage.setDown(false);
    await runTo(driver.time.nowMs() + 6 * heartbeatIntervalMs);
    assert.equal((await presenceOf(session.sessionId)).includes('online'), false);
    assert.equal(await keyNames('dev-closed-in-cut'), null);
  });

  it('a session closed while the refresh that re-creates its key is out reports its offline, and no online before or after it', async () => {
    const session = await connect('dev-closed-in-claim', { onAuthSent: () => outage.setDown(true), firstBeatMs: heartbeatIntervalMs + 100 });
    await runTo(session.readyMs + heartbeatIntervalMs);
    outage.setDown(false);
    holding.hold(kvKeys.presence('dev-closed-in-claim'));
    try {
      await driver.until(() => (holding.parked() > 0 ? true : undefined), 2 * heartbeatIntervalMs, 'the refresh that re-creates the key');
      session.handle.transportClosed();
    } finally {
      holding.release();
    }
    await runTo(driver.time.nowMs() + 4 * heartbeatIntervalMs);
    assert.deepEqual(await presenceOf(session.sessionId), ['offline']);
    assert.equal(await keyNames('dev-closed-in-claim'), null);
  });

  it('sends the policy bundle and the OTA notice that failed at AUTH once the owed online is reported, once each', async () => {
    const deviceId = 'dev-pushes-owed';
    const nowMs = driver.time.nowMs();
    const signed = exampleBodies.POLICY_BUNDLE.signed;
    // Current (well within half its validity), so AUTH sends it and asks for none.
    await kv.set(policyBundleKeys.bundle(deviceId), canonicalize({ ...signed, bundle: { ...signed.bundle, device_id: deviceId, issued_at: nowMs, expires_at: nowMs + 7 * 24 * 3600_000 } }));
    await kv.set(otaKeys.notice(deviceId), canonicalize(exampleBodies.OTA_NOTICE));
    const received = (agent: TestAgent, type: string) => agent.events.filter((e) => e.kind === 'message' && e.message.type === type).length;
    const session = await connect(deviceId, { onAuthSent: () => outage.setDown(true) });
    await runTo(session.readyMs + 2 * heartbeatIntervalMs);
    assert.deepEqual([received(session.agent, 'POLICY_BUNDLE'), received(session.agent, 'OTA_NOTICE')], [0, 0], 'pushed although the store was down');
    outage.setDown(false);
    const healMs = driver.time.nowMs();
    await runTo(healMs + heartbeatIntervalMs);
    assert.deepEqual(await presenceOf(session.sessionId), ['online']);
    assert.deepEqual([received(session.agent, 'POLICY_BUNDLE'), received(session.agent, 'OTA_NOTICE')], [1, 1], 'not pushed within one heartbeat of the heal');
    await runTo(healMs + 5 * heartbeatIntervalMs);
    assert.deepEqual([received(session.agent, 'POLICY_BUNDLE'), received(session.agent, 'OTA_NOTICE')], [1, 1], 'pushed more than once');
    assert.equal(session.agent.closed, undefined);
  });
});
