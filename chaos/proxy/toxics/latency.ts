import { Queue } from './fifo.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * latency: every chunk is delayed by `latency` ms, plus or minus up to `jitter` ms (uniform,
 * inclusive, never below zero). Delays do not add up: a chunk is due at its arrival time plus its
 * delay, and never before the chunk ahead of it, so order is kept.
 */
class LatencyStage implements ToxicStage {
  readonly #queue = new Queue<{ chunk: Buffer; dueMs: number }>();
  readonly #timer: OneTimer;
  #heldBytes = 0;
  #lastDueMs = Number.NEGATIVE_INFINITY;
  #endHeld = false;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#timer = new OneTimer(context.time);
  }

  get heldBytes(): number {
    return this.#heldBytes;
  }

  get heldPieces(): number {
    return this.#queue.length;
  }

  write(chunk: Buffer): void {
    const dueMs = Math.max(this.context.time.nowMs() + this.#delayMs(), this.#lastDueMs);
    this.#lastDueMs = dueMs;
    this.#queue.push({ chunk, dueMs });
    this.#heldBytes += chunk.length;
    this.#releaseDue();
  }

  end(): void {
    this.#endHeld = true;
    this.#releaseDue();
  }

  release(): HeldData {
    this.#timer.cancel();
    const held = { chunks: this.#queue.drain().map((e) => e.chunk), ended: this.#endHeld };
    this.#heldBytes = 0;
    this.#endHeld = false;
    return held;
  }

  dispose(): void {
    this.release();
  }

  #delayMs(): number {
    const latency = attribute(this.values, 'latency');
    const jitter = attribute(this.values, 'jitter');
    if (jitter === 0) return latency;
    return Math.max(0, latency + this.context.random.intBelow(2 * jitter + 1) - jitter);
  }

  /** Passes on every chunk that is due, then the end once nothing is held; waits for the next. */
  #releaseDue(): void {
    const nowMs = this.context.time.nowMs();
    for (let next = this.#queue.peek(); next !== undefined && next.dueMs <= nowMs; next = this.#queue.peek()) {
      this.#queue.shift();
      this.#heldBytes -= next.chunk.length;
      this.context.output.write(next.chunk);
    }
    const next = this.#queue.peek();
    if (next !== undefined) this.#timer.start(next.dueMs - nowMs, () => this.#releaseDue());
    else if (this.#endHeld) this.#passEnd();
    this.context.heldChanged();
  }

  #passEnd(): void {
    this.#endHeld = false;
    this.context.output.end();
  }
}

export const latencyToxic: ToxicKind = {
  type: 'latency',
  attributes: [
    { name: 'latency', min: 0, max: (l) => l.attributeMsMax, fallback: 0 },
    { name: 'jitter', min: 0, max: (l) => l.attributeMsMax, fallback: 0 },
  ],
  createStage: (values, context) => new LatencyStage(values, context),
};
