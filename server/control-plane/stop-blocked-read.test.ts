// A control plane's stop() while its events and telemetry consumers are blocked in reads that no
// timer will end: stop() must end them itself. It waited for them: the read's wait is a timer on
// the bus's scheduler, and on a virtual clock no one advances any more (here), or an unref'd timer
// in an otherwise empty event loop (audit-atomicity.test.ts's restarted control plane, worked around
// by timing in b17cb33), it never fired and stop() never resolved. On Redis the read is a blocked
// XREADGROUP; with the longest BLOCK there is, stop() waited up to 60 s. The guard is real time
// and only turns a hang into a failure; the tests assert that stop() resolves, and what it leaves.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { busLimits } from '../stores/bus/bus-arguments.js';
import { settledOrGuard } from '../stores/bus/bus-contract.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { RedisStreamBus } from '../stores/bus/redis-stream-bus.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { makeHarness, sqlJsTarget } from './test-support.js';

/** The bus, with a promise resolved once `reads` blocking reads were entered (the events and the telemetry consumer). */
function watched(bus: StreamBus, reads: number): { bus: StreamBus; blocked: Promise<void> } {
  let entered = 0;
  let allEntered!: () => void;
  const blocked = new Promise<void>((resolve) => { allEntered = resolve; });
  const proxy = new Proxy(bus, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property !== 'readGroup') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      return (...args: Parameters<StreamBus['readGroup']>) => {
        const read = target.readGroup(...args);
        if ((args[3].blockMs ?? 0) > 0 && ++entered === reads) allEntered();
        return read;
      };
    },
  });
  return { bus: proxy, blocked };
}

/**
 * Starts a control plane on `bus`, waits until both consumers are in a blocking read, then closes
 * the harness (its stop() first) under the guard. `release` ends the reads the hard way (closing
 * the bus) if the guard fired, so a failing run still ends.
 */
async function stopsWhileBlocked(options: { bus: StreamBus; release: () => Promise<void>; consumerBlockMs?: number }): Promise<void> {
  const { bus, blocked } = watched(options.bus, 2);
  const h = await makeHarness(sqlJsTarget, {
    wrapBus: () => bus, ...(options.consumerBlockMs === undefined ? {} : { controlPlane: { consumerBlockMs: options.consumerBlockMs } }),
  });
  let closing: Promise<void> | undefined;
  try {
    await h.cp.start();
    await blocked;
    closing = h.close();
    assert.equal(await settledOrGuard(closing.then(() => 'stopped')), 'stopped', 'stop() waited for its consumers\' blocked reads');
    // Nothing was delivered to the stopped consumers' reads: a later entry is there for the next control plane.
    await options.bus.append(streamNames.events, { n: 'later' });
    assert.deepEqual(await options.bus.pending(streamNames.events, groups.controlPlane), []);
  } finally {
    await options.release();
    await closing;
  }
}

describe('control plane stop() with its consumers blocked in reads', () => {
  // The SQL and key/value stores play no part here: sql.js and the embedded store only.
  it('ends the reads itself on a virtual-time bus whose clock no one advances', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    await stopsWhileBlocked({ bus, release: () => bus.close() });
    assert.equal(time.pendingTimers, 0, 'the reads\' timers were cancelled, not left to fire');
  });

  const redisUrl = process.env['REDIS_URL'];
  const prefix = testKeyPrefix('stop-blocked-read');
  after(async () => { if (redisUrl !== undefined && redisUrl !== '') await deleteKeysWithPrefix(redisUrl, prefix); });
  it('ends the reads itself on Redis, blocked in XREADGROUP with the longest BLOCK', { skip: redisUrl === undefined || redisUrl === '' ? 'REDIS_URL is not set' : false }, async () => {
    const bus = new RedisStreamBus({ url: redisUrl as string, keyPrefix: prefix });
    await stopsWhileBlocked({ bus, consumerBlockMs: busLimits.blockMsMax, release: () => bus.close() });
  });
});
