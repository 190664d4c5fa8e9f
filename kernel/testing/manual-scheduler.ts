import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';

/** A virtual-time Scheduler for tests: nothing runs until advance(ms). Bounded to timersMax pending timers. */
export class ManualScheduler implements Scheduler {
  nowMs = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { atMs: number; callback: () => void }>();
  constructor(private readonly timersMax = 10_000) {}

  schedule(delayMs: number, callback: () => void): TimerHandle {
    if (this.timers.size >= this.timersMax) throw new RangeError(`more than ${this.timersMax} pending timers`);
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.nowMs + Math.max(0, delayMs), callback });
    return { id };
  }

  cancel(handle: TimerHandle): void {
    this.timers.delete(handle.id);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Runs every timer due within `ms`, in time order, then lets promise continuations settle. */
  async advance(ms: number): Promise<void> {
    const until = this.nowMs + ms;
    await new Promise((resolve) => setImmediate(resolve)); // let queued work schedule its timers first
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.atMs <= until).sort((a, b) => a[1].atMs - b[1].atMs || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.nowMs = due[1].atMs;
      due[1].callback();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.nowMs = until;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
