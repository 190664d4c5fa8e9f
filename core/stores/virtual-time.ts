import type { Clock, Scheduler, TimerHandle } from '../protocol/ports.js';

/**
 * A Clock and Scheduler on virtual time for store tests: nothing happens until advance() is called.
 * Timers due at the same instant fire in the order they were scheduled.
 */
export interface VirtualTime {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void;
  pendingTimers(): number;
}

export function createVirtualTime(startMs = 1_700_000_000_000, timersMax = 100_000): VirtualTime {
  let nowMs = startMs;
  let nextId = 1;
  const timers = new Map<number, { dueMs: number; callback: () => void }>();
  return {
    clock: { nowMs: () => nowMs },
    scheduler: {
      schedule(delayMs, callback): TimerHandle {
        if (timers.size >= timersMax) throw new RangeError(`more than ${timersMax} virtual timers`);
        const id = nextId++;
        timers.set(id, { dueMs: nowMs + Math.max(0, delayMs), callback });
        return { id };
      },
      cancel(handle) {
        timers.delete(handle.id);
      },
    },
    advance(ms) {
      const targetMs = nowMs + ms;
      for (;;) {
        let next: [number, { dueMs: number; callback: () => void }] | undefined;
        for (const timer of timers) if (timer[1].dueMs <= targetMs && (next === undefined || timer[1].dueMs < next[1].dueMs)) next = timer;
        if (next === undefined) break;
        timers.delete(next[0]);
        nowMs = Math.max(nowMs, next[1].dueMs);
        next[1].callback();
      }
      nowMs = targetMs;
    },
    pendingTimers: () => timers.size,
  };
}
