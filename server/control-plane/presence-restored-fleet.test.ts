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
import { kvKeys } from '../bus-contract/streams.js';
import { connectHeartbeating, eventually, makeGatewayPki } from '../gateway/test-support.js';
import { startLiveGatewayRig, storePairs, type LiveGatewayRig, type StorePair } from './test-support.js';

/** Virtual 60 s: a wall-clock TTL (ioredis-mock, Redis) of 90 s never runs out during the test. */
const heartbeatIntervalMs = 60_000;
const fleetSize = 6;
const deviceIds = Array.from({ length: fleetSize }, (_, i) => `dev-fleet-${i}`);
/** Its row's gateway is cleared during the lapse: the one device whose record changed. */
const movedId = deviceIds[0]!;

function suite(pair: StorePair): void {
  describe(`every presence key lapsing at once (${pair.name})`, () => {
    let rig: LiveGatewayRig;
    const calls = { recordPresence: [] as string[], redeliver: [] as string[], unfinishedAndEpisodeOf: [] as string[] };

    before(async () => {
      rig = await startLiveGatewayRig(pair, {
        gatewayId: 'gw-fleet', heartbeatIntervalMs, deviceIds,
        // Counted on the services the event handlers hold (the same objects).
        beforeGateway: ({ cp: { devices, commands } }) => {
          const recordPresence = devices.recordPresence.bind(devices);
          devices.recordPresence = (options) => { calls.recordPresence.push(options.deviceId); return recordPresence(options); };
          const redeliver = commands.redeliver.bind(commands);
          commands.redeliver = (deviceId, gatewayId, read) => { calls.redeliver.push(deviceId); return redeliver(deviceId, gatewayId, read); };
          const unfinished = commands.unfinishedAndEpisodeOf.bind(commands);
          commands.unfinishedAndEpisodeOf = (deviceId, key) => { calls.unfinishedAndEpisodeOf.push(deviceId); return unfinished(deviceId, key); };
        },
      });
    });
    after(() => rig.close());

    const onlineLive = () => rig.live.filter((e) => e['type'] === 'presence' && e['online'] === true);

    it('reports one online per device; only the device whose record changed gets the whole online', async () => {
      const { h, core, driver, liveSettled, runPast } = rig;
      const gpki = await makeGatewayPki();
      let readyMs = 0;
      for (const deviceId of deviceIds) {
        ({ readyMs } = await connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs, firstBeatMs: heartbeatIntervalMs / 2 }));
      }
      const pastBeat = (n: number) => runPast(readyMs + heartbeatIntervalMs / 2 + n * heartbeatIntervalMs);
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
