import { ChunkFifo } from './fifo.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * slicer: every chunk is cut into slices of `average_size` +/- `size_variation` bytes (uniform,
 * at least 1), each passed on as its own write, `delay` microseconds apart. With delay 0 the
 * slices are separate writes that the operating system may still coalesce on the wire.
 */
class SlicerStage implements ToxicStage {
  readonly #slices = new ChunkFifo();
  readonly #timer: OneTimer;
  #endHeld = false;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#timer = new OneTimer(context.time);
  }

  get heldBytes(): number {
    return this.#slices.bytes;
  }

  write(chunk: Buffer): void {
    for (let offset = 0; offset < chunk.length;) {
      const size = this.#sliceSize();
      this.#slices.push(chunk.subarray(offset, offset + size));
      offset += size;
    }
    this.#pump();
  }

  end(): void {
    this.#endHeld = true;
    this.#pump();
  }

  release(): HeldData {
    this.#timer.cancel();
    const held = { chunks: this.#slices.drain(), ended: this.#endHeld };
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

  /** Passes slices on; after each, waits `delay` before the next one (none with delay 0). */
  #pump(): void {
    const delayMs = attribute(this.values, 'delay') / 1000;
    while (!this.#timer.pending && this.#slices.length > 0) {
      this.context.output.write(this.#slices.shift()!);
      if (delayMs > 0) this.#timer.start(delayMs, () => this.#pump());
    }
    if (!this.#timer.pending && this.#slices.length === 0 && this.#endHeld) {
      this.#endHeld = false;
      this.context.output.end();
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
