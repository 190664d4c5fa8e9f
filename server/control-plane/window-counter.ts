import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';

/**
 * Fixed-window counters in the key/value store, so every control-plane process sharing one
 * Redis counts against one limit. The window is chosen from the injected clock (window index
 * = floor(now / windowMs)), never from the store's own time, so tests and the simulator move
 * from one window to the next by advancing their clock. The key's TTL (two windows, in the
 * store's time) only collects old windows.
 *
 * Subjects (a user name, an address, a device id) are hashed into the key: their length and
 * characters are the caller's choice and must not shape our key space.
 */
export interface WindowCounterOptions {
  readonly kv: KeyValueStore;
  readonly clock: Clock;
  /** The counter's name in its keys, e.g. `login-source`. */
  readonly scope: string;
  readonly windowMs: number;
}

/** Hex digits of SHA-256 kept per subject: 64 bits, enough that two subjects never share a count by accident. */
const subjectHashHexChars = 16;

export class WindowCounter {
  readonly #o: WindowCounterOptions;

  constructor(options: WindowCounterOptions) {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(options.scope)) throw new SdcError('API_INTERNAL', `window counter scope ${options.scope} is not a short lowercase name`);
    if (!Number.isSafeInteger(options.windowMs) || options.windowMs < 1000) throw new SdcError('API_INTERNAL', 'window counters need windowMs >= 1000');
    this.#o = options;
  }

  get windowMs(): number {
    return this.#o.windowMs;
  }

  /** Milliseconds from now until the current window ends (at least 1). */
  msUntilWindowEnds(): number {
    const nowMs = this.#o.clock.nowMs();
    return Math.max(1, this.#o.windowMs - (nowMs % this.#o.windowMs));
  }

  /** The count so far in the current window. */
  async current(subject: string): Promise<number> {
    const value = await this.#o.kv.get(this.#key(subject));
    const count = value === null ? 0 : Number(value);
    return Number.isSafeInteger(count) ? count : 0;
  }

  /** Adds one in the current window; returns the new count. */
  async add(subject: string): Promise<number> {
    const key = this.#key(subject);
    const count = await this.#o.kv.incr(key);
    // Only the first increment sets the TTL; a crash between the two leaves one key without a
    // TTL, holding one integer, which the next window never reads again.
    if (count === 1) await this.#o.kv.expire(key, 2 * this.#o.windowMs);
    return count;
  }

  /** Forgets the current window's count (e.g. an account after a successful login). */
  async reset(subject: string): Promise<void> {
    await this.#o.kv.del(this.#key(subject));
  }

  #key(subject: string): string {
    const window = Math.floor(this.#o.clock.nowMs() / this.#o.windowMs);
    const digest = createHash('sha256').update(subject, 'utf8').digest('hex').slice(0, subjectHashHexChars);
    return `sdc:rl:${this.#o.scope}:${digest}:${window}`;
  }
}
