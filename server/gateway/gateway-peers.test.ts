import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gatewayCommandStream, groups, kvKeys } from '../bus-contract/streams.js';
import { RedisStreamBus } from '../stores/bus/redis-stream-bus.js';
import { createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { aliveTtlMs } from './peer-watch.js';
import {
  appendDeliver, connectInMemory, embeddedStores, eventually, makeCommand, makeCore, makeGatewayPki, StreamReader, type TestStores,
} from './test-support.js';

const redisUrl = process.env['REDIS_URL'];
/**
 * Liveness refresh of both gateways. Long enough that a busy machine delaying gw-a's refresh timer
 * does not make gw-b take a live gw-a for dead (its key lives 3 refreshes); the wait for the
 * hand-back is sized from it.
 */
const refreshMs = 1_000;

/**
 * Two gateways on one store; gw-a holds a device with commands in flight (one acked, one never
 * acked) and one more arrives after it dies. gw-a is killed (abort: no cleanup, nothing written);
 * gw-b must find its liveness key expired, claim or read every entry of gw-a's stream and hand
 * each back with `requeue`, leaving nothing pending.
 */
async function deadGatewayScenario(openStores: () => TestStores): Promise<void> {
  const gpki = await makeGatewayPki();
  const storesA = openStores();
  const storesB = openStores();
  const peerTiming = { aliveRefreshIntervalMs: refreshMs, peerCheckIntervalMs: refreshMs, ackTimeoutMs: 60_000 };
  const gwA = makeCore(storesA, { gatewayId: 'gw-a', ...peerTiming });
  const gwB = makeCore(storesB, { gatewayId: 'gw-b', ...peerTiming });
  try {
    await gwA.start();
    await gwB.start();
    const ids = JSON.parse((await storesB.kv.get(kvKeys.gatewayIds))!) as string[];
    assert.ok(ids.includes('gw-a') && ids.includes('gw-b'), `registered ids ${ids.join()}`);

    const device = await gpki.issueDevice('dev-peer');
    const agent = connectInMemory(gwA, device);
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    const events = new StreamReader(storesB.bus);
    agent.behaviour = 'ack-only';
    const acked = makeCommand('dev-peer', { deviceSeq: 1 });
    await appendDeliver(storesB.bus, 'gw-a', acked);
    await events.waitFor(() => events.progress(acked.id).some((p) => p.event === 'ack'));
    agent.behaviour = 'silent';
    const unacked = makeCommand('dev-peer', { deviceSeq: 2 });
    await appendDeliver(storesB.bus, 'gw-a', unacked);
    await events.waitFor(() => events.progress(unacked.id).some((p) => p.event === 'deliver'));
    const stream = gatewayCommandStream('gw-a');
    assert.equal((await storesB.bus.pending(stream, groups.gateway)).length, 2);

    gwA.abort();
    const late = makeCommand('dev-peer', { deviceSeq: 3 });
    await appendDeliver(storesB.bus, 'gw-a', late);

    const requeued = (id: string) => events.entries.some((e) => e.kind === 'command_progress' && e.data.command_id === id && e.data.event === 'requeue' && e.data.gateway_id === 'gw-b');
    // Bound: liveness TTL (3 refreshes) + claim idle (one TTL) + one peer check, with slack for the test machine.
    await events.waitFor(() => [acked.id, unacked.id, late.id].every(requeued), 4 * aliveTtlMs(refreshMs) + 3_000);
    assert.equal((await storesB.bus.pending(stream, groups.gateway)).length, 0, 'nothing left pending on the dead gateway');
    assert.equal(await gwB.checkPeers(), 0, 'a second pass finds nothing more');
  } finally {
    gwA.abort();
    await gwB.stop();
    await Promise.all([storesA.bus.close(), storesA.kv.close(), storesB.bus.close(), storesB.kv.close()].map((p) => p.catch(() => undefined)));
  }
}

describe('a dead gateway hands nothing stranded', () => {
  it('embedded stores', async () => {
    const shared = embeddedStores();
    // Both gateways use the same in-process store objects; closing is done once by the scenario (idempotent closes).
    await deadGatewayScenario(() => shared);
  });

  if (redisUrl === undefined || redisUrl === '') {
    it('real Redis', { skip: 'REDIS_URL is not set; the embedded case above runs the same scenario' }, () => undefined);
  } else {
    const prefix = testKeyPrefix('gateway');
    after(() => deleteKeysWithPrefix(redisUrl, prefix));
    it('real Redis (ioredis bus and key/value adapters, one client pair per gateway)', async () => {
      await deadGatewayScenario(() => ({
        bus: new RedisStreamBus({ url: redisUrl, keyPrefix: `${prefix}bus:` }),
        kv: createRedisKeyValueStore({ url: redisUrl, keyPrefix: `${prefix}kv:` }),
      }));
    });
  }
});
