import { performance } from 'node:perf_hooks';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';

/**
 * The clock and timers every toxic runs on. The server takes them as a port, so a test drives the
 * toxics on virtual time (core/time/virtual-time.ts) and asserts order instead of elapsed time.
 * Only toxic behaviour uses this; socket housekeeping (connect timeout, close grace) uses real
 * timers, which a test never needs to move.
 */
export type ChaosTime = Clock & Scheduler;

interface RealTimerHandle extends TimerHandle {
  readonly timer: NodeJS.Timeout;
}

let nextTimerId = 1;

/**
 * Real time for `sdc chaos serve`: a monotonic clock (a latency must not jump when the wall clock
 * is set) and node's timers, unref'd because the listening sockets keep the process alive.
 */
export const monotonicTime: ChaosTime = {
  nowMs: () => performance.now(),
  schedule(delayMs, callback) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    const handle: RealTimerHandle = { id: nextTimerId++, timer };
    return handle;
  },
  cancel(handle) {
    clearTimeout((handle as RealTimerHandle).timer);
  },
};
