// A presence key that lapsed while its session lived (docs/gateway.md, "Presence and its bound",
// 2026-12-05): on a busy gateway the key (TTL 1.5 heartbeat intervals) can expire before the next
// heartbeat is read, and the refresh that reads it writes the key again. A device list read in
// between showed the device offline, and before this change no event ever said it was back. Now
// that refresh appends one `online` entry (reason presenceRestoredReason): exactly one per lapse,
// none for a refresh that finds its own record. On virtual time; the key/value store is the memory
// store (TTLs on the virtual clock: a real lapse by expiry, a stalled gateway), ioredis-mock and,
// with REDIS_URL, real Redis (their TTLs run on the wall clock: the lapse is the key deleted, as its
// expiry would, and the interval is long enough that no real TTL runs out during the test).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { StallingScheduler } from '../../core/time/stalling-scheduler.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { DecodedBusEntry } from '../bus-contract/entries.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { presenceRestoredReason, presenceTtlMs } from './presence.js';
import type { GatewayCore } from './gateway-core.js';
import {
  connectHeartbeating, makeCore, makeGatewayPki, onVirtualTime, presenceSessionOf, settle, StreamReader, TestAgent, VirtualDriver, type GatewayPki,
} from './test-support.js';

const redisUrl = process.env['REDIS_URL'];

/** The presence entries of `deviceId` on the events stream, as [online, reason]. */
function presenceOf(entries: readonly DecodedBusEntry[], deviceId: string): Array<[boolean, string | undefined]> {
  return entries.flatMap((e) => (e.kind === 'presence' && e.data.device_id === deviceId ? [[e.data.online, e.data.reason] as [boolean, string | undefined]] : []));
}

interface KvVariant {
  readonly name: string;
  open(driver: VirtualDriver): KeyValueStore;
}

const variants: KvVariant[] = [
  { name: 'the memory store (virtual clock)', open: (driver) => new MemoryKeyValueStore({ clock: driver.time, keyPrefix: `lapse-${randomBytes(4).toString('hex')}:` }) },
  { name: 'ioredis-mock', open: () => createEmbeddedKeyValueStore({ keyPrefix: `lapse-${randomBytes(4).toString('hex')}:` }) },
];
const redisPrefix = testKeyPrefix('presence-lapse');
if (redisUrl !== undefined && redisUrl !== '') {
  variants.push({ name: 'Redis', open: () => createRedisKeyValueStore({ url: redisUrl, keyPrefix: redisPrefix }) });
  after(() => deleteKeysWithPrefix(redisUrl, redisPrefix));
}
// Without REDIS_URL the Redis variant is not run; the memory store and ioredis-mock cover the same steps.

/** A long interval: 60 s of virtual time passes in a few timer firings, and a wall-clock TTL of 90 s never runs out in a test. */
const heartbeatIntervalMs = 60_000;

for (const variant of variants) {
  describe(`a lapsed presence key written again by a refresh, on ${variant.name}`, () => {
    it('appends one online entry per lapse, and none for the refreshes that find the key', async () => {
      const driver = new VirtualDriver();
      const kv = variant.open(driver);
      const bus = new MemoryStreamBus({ clock: driver.time, scheduler: driver.time });
      const gpki = await makeGatewayPki();
      const core = makeCore({ bus, kv }, { ...onVirtualTime(driver), heartbeatIntervalMs, ackTimeoutMs: 600_000 });
      await core.start();
      try {
        const events = new StreamReader(bus);
        const deviceId = 'dev-lapse';
        const { agent, sessionId, readyMs } = await connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs, firstBeatMs: heartbeatIntervalMs / 2 });
        // Heartbeats at readyMs + 0.5, 1.5, 2.5 ... intervals; the checks fall between them.
        const beatMs = (n: number) => readyMs + heartbeatIntervalMs / 2 + n * heartbeatIntervalMs;
        /**
         * Runs virtual time to just after heartbeat `n`, then lets the store calls it started finish:
         * Redis answers over a socket, not on virtual time. A refresh that restores is two calls
         * and an append; calls on one client are answered in order, so three round trips behind them suffice.
         */
        const runPastBeat = async (n: number) => {
          await driver.runTo(beatMs(n) + 1);
          for (let round = 0; round < 3; round += 1) {
            await kv.get('presence-lapse-probe');
            await settle();
          }
        };
        await runPastBeat(5);
        assert.deepEqual(presenceOf(await events.poll(), deviceId), [[true, undefined]], 'six heartbeats refresh the key and report nothing');

        // The lapse: the key is gone between two heartbeats (as its expiry would leave it).
        await kv.del(kvKeys.presence(deviceId));
        assert.equal(await presenceSessionOf(kv, deviceId), null);
        await runPastBeat(6);
        assert.equal(await presenceSessionOf(kv, deviceId), sessionId, 'the next heartbeat writes the key again');
        assert.deepEqual(presenceOf(await events.poll(), deviceId), [[true, undefined], [true, presenceRestoredReason]], 'one online for the lapse');
        const restored = (await events.poll()).filter((e) => e.kind === 'presence').at(-1)!;
        assert.equal(restored.kind === 'presence' && restored.data.session_id, sessionId);
        assert.equal(restored.kind === 'presence' && restored.data.last_command_seq, undefined, 'no AUTH facts: its seq would be old by now');

        await runPastBeat(12);
        assert.deepEqual(presenceOf(await events.poll(), deviceId), [[true, undefined], [true, presenceRestoredReason]], 'not again at the later refreshes');

        await kv.del(kvKeys.presence(deviceId));
        await runPastBeat(15);
        assert.deepEqual(presenceOf(await events.poll(), deviceId).map(([, reason]) => reason), [undefined, presenceRestoredReason, presenceRestoredReason], 'a second lapse, a second online');
        assert.equal(agent.closed, undefined, 'the session lived throughout');
      } finally {
        await core.stop();
        await bus.close();
        await kv.close();
      }
    });
  });
}

describe('a stalled gateway whose presence key expired before it read the next heartbeat (memory store, virtual clock)', () => {
  const stallIntervalMs = 400;
  const driver = new VirtualDriver();
  const scheduler = new StallingScheduler(driver.time);
  // The memory store, whose TTLs run on the virtual clock (useVirtualGateway's ioredis-mock reads the wall clock).
  const kv = new MemoryKeyValueStore({ clock: driver.time, keyPrefix: `lapse-stall-${randomBytes(4).toString('hex')}:` });
  const bus = new MemoryStreamBus({ clock: driver.time, scheduler: driver.time });
  const gw = { stores: { kv, bus }, events: new StreamReader(bus), core: undefined as unknown as GatewayCore, gpki: undefined as unknown as GatewayPki };
  before(async () => {
    gw.gpki = await makeGatewayPki();
    gw.core = makeCore({ bus, kv }, { clock: driver.time, scheduler, heartbeatIntervalMs: stallIntervalMs, ackTimeoutMs: 60_000 });
    await gw.core.start();
  });
  after(async () => {
    await gw.core.stop();
    await bus.close();
    await kv.close();
  });

  it('reports the device online again when the heartbeat that waited is read, once', async () => {
    const deviceId = 'dev-stall';
    const device = await gw.gpki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time });
    const buffered: Uint8Array[] = [];
    let holding = false;
    const handle = gw.core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => {
      if (holding) buffered.push(bytes);
      else queueMicrotask(() => handle.receive(bytes));
    });
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    const authMs = driver.time.nowMs();
    const expiresMs = authMs + presenceTtlMs(stallIntervalMs);
    // The gateway stalls; the device's heartbeat is sent on time and waits unread in the socket.
    scheduler.stall();
    holding = true;
    await driver.runTo(authMs + stallIntervalMs);
    agent.connection.sendHeartbeat({ uptime_ms: stallIntervalMs, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    await driver.runTo(expiresMs + stallIntervalMs / 4);
    assert.equal(await presenceSessionOf(gw.stores.kv, deviceId), null, 'the key expired during the stall (a list read now shows the device offline)');
    // The stall ends: late timers first (the silence judgement is deferred, late-timer.ts), then the heartbeat.
    scheduler.resume();
    holding = false;
    for (const bytes of buffered.splice(0)) handle.receive(bytes);
    await settle();
    await driver.runTo(driver.time.nowMs() + stallIntervalMs / 10);
    assert.equal(agent.closed, undefined);
    assert.notEqual(await presenceSessionOf(gw.stores.kv, deviceId), null, 'the key is back');
    assert.deepEqual(presenceOf(await gw.events.poll(), deviceId), [[true, undefined], [true, presenceRestoredReason]]);
    // Heartbeats on time from here: refreshed, nothing more reported.
    for (let beat = 2; beat <= 6; beat += 1) {
      agent.connection.sendHeartbeat({ uptime_ms: beat * stallIntervalMs, queue_depth: 0 }, driver.time.nowMs());
      agent.flush();
      await driver.runTo(driver.time.nowMs() + stallIntervalMs);
    }
    assert.equal(agent.closed, undefined);
    assert.deepEqual(presenceOf(await gw.events.poll(), deviceId), [[true, undefined], [true, presenceRestoredReason]]);
  });
});
