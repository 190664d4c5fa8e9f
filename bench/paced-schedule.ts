/**
 * An open-loop schedule for the round-trip bench (`--rate`): item k is due at
 * `startMs + k * 1000 / ratePerS`, whether or not earlier items have finished, and its latency is
 * taken from that due time, not from when it was actually sent. A closed loop (each client waits
 * for its last answer before sending the next) lets a slow server slow the offered load down and
 * hides the wait from the figures ("coordinated omission"); a fixed schedule does neither, so its
 * percentiles say what a user arriving at that rate would see.
 */

import { sleep } from './wall-time.js';

/** Items per second at most: above this the timer granularity, not the rate, sets the spacing. */
export const pacedRatePerSMax = 10_000;

export interface PacedRun {
  /** Items to run, 0 to `count - 1`, in order of their due times. */
  readonly count: number;
  readonly ratePerS: number;
  /** Monotonic clock in ms. */
  readonly nowMs: () => number;
  /** Waits until `atMs` on the same clock; default a wall-time timer (bench/wall-time.ts), a virtual clock in tests. */
  readonly sleepUntil?: (atMs: number) => Promise<void>;
  /** Starts item k; not awaited before the next is due. `dueMs` is its place on the schedule. */
  readonly start: (k: number, dueMs: number) => Promise<void>;
  /** Stop starting items once the clock passes this (the run's deadline); started ones are awaited. */
  readonly deadlineMs?: number;
}

/**
 * Runs every item on its due time and resolves once all started items have settled; returns how
 * many were started. An item that throws does not stop the schedule (record refusals inside
 * `start`); the first such error is thrown at the end.
 */
export async function runPaced(run: PacedRun): Promise<number> {
  if (!(run.ratePerS > 0) || run.ratePerS > pacedRatePerSMax) throw new RangeError(`ratePerS must be above 0 and at most ${pacedRatePerSMax}`);
  if (!Number.isSafeInteger(run.count) || run.count < 0) throw new RangeError('count must be a whole number of items');
  const intervalMs = 1_000 / run.ratePerS;
  const sleepUntil = run.sleepUntil ?? ((atMs: number) => sleep(Math.max(0, atMs - run.nowMs())));
  const startMs = run.nowMs();
  // Bounded by `count`, which the caller bounds (agents x commands per agent).
  const started: Array<Promise<void>> = [];
  for (let k = 0; k < run.count; k += 1) {
    const dueMs = startMs + k * intervalMs;
    // Again until due: a timer may fire up to a millisecond early against a sub-millisecond clock
    // (libuv reads its clock once per loop turn), and an item started early would time as negative.
    while (run.nowMs() < dueMs) await sleepUntil(dueMs);
    if (run.deadlineMs !== undefined && run.nowMs() >= run.deadlineMs) break;
    const item = run.start(k, dueMs);
    // Handled now, or a failure while the schedule sleeps would be an unhandled rejection; read below.
    item.catch(() => undefined);
    started.push(item);
  }
  // Every started item settles before the first failure (if any) is thrown: none is left running.
  const settled = await Promise.allSettled(started);
  const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return started.length;
}
