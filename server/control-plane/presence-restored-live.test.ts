// A presence key that lapsed while the device's session lived, end to end (docs/gateway.md,
// "Presence and its bound", 2026-12-05): a gateway (virtual time) and a control plane on one bus and
// one key/value store. A device list read while the key is missing shows the device offline with
// its session on record (what the viewer's fleet got); the refresh that writes the key again
// appends one online entry, which the control plane records and publishes on the live channel, so
// a fleet kept as the viewer keeps it (the read's rows with presence events applied) shows the
// device online again, and the device list agrees. Later refreshes publish nothing. Runs on
// sql.js + ioredis-mock and, with MYSQL_URL and REDIS_URL, on MySQL + Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvKeys } from '../bus-contract/streams.js';
import { connectHeartbeating, eventually, makeGatewayPki } from '../gateway/test-support.js';
import { startLiveGatewayRig, storePairs, type LiveGatewayRig, type StorePair } from './test-support.js';

/** Virtual 60 s: a wall-clock TTL (ioredis-mock, Redis) of 90 s never runs out during the test. */
const heartbeatIntervalMs = 60_000;
const deviceId = 'dev-lapse-live';

function suite(pair: StorePair): void {
  describe(`a lapsed presence key written again, on the live stream and the device list (${pair.name})`, () => {
    let rig: LiveGatewayRig;

    before(async () => {
      rig = await startLiveGatewayRig(pair, { gatewayId: 'gw-live', heartbeatIntervalMs, deviceIds: [deviceId] });
    });
    after(() => rig.close());

    const presenceLive = () => rig.live.filter((e) => e['type'] === 'presence' && e['device_id'] === deviceId);
    const listed = async () => (await rig.h.cp.devices.list({ limit: 100 })).items.find((d) => d.id === deviceId)!;

    it('one live online after the lapse corrects the fleet row read during it; later refreshes publish nothing', async () => {
      const { h, core, driver, liveSettled, runPast } = rig;
      const gpki = await makeGatewayPki();
      const { agent, readyMs } = await connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs, firstBeatMs: heartbeatIntervalMs / 2 });
      const pastBeat = (n: number) => runPast(readyMs + heartbeatIntervalMs / 2 + n * heartbeatIntervalMs);
      await pastBeat(2);
      await liveSettled();
      assert.deepEqual(presenceLive().map((e) => e['online']), [true], 'the AUTH online');
      assert.equal((await listed()).online, true);

      // The lapse; the fleet is read in that moment.
      await h.cp.context.kv.del(kvKeys.presence(deviceId));
      let fleetRow = await listed();
      assert.deepEqual([fleetRow.online, fleetRow.gateway_id], [false, 'gw-live'], 'read during the lapse: offline, its session on record');
      const seen = presenceLive().length;

      await pastBeat(3);
      await eventually(() => (presenceLive().length > seen ? true : undefined), undefined, 'a presence event after the lapse');
      // Applied as the viewer's fleet applies a presence event (sdc-fleet.ts #apply).
      for (const event of presenceLive().slice(seen)) fleetRow = { ...fleetRow, online: event['online'] as boolean, gateway_id: event['online'] === true ? event['gateway_id'] as string : null };
      assert.deepEqual([fleetRow.online, fleetRow.gateway_id], [true, 'gw-live'], 'the fleet row is right again without a re-read');
      assert.equal((await listed()).online, true, 'and a read agrees');
      assert.equal((await h.cp.devices.get(deviceId)).online, true, 'so does the device view');

      await pastBeat(9);
      await liveSettled();
      assert.deepEqual(presenceLive().map((e) => e['online']), [true, true], 'one online for the lapse, none for the six refreshes after it');
      assert.equal(agent.closed, undefined);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
// Without MYSQL_URL and REDIS_URL only sql.js + ioredis-mock runs: the same steps, another store.
if (skipped !== undefined) describe('presence restored on mysql + redis', { skip: skipped }, () => {});
