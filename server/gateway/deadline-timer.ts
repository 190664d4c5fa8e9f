/**
 * Node fires a timer longer than 2^31-1 ms (about 24.8 days) at once, and a certificate's
 * notAfter is months away: a far deadline is waited for in steps of at most a day.
 */
export const deadlineStepMsMax = 24 * 3600 * 1000;

/**
 * The wait for a timer at `deadlineMs`: none if it has passed, at most one step if it is far. A
 * timer that fires a step early finds its deadline not reached and arms again (gateway-core.ts #onTimer).
 */
export function timerDelayMs(deadlineMs: number, nowMs: number, stepMsMax: number = deadlineStepMsMax): number {
  return Math.min(Math.max(0, deadlineMs - nowMs), stepMsMax);
}
