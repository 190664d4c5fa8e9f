/**
 * A least-recently-used map with a hard entry limit. Relies on Map keeping insertion order:
 * a hit is moved to the end, and the first key is the eviction victim.
 * `entriesMax` 0 disables caching entirely (every `get` misses, `set` stores nothing).
 */
export class BoundedLru<K, V> {
  readonly entriesMax: number;
  readonly #entries = new Map<K, V>();

  constructor(entriesMax: number) {
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 0) throw new RangeError('entriesMax must be a non-negative safe integer');
    this.entriesMax = entriesMax;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  set(key: K, value: V): void {
    if (this.entriesMax === 0) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.entriesMax) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
  }

  clear(): void {
    this.#entries.clear();
  }
}
