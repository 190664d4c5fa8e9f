import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';

/**
 * Node fires a timer longer than 2^31-1 ms (about 24.8 days) at once, and a certificate's
 * notAfter is months away: a far deadline is waited for in steps of at most a day.
 */
export const deadlineStepMsMax = 24 * 3600 * 1000;

/** A cancellable wait until an absolute time on `clock`. */
export interface DeadlineTimer {
  cancel(): void;
}

/** Runs `run` once `clock` reaches `deadlineMs` (at once if it has), re-arming in steps of at most `stepMsMax`. */
export function armDeadline(options: { clock: Clock; scheduler: Scheduler; deadlineMs: number; run: () => void; stepMsMax?: number }): DeadlineTimer {
  const { clock, scheduler, deadlineMs, run } = options;
  const stepMsMax = options.stepMsMax ?? deadlineStepMsMax;
  let handle: TimerHandle | undefined;
  let cancelled = false;
  const arm = (): void => {
    handle = undefined;
    if (cancelled) return;
    const remainingMs = deadlineMs - clock.nowMs();
    if (remainingMs <= 0) {
      cancelled = true;
      run();
      return;
    }
    handle = scheduler.schedule(Math.min(remainingMs, stepMsMax), arm);
  };
  arm();
  return {
    cancel() {
      cancelled = true;
      if (handle !== undefined) scheduler.cancel(handle);
      handle = undefined;
    },
  };
}
