import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { testKeyPrefix } from '../stores/redis-test-keys.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { SdcError } from '../../core/errors/index.js';
import { SlidingWindowCounter } from './window-counter.js';

/**
 * The policy's rate-limit counter (issue 12): never more than `count` admissions in any window
 * of windowMs, whatever the arrival times; refused attempts given back; two counters on one
 * store share the count. On the memory store and on ioredis-mock (the embedded store).
 */

class StepClock {
  nowMs = 1_700_000_000_000;
}

/** Admits at each arrival while the window holds fewer than `count`; returns the admitted times. */
async function admitAll(counter: SlidingWindowCounter, clock: StepClock, arrivals: readonly number[], limit: { count: number; windowMs: number }): Promise<number[]> {
  const admitted: number[] = [];
  const start = clock.nowMs;
  for (const offsetMs of arrivals) {
    clock.nowMs = start + offsetMs;
    const reservation = await counter.reserve('subject', limit.windowMs);
    if (reservation.countBefore < limit.count) admitted.push(clock.nowMs);
    else await reservation.release();
  }
  return admitted;
}

function mostInAnyWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  for (let first = 0; first < times.length; first += 1) {
    let inWindow = 0;
    for (let next = first; next < times.length && times[next]! < times[first]! + windowMs; next += 1) inWindow += 1;
    most = Math.max(most, inWindow);
  }
  return most;
}

const stores: Array<{ name: string; create: (clock: StepClock) => KeyValueStore }> = [
  { name: 'memory', create: (clock) => new MemoryKeyValueStore({ clock: { nowMs: () => clock.nowMs } }) },
  { name: 'ioredis-mock', create: () => createEmbeddedKeyValueStore({ keyPrefix: `wc-test:${Math.random().toString(36).slice(2)}:` }) },
];
const redisUrl = process.env['REDIS_URL'];
if (redisUrl !== undefined && redisUrl !== '') {
  // The real store, when one is configured; its keys expire (TTLs of a few windows) and carry a test prefix.
  stores.push({ name: 'Redis', create: () => createRedisKeyValueStore({ url: redisUrl, keyPrefix: `${testKeyPrefix('wc')}${Math.random().toString(36).slice(2)}:` }) });
}

for (const store of stores) {
  describe(`SlidingWindowCounter on ${store.name}`, () => {
    it('never admits more than count in any window of windowMs, and admits again once the window has passed', async () => {
      await fc.assert(fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1_000, max: 20_000 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 40 }),
        async (count, windowMs, gapsMs) => {
          const clock = new StepClock();
          const kv = store.create(clock);
          const counter = new SlidingWindowCounter({ kv, clock: { nowMs: () => clock.nowMs }, scope: 'policy-rate' });
          const arrivals = gapsMs.reduce<number[]>((times, gap) => [...times, (times.at(-1) ?? 0) + gap], []);
          const admitted = await admitAll(counter, clock, arrivals, { count, windowMs });
          assert.ok(mostInAnyWindow(admitted, windowMs) <= count, `admitted ${admitted.length} at ${admitted.join(',')}`);
          // After a quiet window rounded up to whole buckets, and the bucket it started in, the limit is whole again.
          const bucketMs = Math.max(100, Math.ceil(windowMs / 10));
          clock.nowMs += (Math.ceil(windowMs / bucketMs) + 1) * bucketMs;
          assert.equal((await counter.reserve('subject', windowMs)).countBefore, 0);
          await kv.close();
        },
      ), { numRuns: store.name === 'memory' ? 150 : 25 });
    });

    it('a released reservation does not count; two counters on one store share the count', async () => {
      const clock = new StepClock();
      const kv = store.create(clock);
      const time = { nowMs: () => clock.nowMs };
      const first = new SlidingWindowCounter({ kv, clock: time, scope: 'policy-rate' });
      const second = new SlidingWindowCounter({ kv, clock: time, scope: 'policy-rate' });
      assert.equal((await first.reserve('a', 60_000)).countBefore, 0);
      const refused = await second.reserve('a', 60_000);
      assert.equal(refused.countBefore, 1, 'the second control plane sees the first one\'s count');
      await refused.release();
      await refused.release();
      assert.equal(await first.count('a', 60_000), 1, 'released once, however often release is called');
      assert.equal(await second.count('b', 60_000), 0, 'subjects count apart');
      clock.nowMs += 59_000;
      assert.equal(await second.count('a', 60_000), 1, 'still inside the window');
      clock.nowMs += 6_001 + 1_000;
      assert.equal(await second.count('a', 60_000), 0, 'gone once the window and its last bucket have passed');
      await kv.close();
    });

    it('a place released by another counter later (a command that waited for approvals) leaves the bucket it was counted in; only bucket keys are taken', async () => {
      const clock = new StepClock();
      const kv = store.create(clock);
      const time = { nowMs: () => clock.nowMs };
      const first = new SlidingWindowCounter({ kv, clock: time, scope: 'policy-rate' });
      const later = new SlidingWindowCounter({ kv, clock: time, scope: 'policy-rate' });
      const kept = await first.reserve('a', 60_000);
      clock.nowMs += 30_000;
      assert.equal((await first.reserve('a', 60_000)).countBefore, 1);
      await later.releasePlace(kept.place);
      assert.equal(await later.count('a', 60_000), 1, 'the earlier bucket lost its count, the current one kept its own');
      for (const bad of ['sdc:rl:login-source:0123456789abcdef:6000:1', 'cp-test:anything', `${kept.place}x`]) {
        await assert.rejects(later.releasePlace(bad), (e) => SdcError.is(e, 'STORE_CORRUPT'), bad);
      }
      await kv.close();
    });
  });
}
