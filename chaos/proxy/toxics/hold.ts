import { ChunkFifo } from './fifo.js';
import type { HeldData, StageContext } from './types.js';

/**
 * What timeout and reset_peer share: nothing passes; every chunk and the end are held (bounded:
 * the link pauses the reading socket when the hold is full) and handed back if the toxic is
 * removed before it fires, so removing it lets the stream go on where it stopped.
 */
export class Hold {
  readonly #queue = new ChunkFifo();
  #endHeld = false;

  constructor(private readonly context: StageContext) {}

  get bytes(): number {
    return this.#queue.bytes;
  }

  get pieces(): number {
    return this.#queue.length;
  }

  write(chunk: Buffer): void {
    this.#queue.push(chunk);
    this.context.heldChanged();
  }

  end(): void {
    this.#endHeld = true;
  }

  release(): HeldData {
    const held = { chunks: this.#queue.drain(), ended: this.#endHeld };
    this.#endHeld = false;
    return held;
  }
}
