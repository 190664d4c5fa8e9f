import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gatewayCommandStream, groups, kvKeys } from '../bus-contract/streams.js';
import type { DecodedBusEntry } from '../bus-contract/entries.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { RedisStreamBus } from '../stores/bus/redis-stream-bus.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import type { GatewayCoreOptions } from './gateway-core.js';
import { aliveTtlMs } from './peer-watch.js';
import {
  appendDeliver, connectInMemory, eventually, makeCommand, makeCore, makeGatewayPki, onVirtualTime, StreamReader, TestAgent, VirtualDriver, type TestStores,
} from './test-support.js';

const redisUrl = process.env['REDIS_URL'];
/**
 * Liveness refresh of both gateways. On real time (Redis, whose TTLs run on its own clock), long
 * enough that a busy machine delaying gw-a's refresh timer does not make gw-b take a live gw-a for
 * dead (its key lives 3 refreshes).
 */
const refreshMs = 1_000;
/**
 * What the gateways promise: a dead gateway's liveness key expires at most one TTL after the
 * abort (its last refresh came before), its entries have been idle that long by then (delivered
 * before the abort), and the next peer check hands them back: one TTL and one check interval.
 */
const handBackBoundMs = aliveTtlMs(refreshMs) + refreshMs;

/** Where the scenario runs: its stores, the gateways' and the device's time, and how it waits. */
interface ScenarioWorld {
  openStores(): TestStores;
  readonly time?: Pick<GatewayCoreOptions, 'clock' | 'scheduler'>;
  /** Resolves once `check` returns a value; fails when `boundMs` passed on the world's time (real time: at least realTimeWaitMsMin). */
  until<T>(check: () => Promise<T | undefined> | T | undefined, boundMs: number, what: string): Promise<T>;
}

/**
 * In-process stores on virtual time (the memory key/value store: its TTLs run on the injected clock,
 * ioredis-mock's on the wall clock): the hand-back bound is checked exactly, however busy the machine.
 */
function virtualWorld(): ScenarioWorld {
  const driver = new VirtualDriver(undefined, 50);
  // Both gateways use the same in-process store objects; closing is done once by the scenario (idempotent closes).
  const shared: TestStores = { bus: new MemoryStreamBus({ clock: driver.time, scheduler: driver.time }), kv: new MemoryKeyValueStore({ clock: driver.time }) };
  return { openStores: () => shared, time: onVirtualTime(driver), until: (check, boundMs, what) => driver.until(check, boundMs, what) };
}

/** Real time: each wait ends as soon as its condition holds, and fails only after a limit generous for a busy machine. */
function realTimeWorld(openStores: () => TestStores): ScenarioWorld {
  return { openStores, until: (check, boundMs, what) => eventually(check, boundMs, what) };
}

/**
 * Two gateways on one store; gw-a holds a device with commands in flight (one acked, one never
 * acked) and one more arrives after it dies. gw-a is killed (abort: no cleanup, nothing written);
 * gw-b must find its liveness key expired, claim or read every entry of gw-a's stream and hand
 * each back with `requeue`, leaving nothing pending.
 */
async function deadGatewayScenario(world: ScenarioWorld): Promise<void> {
  const gpki = await makeGatewayPki();
  const storesA = world.openStores();
  const storesB = world.openStores();
  const peerTiming = { aliveRefreshIntervalMs: refreshMs, peerCheckIntervalMs: refreshMs, ackTimeoutMs: 60_000, ...world.time };
  const gwA = makeCore(storesA, { gatewayId: 'gw-a', ...peerTiming });
  const gwB = makeCore(storesB, { gatewayId: 'gw-b', ...peerTiming });
  try {
    await gwA.start();
    await gwB.start();
    const ids = JSON.parse((await storesB.kv.get(kvKeys.gatewayIds))!) as string[];
    assert.ok(ids.includes('gw-a') && ids.includes('gw-b'), `registered ids ${ids.join()}`);

    const device = await gpki.issueDevice('dev-peer');
    const agent = connectInMemory(gwA, device, new TestAgent(device, world.time === undefined ? {} : { clock: world.time.clock }));
    await world.until(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    const events = new StreamReader(storesB.bus);
    const command = (deviceSeq: number) => makeCommand('dev-peer', { deviceSeq, ...(world.time === undefined ? {} : { nowMs: world.time.clock.nowMs() }) });
    const eventsShow = (what: string, predicate: (entries: DecodedBusEntry[]) => boolean, boundMs = 3_000) =>
      world.until(async () => (predicate(await events.poll()) ? true : undefined), boundMs, what);
    agent.behaviour = 'ack-only';
    const acked = command(1);
    await appendDeliver(storesB.bus, 'gw-a', acked);
    await eventsShow('the first command acked', () => events.progress(acked.id).some((p) => p.event === 'ack'));
    agent.behaviour = 'silent';
    const unacked = command(2);
    await appendDeliver(storesB.bus, 'gw-a', unacked);
    await eventsShow('the second command delivered', () => events.progress(unacked.id).some((p) => p.event === 'deliver'));
    const stream = gatewayCommandStream('gw-a');
    assert.equal((await storesB.bus.pending(stream, groups.gateway)).length, 2);

    gwA.abort();
    const late = command(3);
    await appendDeliver(storesB.bus, 'gw-a', late);

    const requeued = (id: string) => events.entries.some((e) => e.kind === 'command_progress' && e.data.command_id === id && e.data.event === 'requeue' && e.data.gateway_id === 'gw-b');
    await eventsShow('every entry of gw-a handed back by gw-b', () => [acked.id, unacked.id, late.id].every(requeued), handBackBoundMs);
    assert.equal((await storesB.bus.pending(stream, groups.gateway)).length, 0, 'nothing left pending on the dead gateway');
    assert.equal(await gwB.checkPeers(), 0, 'a second pass finds nothing more');
  } finally {
    gwA.abort();
    await gwB.stop();
    await Promise.all([storesA.bus.close(), storesA.kv.close(), storesB.bus.close(), storesB.kv.close()].map((p) => p.catch(() => undefined)));
  }
}

describe('a dead gateway hands nothing stranded', () => {
  it('embedded stores, on virtual time', async () => {
    await deadGatewayScenario(virtualWorld());
  });

  if (redisUrl === undefined || redisUrl === '') {
    it('real Redis', { skip: 'REDIS_URL is not set; the embedded case above runs the same scenario' }, () => undefined);
  } else {
    const prefix = testKeyPrefix('gateway');
    after(() => deleteKeysWithPrefix(redisUrl, prefix));
    it('real Redis (ioredis bus and key/value adapters, one client pair per gateway)', async () => {
      await deadGatewayScenario(realTimeWorld(() => ({
        bus: new RedisStreamBus({ url: redisUrl, keyPrefix: `${prefix}bus:` }),
        kv: createRedisKeyValueStore({ url: redisUrl, keyPrefix: `${prefix}kv:` }),
      })));
    });
  }
});
