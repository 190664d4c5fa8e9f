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
}

/** Real timers. Unref'd so a pending timeout never keeps a finished process alive. */
export const systemScheduler: Scheduler = {
  schedule(delayMs, callback) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    const handle: SystemTimerHandle = { id: Number(timer[Symbol.toPrimitive]()), timer };
    return handle;
  },
  cancel(handle) {
    clearTimeout((handle as SystemTimerHandle).timer);
  },
};
