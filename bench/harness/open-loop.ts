/**
 * An open-loop arrival schedule: iteration i is due at `startMs + i * 1000 / ratePerS`, whatever
 * the earlier ones are doing, and each iteration is told its intended start so latency is taken
 * from it (no coordinated omission: a stalled server delays the measurements, not the arrivals).
 * At most `maxInFlight` run at once; an arrival beyond that is dropped and counted, as k6's
 * constant-arrival-rate executor counts dropped_iterations when it has no free VU.
 */
export interface OpenLoopOptions {
  readonly ratePerS: number;
  readonly durationMs: number;
  readonly maxInFlight: number;
  readonly nowMs: () => number;
  /** Waits about `ms` (a timer in a run, a virtual clock's advance in a test). */
  readonly sleep: (ms: number) => Promise<void>;
  readonly iteration: (index: number, intendedMs: number) => Promise<void>;
}

export interface OpenLoopResult {
  readonly started: number;
  readonly dropped: number;
  /** The last arrival's lag behind its due time when it started: how late the scheduler itself ran. */
  readonly maxStartLagMs: number;
}

/** The scheduler wakes at least this often, so arrivals stay within a few ms of their due time. */
const tickMsMax = 5;

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const intervalMs = 1000 / options.ratePerS;
  const total = Math.floor((options.durationMs * options.ratePerS) / 1000);
  const startMs = options.nowMs();
  const running = new Set<Promise<void>>();
  let started = 0;
  let dropped = 0;
  let maxStartLagMs = 0;
  for (let index = 0; index < total;) {
    const now = options.nowMs();
    // Every arrival already due starts now (a late scheduler catches up rather than thinning the load).
    while (index < total && startMs + index * intervalMs <= now) {
      const intendedMs = startMs + index * intervalMs;
      maxStartLagMs = Math.max(maxStartLagMs, now - intendedMs);
      if (running.size >= options.maxInFlight) {
        dropped += 1;
      } else {
        started += 1;
        const run: Promise<void> = options.iteration(index, intendedMs).catch(() => undefined).finally(() => running.delete(run));
        running.add(run);
      }
      index += 1;
    }
    if (index < total) await options.sleep(Math.max(0, Math.min(tickMsMax, startMs + index * intervalMs - options.nowMs())));
  }
  await Promise.all(running);
  return { started, dropped, maxStartLagMs };
}
