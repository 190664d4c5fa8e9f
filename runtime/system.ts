import { randomBytes, randomInt } from 'node:crypto';
import type { Clock, RandomSource, Scheduler, TimerHandle } from '../core/ports/ports.js';

/** The real clock, for services running on wall time. The simulator passes a virtual one. */
export const systemClock: Clock = { nowMs: () => Date.now() };

/** Cryptographically secure randomness from the OS. */
export const systemRandom: RandomSource = {
  bytes: (length) => new Uint8Array(randomBytes(length)),
  intBelow: (bound) => randomInt(bound),
};

interface SystemTimerHandle extends TimerHandle {
  readonly timer: NodeJS.Timeout;
  /** The delay it was set with, as setTimeout takes it: refresh() re-arms with this one. */
  readonly delayMs: number;
}

/** setTimeout's own reading of a delay (below 1, or not a number: 1). */
function timeoutDelayMs(delayMs: number): number {
  return delayMs >= 1 && delayMs <= 0x7fff_ffff ? delayMs : 1;
}

/**
 * Ids of the handles below, counted here: asking a Timeout for its own id (Symbol.toPrimitive)
 * makes Node keep it in a table until it fires or is cleared, an entry per pending timer, and a
 * gateway holds one pending timer per session (docs/benchmarks.md, 2026-12-04 "memory per session").
 */
let nextSystemTimerId = 1;

/** Real timers. Unref'd so a pending timeout never keeps a finished process alive. */
export const systemScheduler: Scheduler = {
  schedule(delayMs, callback) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    const id = nextSystemTimerId;
    // Wraps below 2^31 so the id stays a small integer; ids only tell handles apart while pending.
    nextSystemTimerId = id >= 0x7fff_ffff ? 1 : id + 1;
    const handle: SystemTimerHandle = { id, timer, delayMs: timeoutDelayMs(Math.max(0, delayMs)) };
    return handle;
  },
  cancel(handle) {
    clearTimeout((handle as SystemTimerHandle).timer);
  },
  reschedule(handle, delayMs) {
    const system = handle as SystemTimerHandle;
    // Node's refresh() keeps the timer's own delay, so only that one: no Timeout, handle or closure made.
    if (system.delayMs !== timeoutDelayMs(Math.max(0, delayMs))) return false;
    system.timer.refresh();
    return true;
  },
};
