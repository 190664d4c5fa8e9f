import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runOpenLoop } from './open-loop.js';

/** A virtual clock: sleep advances it, so the schedule is exact and the test does not wait. */
function virtualTime(): { nowMs: () => number; sleep: (ms: number) => Promise<void>; advance: (ms: number) => void } {
  let now = 1_000;
  return { nowMs: () => now, sleep: async (ms) => { now += Math.max(ms, 0.5); }, advance: (ms) => { now += ms; } };
}

test('open loop: arrivals at the fixed rate, each told its intended time, none waiting for a slow one', async () => {
  const time = virtualTime();
  const intended: number[] = [];
  const release: Array<() => void> = [];
  const run = runOpenLoop({
    ratePerS: 10, durationMs: 1_000, maxInFlight: 100, nowMs: time.nowMs, sleep: time.sleep,
    // Every iteration hangs until released: a closed loop would start only the first.
    iteration: (_, intendedMs) => { intended.push(intendedMs); return new Promise<void>((resolve) => release.push(resolve)); },
  });
  while (intended.length < 10) await new Promise((r) => setImmediate(r));
  assert.deepEqual(intended, [1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900]);
  for (const r of release) r();
  assert.deepEqual(await run, { started: 10, dropped: 0, maxStartLagMs: 0 });
});

test('open loop: beyond maxInFlight an arrival is dropped and counted, not delayed', async () => {
  const time = virtualTime();
  const release: Array<() => void> = [];
  const run = runOpenLoop({
    ratePerS: 100, durationMs: 100, maxInFlight: 3, nowMs: time.nowMs, sleep: time.sleep,
    iteration: () => new Promise<void>((resolve) => release.push(resolve)),
  });
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  for (const r of release) r();
  const result = await run;
  assert.equal(result.started, 3);
  assert.equal(result.dropped, 7);
});

test('open loop: a scheduler that wakes late starts every due arrival at once and reports its lag', async () => {
  const time = virtualTime();
  const intended: number[] = [];
  let first = true;
  const result = await runOpenLoop({
    ratePerS: 10, durationMs: 500, maxInFlight: 100, nowMs: time.nowMs,
    sleep: async (ms) => { if (first) { first = false; time.advance(250); } else { time.advance(Math.max(ms, 0.5)); } },
    iteration: async (_, intendedMs) => { intended.push(intendedMs); },
  });
  assert.deepEqual(intended, [1000, 1100, 1200, 1300, 1400]);
  assert.equal(result.started, 5);
  assert.equal(result.maxStartLagMs, 150);
});
