import { ChunkFifo } from './fifo.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * slicer: every chunk is cut into slices of `average_size` +/- `size_variation` bytes (uniform,
 * at least 1), each passed on as its own write, `delay` microseconds apart. With delay 0 the
 * slices are separate writes that the operating system may still coalesce on the wire.
 *
 * Slices are cut as they are passed on, not when the chunk arrives: a 64 KiB read cut into
 * 1-byte slices would be 65,536 buffers of about 100 bytes of heap each (review h2, finding 2).
 * For the same reason the stage stops passing on while a later stage or the writing socket is
 * full (outputHasRoom), and goes on when the link resumes it.
 */
class SlicerStage implements ToxicStage {
  /** Chunks as they came; the front one is cut as slices leave. */
  readonly #chunks = new ChunkFifo();
  readonly #timer: OneTimer;
  #endHeld = false;
  /** In #pump: a later stage's heldChanged can resume this stage from inside its own loop. */
  #pumping = false;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#timer = new OneTimer(context.time);
  }

  get heldBytes(): number {
    return this.#chunks.bytes;
  }

  get heldPieces(): number {
    return this.#chunks.length;
  }

  write(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#pump();
  }

  end(): void {
    this.#endHeld = true;
    this.#pump();
  }

  resume(): void {
    this.#pump();
  }

  release(): HeldData {
    this.#timer.cancel();
    const held = { chunks: this.#chunks.drain(), ended: this.#endHeld };
    this.#endHeld = false;
    return held;
  }

  dispose(): void {
    this.release();
  }

  #sliceSize(): number {
    const average = attribute(this.values, 'average_size');
    const variation = attribute(this.values, 'size_variation');
    return Math.max(1, average + this.context.random.intBelow(2 * variation + 1) - variation);
  }

  /** The next slice from the front chunk; a chunk's last slice may be shorter (slices never span chunks). */
  #nextSlice(): Buffer {
    const chunk = this.#chunks.shift()!;
    const size = this.#sliceSize();
    if (chunk.length <= size) return chunk;
    this.#chunks.unshift(chunk.subarray(size));
    return chunk.subarray(0, size);
  }

  /** Passes slices on while there is room; after each, waits `delay` before the next one (none with delay 0). */
  #pump(): void {
    // Re-entered (a resume from a later stage while this loop writes): the loop below goes on.
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      const delayMs = attribute(this.values, 'delay') / 1000;
      while (!this.#timer.pending && this.#chunks.length > 0 && this.context.outputHasRoom()) {
        this.context.output.write(this.#nextSlice());
        if (delayMs > 0) this.#timer.start(delayMs, () => this.#pump());
      }
      if (!this.#timer.pending && this.#chunks.length === 0 && this.#endHeld) {
        this.#endHeld = false;
        this.context.output.end();
      }
    } finally {
      this.#pumping = false;
    }
    this.context.heldChanged();
  }
}

export const slicerToxic: ToxicKind = {
  type: 'slicer',
  attributes: [
    { name: 'average_size', min: 1, max: (l) => l.slicerSliceBytesMax, fallback: 0 },
    { name: 'size_variation', min: 0, max: (l) => l.slicerSliceBytesMax, fallback: 0 },
    { name: 'delay', min: 0, max: (l) => l.slicerDelayUsMax, fallback: 0 },
  ],
  crossCheck: (values) => (attribute(values, 'size_variation') < attribute(values, 'average_size')
    ? undefined : 'size_variation must be smaller than average_size'),
  createStage: (values, context) => new SlicerStage(values, context),
};
