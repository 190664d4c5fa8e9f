import type { Clock, Scheduler } from '../../core/ports/ports.js';
import { VirtualTime as SharedVirtualTime } from '../../core/time/virtual-time.js';

/** The store tests' view of the shared virtual time (core/time/virtual-time.ts). */
export interface VirtualTime {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void;
  pendingTimers(): number;
}

export function createVirtualTime(startMs = 1_700_000_000_000, timersMax = 100_000): VirtualTime {
  const time = new SharedVirtualTime(startMs, timersMax);
  return { clock: time, scheduler: time, advance: (ms) => void time.advance(ms), pendingTimers: () => time.pendingTimers };
}
