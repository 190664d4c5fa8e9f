/**
 * The model tier's event queue: a binary min-heap on (due ms, push order) over typed arrays, so
 * millions of pending events cost no objects and no garbage. An event is a kind (0-255) and four
 * int32 arguments; its meaning belongs to the module that pushed it (sim/model/events.ts). There
 * is no cancel: a handler checks the epoch it was given against the current one and ignores a
 * stale event, which is cheaper than finding and removing it.
 *
 * Ties on due time pop in push order, so a run is deterministic.
 */
export const eventQueueLimits = Object.freeze({
  /** Slots allocated up front; the arrays double when full. */
  capacityInitial: 1 << 16,
  /** Pending events at most (about 41 bytes each, so 1.6 GiB): more means a runaway process in the model. */
  pendingMax: 40_000_000,
});

export class EventQueue {
  #dueMs: Float64Array;
  #order: Float64Array;
  #kind: Uint8Array;
  #a: Int32Array;
  #b: Int32Array;
  #c: Int32Array;
  #d: Int32Array;
  /** Heap of slot indices. */
  #heap: Int32Array;
  /** Free slot indices (a stack). */
  #free: Int32Array;
  #freeCount: number;
  #size = 0;
  #nextOrder = 0;
  readonly #pendingMax: number;

  /** The event popUntil() took out: read these right after it returns true. */
  dueMs = 0;
  kind = 0;
  a = 0;
  b = 0;
  c = 0;
  d = 0;

  constructor(options: { capacity?: number; pendingMax?: number } = {}) {
    const capacity = Math.max(16, options.capacity ?? eventQueueLimits.capacityInitial);
    this.#pendingMax = options.pendingMax ?? eventQueueLimits.pendingMax;
    this.#dueMs = new Float64Array(capacity);
    this.#order = new Float64Array(capacity);
    this.#kind = new Uint8Array(capacity);
    this.#a = new Int32Array(capacity);
    this.#b = new Int32Array(capacity);
    this.#c = new Int32Array(capacity);
    this.#d = new Int32Array(capacity);
    this.#heap = new Int32Array(capacity);
    this.#free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i += 1) this.#free[i] = capacity - 1 - i;
    this.#freeCount = capacity;
  }

  get size(): number {
    return this.#size;
  }

  /** Due time of the earliest event, or Infinity when none is pending. */
  peekDueMs(): number {
    return this.#size === 0 ? Infinity : this.#dueMs[this.#heap[0]!]!;
  }

  push(dueMs: number, kind: number, a: number, b: number, c: number, d: number): void {
    if (this.#freeCount === 0) this.#grow();
    const slot = this.#free[--this.#freeCount]!;
    this.#dueMs[slot] = dueMs;
    this.#order[slot] = this.#nextOrder++;
    this.#kind[slot] = kind;
    this.#a[slot] = a;
    this.#b[slot] = b;
    this.#c[slot] = c;
    this.#d[slot] = d;
    this.#siftUp(this.#size++, slot);
  }

  /** Takes out the earliest event due at or before `untilMs` into the public fields; false when none is. */
  popUntil(untilMs: number): boolean {
    if (this.#size === 0) return false;
    const top = this.#heap[0]!;
    if (this.#dueMs[top]! > untilMs) return false;
    this.dueMs = this.#dueMs[top]!;
    this.kind = this.#kind[top]!;
    this.a = this.#a[top]!;
    this.b = this.#b[top]!;
    this.c = this.#c[top]!;
    this.d = this.#d[top]!;
    this.#free[this.#freeCount++] = top;
    const last = this.#heap[--this.#size]!;
    if (this.#size > 0) this.#siftDown(0, last);
    return true;
  }

  #less(x: number, y: number): boolean {
    const dx = this.#dueMs[x]!;
    const dy = this.#dueMs[y]!;
    return dx < dy || (dx === dy && this.#order[x]! < this.#order[y]!);
  }

  #siftUp(index: number, slot: number): void {
    const heap = this.#heap;
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (!this.#less(slot, above)) break;
      heap[i] = above;
      i = parent;
    }
    heap[i] = slot;
  }

  #siftDown(index: number, slot: number): void {
    const heap = this.#heap;
    const size = this.#size;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && this.#less(heap[right]!, heap[left]!) ? right : left;
      if (!this.#less(heap[child]!, slot)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = slot;
  }

  #grow(): void {
    const old = this.#dueMs.length;
    if (old >= this.#pendingMax) throw new RangeError(`more than ${this.#pendingMax} pending model events`);
    const capacity = Math.min(this.#pendingMax, old * 2);
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(array: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(array);
      return next;
    };
    this.#dueMs = grow(this.#dueMs, (n) => new Float64Array(n));
    this.#order = grow(this.#order, (n) => new Float64Array(n));
    this.#kind = grow(this.#kind, (n) => new Uint8Array(n));
    this.#a = grow(this.#a, (n) => new Int32Array(n));
    this.#b = grow(this.#b, (n) => new Int32Array(n));
    this.#c = grow(this.#c, (n) => new Int32Array(n));
    this.#d = grow(this.#d, (n) => new Int32Array(n));
    this.#heap = grow(this.#heap, (n) => new Int32Array(n));
    // Every old slot is in use (the free stack was empty): the new slots are the free ones.
    this.#free = new Int32Array(capacity);
    for (let i = capacity - 1; i >= old; i -= 1) this.#free[this.#freeCount++] = i;
  }
}
