/**
 * A first-in first-out queue with O(1) shift: an array and a head index, compacted when the dead
 * prefix is half the array.
 */
export class Queue<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.#items[this.#head];
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts an item back at the front. */
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items[this.#head]!;
    this.#head += 1;
    if (this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes and returns every item, in order. */
  drain(): T[] {
    const items = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return items;
  }
}

/** A queue of byte chunks that counts the bytes it holds. */
export class ChunkFifo {
  readonly #queue = new Queue<Buffer>();
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  get length(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
    this.#bytes += chunk.length;
  }

  shift(): Buffer | undefined {
    const chunk = this.#queue.shift();
    if (chunk !== undefined) this.#bytes -= chunk.length;
    return chunk;
  }

  /** Puts a chunk (the rest of one shifted) back at the front. */
  unshift(chunk: Buffer): void {
    this.#queue.unshift(chunk);
    this.#bytes += chunk.length;
  }

  /** Takes up to `bytesMax` bytes from the front as one buffer, splitting a chunk if needed. */
  take(bytesMax: number): Buffer {
    const parts: Buffer[] = [];
    let taken = 0;
    while (taken < bytesMax && this.length > 0) {
      const chunk = this.shift()!;
      const room = bytesMax - taken;
      if (chunk.length > room) this.unshift(chunk.subarray(room));
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      parts.push(part);
      taken += part.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, taken);
  }

  /** Removes and returns every chunk, in order. */
  drain(): Buffer[] {
    this.#bytes = 0;
    return this.#queue.drain();
  }
}
