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

/** A reservation of one count in a sliding window: the count before it, and how to give it back. */
export interface WindowReservation {
  /** Commands counted in the window before this one (this one excluded). */
  readonly countBefore: number;
  /** Takes this count back out of the bucket it went into (a refused command does not count). */
  release(): Promise<void>;
  /**
   * The bucket this count went into, for a release by another request or process
   * (SlidingWindowCounter.releasePlace): a command waiting for approvals keeps its place in its
   * stored row and gives it back when it ends without running.
   */
  readonly place: string;
}

export interface SlidingWindowCounterOptions {
  readonly kv: KeyValueStore;
  readonly clock: Clock;
  /** The counter's name in its keys, e.g. `policy-rate`. */
  readonly scope: string;
}

/** Buckets per window: the window is counted over whole buckets, so it may reach back a tenth further than asked. */
export const slidingWindowBuckets = 10;
/** A bucket is never shorter than this, so a short window does not mean a key per millisecond. */
const bucketMsMin = 100;

/**
 * A sliding window counted in bucketed counters (plain INCR/GET with a TTL: no sorted sets and no
 * Lua, so it runs on ioredis-mock, the embedded store and Redis alike, shared by every control
 * plane on one store). A window of W ms is split into buckets of b = ceil(W / 10) ms; the count
 * "in the window" at time t is the sum of the bucket holding t and the ceil(W / b) buckets
 * before it, which together reach back at least W. So every count made in (t - W, t] is
 * included, and a limit checked against this sum is never exceeded in any W-long interval; the
 * price is that a count can be remembered up to two buckets longer than W (it errs towards
 * refusing).
 *
 * `reserve` increments first and reads after, so two control planes admitting at once each see
 * the other's count: of N concurrent reservations at most `count` see a countBefore below
 * `count`. Closed buckets only ever go down (releases), given clocks that agree to within a bucket.
 */
export class SlidingWindowCounter {
  readonly #o: SlidingWindowCounterOptions;
  /** A bucket key of this counter (#keys): what releasePlace takes back from. */
  readonly #placePattern: RegExp;

  constructor(options: SlidingWindowCounterOptions) {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(options.scope)) throw new SdcError('API_INTERNAL', `window counter scope ${options.scope} is not a short lowercase name`);
    this.#o = options;
    this.#placePattern = new RegExp(`^sdc:rl:${options.scope}:[0-9a-f]{${subjectHashHexChars}}:[0-9]{1,15}:-?[0-9]{1,16}$`);
  }

  /** The count in the window ending now, without adding to it (the dry run). */
  async count(subject: string, windowMs: number): Promise<number> {
    const { keys } = this.#keys(subject, windowMs);
    return sum(await Promise.all(keys.map((key) => this.#read(key))));
  }

  /** Adds one now and answers the count before it; `release()` takes it back. */
  async reserve(subject: string, windowMs: number): Promise<WindowReservation> {
    const { keys, ttlMs } = this.#keys(subject, windowMs);
    const [current, ...earlier] = keys as [string, ...string[]];
    const added = await this.#o.kv.incr(current);
    if (added === 1) await this.#o.kv.expire(current, ttlMs);
    const before = sum(await Promise.all(earlier.map((key) => this.#read(key))));
    let released = false;
    return {
      countBefore: Math.max(0, before + added - 1),
      place: current,
      release: async () => {
        if (released) return;
        released = true;
        await this.#takeBack(current);
      },
    };
  }

  /**
   * Takes one count back out of a bucket a reservation named (WindowReservation.place). Once per
   * reservation: the caller makes sure of it (a compare-and-set on the command's state). A text
   * that is not a bucket key of this counter is refused (STORE_CORRUPT: it came from a stored row).
   */
  async releasePlace(place: string): Promise<void> {
    if (!this.#placePattern.test(place)) throw new SdcError('STORE_CORRUPT', `${place.slice(0, 100)} is not a ${this.#o.scope} window bucket`);
    await this.#takeBack(place);
  }

  async #takeBack(key: string): Promise<void> {
    const left = await this.#o.kv.incr(key, -1);
    // Below zero: the bucket had expired (a release long after its reservation) and the
    // decrement made a new key without a TTL; nobody counts in a bucket that old, so drop it.
    if (left < 0) await this.#o.kv.del(key);
  }

  async #read(key: string): Promise<number> {
    const value = await this.#o.kv.get(key);
    const count = value === null ? 0 : Number(value);
    // A bucket pushed below zero (a release after its reservation's bucket expired) counts nothing.
    return Number.isSafeInteger(count) && count > 0 ? count : 0;
  }

  /** The current bucket's key first, then the earlier ones that complete the window. */
  #keys(subject: string, windowMs: number): { keys: string[]; ttlMs: number } {
    if (!Number.isSafeInteger(windowMs) || windowMs < 1000) throw new SdcError('API_INTERNAL', 'sliding windows need windowMs >= 1000');
    const bucketMs = Math.max(bucketMsMin, Math.ceil(windowMs / slidingWindowBuckets));
    const earlierBuckets = Math.ceil(windowMs / bucketMs);
    const current = Math.floor(this.#o.clock.nowMs() / bucketMs);
    const digest = createHash('sha256').update(subject, 'utf8').digest('hex').slice(0, subjectHashHexChars);
    const keys = Array.from({ length: earlierBuckets + 1 }, (_, back) => `sdc:rl:${this.#o.scope}:${digest}:${bucketMs}:${current - back}`);
    // Kept while any window that sums it can still be asked about, plus a bucket of slack.
    return { keys, ttlMs: (earlierBuckets + 2) * bucketMs };
  }
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
