import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runPaced } from './paced-schedule.js';

/** A clock that only moves when the schedule sleeps, so due times are exact. */
function virtualClock(): { nowMs: () => number; sleepUntil: (atMs: number) => Promise<void> } {
  let now = 1_000;
  return { nowMs: () => now, sleepUntil: async (atMs) => { now = Math.max(now, atMs); } };
}

describe('bench: the open-loop schedule (--rate)', () => {
  it('starts item k at start + k / rate without waiting for earlier items to finish', async () => {
    const clock = virtualClock();
    const started: Array<{ k: number; dueMs: number; atMs: number }> = [];
    const finish: Array<() => void> = [];
    const count = await runPaced({
      count: 5, ratePerS: 4, ...clock,
      start: (k, dueMs) => {
        started.push({ k, dueMs, atMs: clock.nowMs() });
        // Item 0 only finishes once every item has started: a closed loop would have stalled.
        return new Promise<void>((resolve) => { finish.push(resolve); if (finish.length === 5) for (const f of finish) f(); });
      },
    });
    assert.equal(count, 5);
    assert.deepEqual(started.map((s) => s.k), [0, 1, 2, 3, 4]);
    assert.deepEqual(started.map((s) => s.dueMs), [1_000, 1_250, 1_500, 1_750, 2_000]);
    assert.deepEqual(started.map((s) => s.atMs), [1_000, 1_250, 1_500, 1_750, 2_000]);
  });

  it('never starts an item before its due time, even when a wait ends early', async () => {
    let now = 0;
    const startedAt: Array<{ atMs: number; dueMs: number }> = [];
    await runPaced({
      count: 4, ratePerS: 1_000, nowMs: () => now,
      // Each wait ends 0.6 ms short of its target, as a timer on a whole-millisecond loop clock can.
      sleepUntil: async (atMs) => { now = Math.max(now, atMs - 0.6); if (now < atMs) now += 0.4; },
      start: async (_k, dueMs) => { startedAt.push({ atMs: now, dueMs }); },
    });
    assert.equal(startedAt.length, 4);
    for (const { atMs, dueMs } of startedAt) assert.ok(atMs >= dueMs, `started at ${atMs}, due ${dueMs}`);
  });

  it('stops starting items at the deadline, and a failing item neither stops the schedule nor goes unreported', async () => {
    const clock = virtualClock();
    const started: number[] = [];
    await assert.rejects(runPaced({
      count: 10, ratePerS: 10, ...clock, deadlineMs: 1_350,
      start: async (k) => {
        started.push(k);
        if (k === 1) throw new Error('item 1 failed');
      },
    }), /item 1 failed/);
    assert.deepEqual(started, [0, 1, 2, 3]);
  });

  it('refuses a rate that is not positive or above the bound', async () => {
    const clock = virtualClock();
    for (const ratePerS of [0, -1, Number.NaN, 20_000]) {
      await assert.rejects(runPaced({ count: 1, ratePerS, ...clock, start: async () => undefined }), RangeError);
    }
  });
});
