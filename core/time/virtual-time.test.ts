import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VirtualTime } from './virtual-time.js';

test('timers fire in due order, ties in creation order, and the clock follows them', async () => {
  const time = new VirtualTime(1000);
  const fired: Array<[string, number]> = [];
  time.schedule(50, () => fired.push(['b', time.nowMs()]));
  time.schedule(10, () => fired.push(['a', time.nowMs()]));
  time.schedule(50, () => fired.push(['c', time.nowMs()]));
  const cancelled = time.schedule(20, () => fired.push(['x', time.nowMs()]));
  time.cancel(cancelled);
  time.schedule(100, () => time.schedule(0, () => fired.push(['d', time.nowMs()])));
  await time.runUntil(1100);
  assert.deepEqual(fired, [['a', 1010], ['b', 1050], ['c', 1050], ['d', 1100]]);
  assert.equal(time.nowMs(), 1100);
  assert.equal(time.pendingTimers, 0);
});

test('random schedules fire sorted by (due, creation)', async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.nat({ max: 1000 }), { maxLength: 200 }), async (delays) => {
    const time = new VirtualTime(0);
    const order: number[] = [];
    delays.forEach((d, i) => time.schedule(d, () => order.push(i)));
    await time.runUntil(1000);
    const expected = delays.map((d, i) => [d, i] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]).map(([, i]) => i);
    assert.deepEqual(order, expected);
  }), { numRuns: 200 });
});

test('advance fires due timers synchronously', () => {
  const time = new VirtualTime(0);
  const seen: number[] = [];
  time.schedule(5, () => seen.push(time.nowMs()));
  time.schedule(15, () => seen.push(time.nowMs()));
  assert.equal(time.advance(10), 1);
  assert.deepEqual(seen, [5]);
  assert.equal(time.nowMs(), 10);
});
