import type { Clock, Scheduler, TimerHandle } from '../ports/ports.js';

interface Timer {
  readonly id: number;
  readonly dueMs: number;
  readonly callback: () => void;
}

/** Where virtual time starts unless the caller says (2023-11-14): a fixed, realistic epoch, so runs and tests repeat exactly. */
export const virtualTimeStartMsDefault = 1_700_000_000_000;

/**
 * Virtual time: a clock that only moves when the simulator says so, and a scheduler whose
 * timers fire in (due time, creation order) order as time advances. Ties are broken by
 * creation order, so a run is deterministic.
 */
export class VirtualTime implements Clock, Scheduler {
  #nowMs: number;
  #nextId = 1;
  /** Binary min-heap on (dueMs, id). */
  readonly #heap: Timer[] = [];
  readonly #cancelled = new Set<number>();
  /** Ids of timers scheduled and neither fired nor cancelled: makes cancel O(1). */
  readonly #live = new Set<number>();

  constructor(startMs = virtualTimeStartMsDefault, readonly timersMax = 10_000_000) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  get pendingTimers(): number {
    return this.#heap.length - this.#cancelled.size;
  }

  schedule(delayMs: number, callback: () => void): TimerHandle {
    if (this.#heap.length >= this.timersMax) throw new RangeError(`more than ${this.timersMax} virtual timers`);
    const timer = { id: this.#nextId++, dueMs: this.#nowMs + Math.max(0, Math.ceil(delayMs)), callback };
    this.#push(timer);
    this.#live.add(timer.id);
    return { id: timer.id };
  }

  cancel(handle: TimerHandle): void {
    if (this.#live.delete(handle.id)) this.#cancelled.add(handle.id);
  }

  /** Due time of the next live timer, if any. */
  nextDueMs(): number | undefined {
    this.#dropCancelledTop();
    return this.#heap[0]?.dueMs;
  }

  /**
   * Fires every timer due at or before `untilMs`, advancing the clock to each timer's due time,
   * then sets the clock to `untilMs`. `afterEach` runs after each callback (the simulator uses
   * it to let promise continuations settle).
   */
  async runUntil(untilMs: number, afterEach: () => Promise<void> = async () => {}): Promise<number> {
    let fired = 0;
    while (this.#fireNextDue(untilMs)) {
      fired += 1;
      await afterEach();
    }
    this.#nowMs = Math.max(this.#nowMs, untilMs);
    return fired;
  }

  /** Synchronous form of runUntil for tests and code without promise continuations: advances by `ms`. */
  advance(ms: number): number {
    const untilMs = this.#nowMs + ms;
    let fired = 0;
    while (this.#fireNextDue(untilMs)) fired += 1;
    this.#nowMs = Math.max(this.#nowMs, untilMs);
    return fired;
  }

  /** Fires the earliest live timer due at or before `untilMs`, moving the clock to it; false when none is due. */
  #fireNextDue(untilMs: number): boolean {
    this.#dropCancelledTop();
    const top = this.#heap[0];
    if (top === undefined || top.dueMs > untilMs) return false;
    this.#pop();
    this.#live.delete(top.id);
    this.#nowMs = Math.max(this.#nowMs, top.dueMs);
    top.callback();
    return true;
  }

  #dropCancelledTop(): void {
    while (this.#heap.length > 0 && this.#cancelled.has(this.#heap[0]!.id)) {
      this.#cancelled.delete(this.#heap[0]!.id);
      this.#pop();
    }
  }

  #less(a: Timer, b: Timer): boolean {
    return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.id < b.id);
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): Timer | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.#less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.#less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}
