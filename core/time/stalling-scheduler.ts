import type { Scheduler, TimerHandle } from '../ports/ports.js';
import type { VirtualTime } from './virtual-time.js';

/**
 * A scheduler on virtual time that can stall as a Node process does: a timer that falls due while
 * stalled is held and fired when the stall ends, late, with the clock at the stall's end. The
 * caller then delivers the I/O that waited, because Node runs due timers before it reads the
 * sockets (late-timer.ts). Tests of both ends' silence timers use it (server/gateway/late-timer.test.ts,
 * agent/agent-core.test.ts); it does no I/O and reads no clock of its own.
 */
export class StallingScheduler implements Scheduler {
  /** Timers that fell due during the current stall, in the order they fell due; undefined: running. */
  #held: Map<number, () => void> | undefined;
  /** The held timers being fired by `resume`, so a callback can still cancel one fired after it. */
  #firing: Map<number, () => void> | undefined;

  constructor(readonly time: VirtualTime) {}

  get stalled(): boolean {
    return this.#held !== undefined;
  }

  schedule(delayMs: number, callback: () => void): TimerHandle {
    const handle = this.time.schedule(delayMs, () => {
      if (this.#held === undefined) callback();
      else this.#held.set(handle.id, callback);
    });
    return handle;
  }

  cancel(handle: TimerHandle): void {
    this.time.cancel(handle);
    this.#held?.delete(handle.id);
    this.#firing?.delete(handle.id);
  }

  /** From now on, timers that fall due are held (the process is not running). */
  stall(): void {
    this.#held ??= new Map();
  }

  /** The process runs again: fires what fell due during the stall, in order; the caller then delivers the I/O that waited. */
  resume(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held === undefined) return;
    this.#firing = held;
    try {
      // A Map visits entries in insertion order and skips those deleted meanwhile (cancelled by an earlier callback).
      for (const [id, callback] of held) {
        held.delete(id);
        callback();
      }
    } finally {
      this.#firing = undefined;
    }
  }
}
