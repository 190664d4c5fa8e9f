// Every presence key lapsing at once (review h11, F4; docs/gateway.md, 2026-12-05): a store outage
// longer than the TTL or a restart that loses the keys. Each session's next refresh writes its key
// again and reports one 'presence key restored' online; the control plane must not run a whole
// online (the devices UPDATE, the episode read, a redelivery of every unfinished command) for each
// device whose row already names that gateway, only publish it. A device whose row changed
// meanwhile (its gateway cleared, as an offline does) still gets the whole online. A gateway on
// virtual time and a control plane on one bus and one key/value store; sql.js + ioredis-mock and,
// with MYSQL_URL and REDIS_URL, MySQL + Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvKeys, liveChannel } from '../bus-contract/streams.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { GatewayCore } from '../gateway/gateway-core.js';
import { connectHeartbeating, eventually, makeCore, makeGatewayPki, onVirtualTime, settle, VirtualDriver } from '../gateway/test-support.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/** Virtual 60 s: a wall-clock TTL (ioredis-mock, Redis) of 90 s never runs out during the test. */
const heartbeatIntervalMs = 60_000;
const fleetSize = 6;
const deviceIds = Array.from({ length: fleetSize }, (_, i) => `dev-fleet-${i}`);
/** Its row's gateway is cleared during the lapse: the one device whose record changed. */
const movedId = deviceIds[0]!;

function suite(pair: StorePair): void {
  describe(`every presence key lapsing at once (${pair.name})`, () => {
    const driver = new VirtualDriver();
    const live: JsonObject[] = [];
    let h: Harness;
    let core: GatewayCore;
    let unsubscribe: (() => Promise<void>) | undefined;
    const calls = { recordPresence: [] as string[], redeliver: [] as string[], unfinishedAndEpisodeOf: [] as string[] };

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      unsubscribe = await h.cp.context.kv.subscribe(liveChannel, (message) => live.push(JSON.parse(message) as JsonObject));
      for (const id of deviceIds) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
      // Counted on the services the event handlers hold (the same objects).
      const { devices, commands } = h.cp;
      const recordPresence = devices.recordPresence.bind(devices);
      devices.recordPresence = (options) => { calls.recordPresence.push(options.deviceId); return recordPresence(options); };
      const redeliver = commands.redeliver.bind(commands);
      commands.redeliver = (deviceId, gatewayId, read) => { calls.redeliver.push(deviceId); return redeliver(deviceId, gatewayId, read); };
      const unfinished = commands.unfinishedAndEpisodeOf.bind(commands);
      commands.unfinishedAndEpisodeOf = (deviceId, key) => { calls.unfinishedAndEpisodeOf.push(deviceId); return unfinished(deviceId, key); };
      core = makeCore({ bus: h.bus, kv: h.cp.context.kv }, { ...onVirtualTime(driver), gatewayId: 'gw-fleet', heartbeatIntervalMs, ackTimeoutMs: 600_000 });
      await core.start();
    });
    after(async () => {
      await core.stop();
      await unsubscribe?.();
      await h.close();
      await pair.sql.cleanup();
    });

    const onlineLive = () => live.filter((e) => e['type'] === 'presence' && e['online'] === true);
    const liveSettled = async () => {
      const marker = `marker-${live.length}-${Date.now()}`;
      await h.cp.context.kv.publish(liveChannel, JSON.stringify({ type: 'test-marker', marker }));
      await eventually(() => (live.some((e) => e['marker'] === marker) ? true : undefined), undefined, 'the marker on the live channel');
    };

    it('reports one online per device; only the device whose record changed gets the whole online', async () => {
      const gpki = await makeGatewayPki();
      let readyMs = 0;
      for (const deviceId of deviceIds) {
        ({ readyMs } = await connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs, firstBeatMs: heartbeatIntervalMs / 2 }));
      }
      const beatMs = (n: number) => readyMs + heartbeatIntervalMs / 2 + n * heartbeatIntervalMs;
      const pastBeat = async (n: number) => {
        await driver.runTo(beatMs(n) + 1);
        for (let round = 0; round < 3; round += 1) {
          await h.cp.context.kv.get('presence-restored-probe');
          await settle();
        }
        await h.cp.eventsConsumer.drain();
      };
      await pastBeat(1);
      await liveSettled();
      assert.equal(onlineLive().length, fleetSize, 'the AUTH onlines');
      assert.deepEqual([...calls.redeliver].sort(), [...deviceIds].sort(), 'each AUTH online redelivers');
      for (const key of Object.values(calls)) key.length = 0;
      const seen = onlineLive().length;

      // Every key lost at once (a store restart); one device's record changed meanwhile.
      for (const deviceId of deviceIds) await h.cp.context.kv.del(kvKeys.presence(deviceId));
      await h.db.execute('UPDATE devices SET gateway_id = NULL WHERE id = ?', [movedId]);

      await pastBeat(2);
      await eventually(() => (onlineLive().length >= seen + fleetSize ? true : undefined), undefined, 'an online per device after the lapse');
      await h.cp.eventsConsumer.drain();
      await liveSettled();
      assert.deepEqual(onlineLive().slice(seen).map((e) => e['device_id']).sort(), [...deviceIds].sort(), 'one live online per device');
      assert.deepEqual(calls.redeliver, [movedId], 'a redelivery only for the device whose record changed');
      assert.deepEqual(calls.recordPresence, [movedId], 'a devices write only for it');
      assert.deepEqual(calls.unfinishedAndEpisodeOf, [movedId], 'an episode/commands read only for it');
      const [row] = await h.db.query<{ gateway_id: string | null }>('SELECT gateway_id FROM devices WHERE id = ?', [movedId]);
      assert.equal(row?.gateway_id, 'gw-fleet', 'its gateway recorded again');
      for (const deviceId of deviceIds) assert.equal((await h.cp.devices.get(deviceId)).online, true, `${deviceId} online`);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
// Without MYSQL_URL and REDIS_URL only sql.js + ioredis-mock runs: the same steps, another store.
if (skipped !== undefined) describe('every presence key lapsing at once on mysql + redis', { skip: skipped }, () => {});
