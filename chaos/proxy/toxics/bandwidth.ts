import { ChunkFifo } from './fifo.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/** Toxiproxy sends a slow stream in slices of 100 ms worth of bytes; so do we. */
const sliceDurationMs = 100;

/**
 * bandwidth: at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy) go through; 0 means no limit.
 * Bytes leave in slices; a slice leaves when the wire would have finished sending it, so by any
 * time T after the first byte arrived, at most rate x T bytes have left.
 */
class BandwidthStage implements ToxicStage {
  readonly #queue = new ChunkFifo();
  readonly #timer: OneTimer;
  /** The slice on the wire: taken from the queue, not yet passed on. */
  #sending: Buffer | undefined;
  /** When the simulated wire finishes the slice being sent (fractional milliseconds). */
  #wireFreeAtMs = Number.NEGATIVE_INFINITY;
  #endHeld = false;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#timer = new OneTimer(context.time);
  }

  get heldBytes(): number {
    return this.#queue.bytes + (this.#sending?.length ?? 0);
  }

  get heldPieces(): number {
    return this.#queue.length + (this.#sending === undefined ? 0 : 1);
  }

  write(chunk: Buffer): void {
    this.#queue.push(chunk);
    this.#pump();
  }

  end(): void {
    this.#endHeld = true;
    this.#pump();
  }

  release(): HeldData {
    this.#timer.cancel();
    const sending = this.#sending === undefined ? [] : [this.#sending];
    const held = { chunks: [...sending, ...this.#queue.drain()], ended: this.#endHeld };
    this.#sending = undefined;
    this.#endHeld = false;
    return held;
  }

  dispose(): void {
    this.release();
  }

  /** Bytes per millisecond: `rate` KB/s is `rate` bytes/ms. */
  get #rate(): number {
    return attribute(this.values, 'rate');
  }

  #pump(): void {
    if (this.#sending !== undefined) return;
    if (this.#rate === 0) this.#passAll();
    else if (this.#queue.length > 0) this.#sendSlice();
    else if (this.#endHeld) this.#passEnd();
    this.context.heldChanged();
  }

  #sendSlice(): void {
    const slice = this.#queue.take(Math.max(1, this.#rate * sliceDurationMs));
    const nowMs = this.context.time.nowMs();
    this.#wireFreeAtMs = Math.max(nowMs, this.#wireFreeAtMs) + slice.length / this.#rate;
    this.#sending = slice;
    this.#timer.start(this.#wireFreeAtMs - nowMs, () => {
      this.#sending = undefined;
      this.context.output.write(slice);
      this.#pump();
    });
  }

  #passAll(): void {
    for (let chunk = this.#queue.shift(); chunk !== undefined; chunk = this.#queue.shift()) this.context.output.write(chunk);
    if (this.#endHeld) this.#passEnd();
  }

  #passEnd(): void {
    this.#endHeld = false;
    this.context.output.end();
  }
}

export const bandwidthToxic: ToxicKind = {
  type: 'bandwidth',
  attributes: [{ name: 'rate', min: 0, max: (l) => l.bandwidthRateKbPerSecondMax, fallback: 0 }],
  createStage: (values, context) => new BandwidthStage(values, context),
};
