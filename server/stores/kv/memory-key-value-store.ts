import { SdcError } from '../../../core/errors/index.js';
import type { Clock } from '../../../core/ports/ports.js';
import { checkBytesMax, checkExpiringSetAdd, checkNowMs } from './expiring-set.js';
import type { BoundedValue, ExpiringSetAddOptions, ExpiringSetAddResult, KeyValueStore, MessageHandler, SetOptions } from './kv-port.js';

/**
 * A KeyValueStore in memory whose TTLs follow an injected Clock, so the simulator can run
 * presence keys and rate limits on virtual time (ioredis-mock reads Date.now). Expiry is lazy:
 * a key whose deadline has passed reads as absent and is swept when the space fills up, so no
 * timer is needed and nothing depends on when timers fire. Pub/sub delivers on a microtask
 * (asynchronous like Redis, and in a deterministic order).
 *
 * Several stores can share one `MemoryKeyValueSpace` (like several clients of one Redis server);
 * each store sees the space through its own key prefix.
 */
export interface MemoryKeyValueSpaceOptions {
  readonly clock: Clock;
  /** Keys the space may hold; a full space (after sweeping expired keys) refuses writes with STORE_LIMIT. */
  readonly keysMax?: number;
  readonly channelsMax?: number;
  readonly handlersPerChannelMax?: number;
}

export interface MemoryKeyValueStoreOptions {
  /** The shared keyspace; a fresh private one on `clock` when absent. */
  readonly space?: MemoryKeyValueSpace;
  readonly clock?: Clock;
  readonly keyPrefix?: string;
  readonly keyLengthMax?: number;
  readonly valueBytesMax?: number;
  /** Where a throwing subscriber goes; the default raises a process warning so it is never silent. */
  readonly onHandlerError?: (error: unknown, channel: string) => void;
}

interface StoredValue {
  value: string;
  /** Absolute clock time at which the key disappears; undefined: no TTL. */
  expiresAtMs: number | undefined;
}

const ttlMsMax = 10 * 365 * 24 * 3600 * 1000;

// An expiring set is kept as this tag then JSON of member -> expiry (caller's clock): a plain
// string never starts with NUL in practice, and one that does not start with the tag is another
// type (STORE_CONFLICT, as Redis's WRONGTYPE).
const expiringSetTag = '\u0000expiring-set:';

/** The members of an expiring set held in `stored` (none when missing), expired ones included. */
function expiringSetMembers(stored: StoredValue | undefined, key: string): Map<string, number> {
  if (stored === undefined) return new Map();
  if (!stored.value.startsWith(expiringSetTag)) throw new SdcError('STORE_CONFLICT', `value of ${key} is not an expiring set`);
  return new Map(Object.entries(JSON.parse(stored.value.slice(expiringSetTag.length)) as Record<string, number>));
}

export class MemoryKeyValueSpace {
  readonly clock: Clock;
  readonly keysMax: number;
  readonly channelsMax: number;
  readonly handlersPerChannelMax: number;
  readonly #values = new Map<string, StoredValue>();
  readonly #channels = new Map<string, Set<MessageHandler>>();

  constructor(options: MemoryKeyValueSpaceOptions) {
    this.clock = options.clock;
    this.keysMax = options.keysMax ?? 1_000_000;
    this.channelsMax = options.channelsMax ?? 1024;
    this.handlersPerChannelMax = options.handlersPerChannelMax ?? 64;
  }

  /** Live keys (expired ones are not counted). */
  get size(): number {
    this.#sweep();
    return this.#values.size;
  }

  read(key: string): StoredValue | undefined {
    const stored = this.#values.get(key);
    if (stored === undefined) return undefined;
    if (stored.expiresAtMs !== undefined && stored.expiresAtMs <= this.clock.nowMs()) {
      this.#values.delete(key);
      return undefined;
    }
    return stored;
  }

  write(key: string, stored: StoredValue): void {
    if (!this.#values.has(key) && this.#values.size >= this.keysMax) {
      this.#sweep();
      if (this.#values.size >= this.keysMax) throw new SdcError('STORE_LIMIT', `more than ${this.keysMax} keys`);
    }
    this.#values.set(key, stored);
  }

  remove(key: string): boolean {
    const existed = this.read(key) !== undefined;
    this.#values.delete(key);
    return existed;
  }

  handlers(channel: string): Set<MessageHandler> | undefined {
    return this.#channels.get(channel);
  }

  addHandler(channel: string, handler: MessageHandler): void {
    let set = this.#channels.get(channel);
    if (set === undefined) {
      if (this.#channels.size >= this.channelsMax) throw new SdcError('STORE_LIMIT', `more than ${this.channelsMax} subscribed channels`);
      set = new Set();
      this.#channels.set(channel, set);
    }
    if (set.size >= this.handlersPerChannelMax) throw new SdcError('STORE_LIMIT', `more than ${this.handlersPerChannelMax} handlers on ${channel}`);
    set.add(handler);
  }

  removeHandler(channel: string, handler: MessageHandler): void {
    const set = this.#channels.get(channel);
    if (set === undefined) return;
    set.delete(handler);
    if (set.size === 0) this.#channels.delete(channel);
  }

  #sweep(): void {
    const nowMs = this.clock.nowMs();
    for (const [key, stored] of this.#values) {
      if (stored.expiresAtMs !== undefined && stored.expiresAtMs <= nowMs) this.#values.delete(key);
    }
  }
}

function reportHandlerError(error: unknown, channel: string): void {
  process.emitWarning(`kv subscriber for ${channel} threw: ${error instanceof Error ? error.message : String(error)}`, 'KeyValueStoreWarning');
}

export class MemoryKeyValueStore implements KeyValueStore {
  readonly #space: MemoryKeyValueSpace;
  readonly #keyPrefix: string;
  readonly #keyLengthMax: number;
  readonly #valueBytesMax: number;
  readonly #onHandlerError: (error: unknown, channel: string) => void;
  /** This store's subscriptions, removed from the space on close. */
  readonly #subscriptions = new Set<{ channel: string; handler: MessageHandler }>();
  #closed = false;

  constructor(options: MemoryKeyValueStoreOptions) {
    if (options.space === undefined && options.clock === undefined) throw new SdcError('STORE_INVALID_ARGUMENT', 'a memory key/value store needs a space or a clock');
    this.#space = options.space ?? new MemoryKeyValueSpace({ clock: options.clock! });
    this.#keyPrefix = options.keyPrefix ?? '';
    this.#keyLengthMax = options.keyLengthMax ?? 512;
    this.#valueBytesMax = options.valueBytesMax ?? 1024 * 1024;
    this.#onHandlerError = options.onHandlerError ?? reportHandlerError;
  }

  get(key: string): Promise<string | null> {
    return this.#run(() => this.#space.read(this.#key(key))?.value ?? null);
  }

  getBounded(key: string, bytesMax: number): Promise<BoundedValue> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      checkBytesMax(bytesMax);
      const value = this.#space.read(fullKey)?.value;
      if (value === undefined) return { state: 'absent' };
      const bytes = Buffer.byteLength(value);
      return bytes > bytesMax ? { state: 'tooLarge', bytes } : { state: 'value', value };
    });
  }

  deleteIfLarger(key: string, bytesMax: number): Promise<boolean> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      checkBytesMax(bytesMax);
      const value = this.#space.read(fullKey)?.value;
      if (value === undefined || Buffer.byteLength(value) <= bytesMax) return false;
      return this.#space.remove(fullKey);
    });
  }

  set(key: string, value: string, opts: SetOptions = {}): Promise<boolean> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      this.#checkValue(value);
      if (opts.ttlMs !== undefined) this.#checkTtl(opts.ttlMs);
      if (opts.onlyIfAbsent === true && this.#space.read(fullKey) !== undefined) return false;
      const expiresAtMs = opts.ttlMs === undefined ? undefined : this.#space.clock.nowMs() + opts.ttlMs;
      this.#space.write(fullKey, { value, expiresAtMs });
      return true;
    });
  }

  compareAndSet(key: string, expected: string, value: string, opts: { readonly ttlMs?: number } = {}): Promise<boolean> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      this.#checkValue(value);
      if (opts.ttlMs !== undefined) this.#checkTtl(opts.ttlMs);
      if (this.#space.read(fullKey)?.value !== expected) return false;
      const expiresAtMs = opts.ttlMs === undefined ? undefined : this.#space.clock.nowMs() + opts.ttlMs;
      this.#space.write(fullKey, { value, expiresAtMs });
      return true;
    });
  }

  deleteIfEqual(key: string, expected: string): Promise<boolean> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      if (this.#space.read(fullKey)?.value !== expected) return false;
      return this.#space.remove(fullKey);
    });
  }

  take(key: string): Promise<string | null> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      // The read and the removal in one synchronous step: no other taker runs in between.
      const stored = this.#space.read(fullKey);
      if (stored === undefined) return null;
      this.#space.remove(fullKey);
      return stored.value;
    });
  }

  del(key: string): Promise<boolean> {
    return this.#run(() => this.#space.remove(this.#key(key)));
  }

  incr(key: string, by = 1): Promise<number> {
    return this.#run(() => {
      if (!Number.isSafeInteger(by)) throw new SdcError('STORE_INVALID_ARGUMENT', 'incr step must be a safe integer');
      const fullKey = this.#key(key);
      const stored = this.#space.read(fullKey);
      const current = stored === undefined ? 0 : Number(stored.value);
      if (stored !== undefined && !/^-?\d+$/.test(stored.value)) throw new SdcError('STORE_CONFLICT', `value of ${key} is not an integer`);
      const next = current + by;
      if (!Number.isSafeInteger(next)) throw new SdcError('STORE_CONFLICT', `value of ${key} would overflow`);
      // Like INCRBY, the counter keeps its TTL.
      this.#space.write(fullKey, { value: String(next), expiresAtMs: stored?.expiresAtMs });
      return next;
    });
  }

  expire(key: string, ttlMs: number): Promise<boolean> {
    return this.#run(() => {
      this.#checkTtl(ttlMs);
      const stored = this.#space.read(this.#key(key));
      if (stored === undefined) return false;
      stored.expiresAtMs = this.#space.clock.nowMs() + ttlMs;
      return true;
    });
  }

  ttlMs(key: string): Promise<number | null> {
    return this.#run(() => {
      const stored = this.#space.read(this.#key(key));
      if (stored?.expiresAtMs === undefined) return null;
      return stored.expiresAtMs - this.#space.clock.nowMs();
    });
  }

  expiringSetAdd(key: string, member: string, opts: ExpiringSetAddOptions): Promise<ExpiringSetAddResult> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      checkExpiringSetAdd(member, opts, ttlMsMax, this.#keyLengthMax);
      const members = expiringSetMembers(this.#space.read(fullKey), key);
      const before = members.size;
      for (const [name, expiresAtMs] of members) if (expiresAtMs <= opts.nowMs) members.delete(name);
      const added = members.size < opts.membersMax;
      if (added) members.set(member, opts.expiresAtMs);
      // A refusal writes only what the pruning dropped: the key's TTL follows the members left.
      if (added || members.size !== before) this.#writeExpiringSet(fullKey, members, opts.nowMs);
      return { added, members: members.size };
    });
  }

  expiringSetRemove(key: string, member: string): Promise<boolean> {
    return this.#run(() => {
      const fullKey = this.#key(key);
      const stored = this.#space.read(fullKey);
      const members = expiringSetMembers(stored, key);
      if (!members.delete(member)) return false;
      if (members.size === 0) this.#space.remove(fullKey);
      else this.#space.write(fullKey, { value: expiringSetTag + JSON.stringify(Object.fromEntries(members)), expiresAtMs: stored?.expiresAtMs });
      return true;
    });
  }

  expiringSetCount(key: string, nowMs: number): Promise<number> {
    return this.#run(() => {
      checkNowMs(nowMs);
      let count = 0;
      for (const expiresAtMs of expiringSetMembers(this.#space.read(this.#key(key)), key).values()) if (expiresAtMs > nowMs) count += 1;
      return count;
    });
  }

  /** Writes the set, or removes it when empty; the key lives until its last member's expiry (on the space's clock). */
  #writeExpiringSet(fullKey: string, members: Map<string, number>, nowMs: number): void {
    if (members.size === 0) {
      this.#space.remove(fullKey);
      return;
    }
    const value = expiringSetTag + JSON.stringify(Object.fromEntries(members));
    this.#checkValue(value);
    const lastMs = Math.max(...members.values());
    this.#space.write(fullKey, { value, expiresAtMs: this.#space.clock.nowMs() + (lastMs - nowMs) });
  }

  publish(channel: string, message: string): Promise<number> {
    return this.#run(() => {
      const fullChannel = this.#key(channel);
      this.#checkValue(message);
      const handlers = [...(this.#space.handlers(fullChannel) ?? [])];
      if (handlers.length === 0) return 0;
      queueMicrotask(() => {
        for (const handler of handlers) {
          try {
            handler(message);
          } catch (error) {
            this.#onHandlerError(error, channel);
          }
        }
      });
      // Redis counts subscribed connections; every store is one connection here.
      return new Set(handlers.map((handler) => ownerOf.get(handler))).size;
    });
  }

  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    return this.#run(() => {
      const fullChannel = this.#key(channel);
      const entry: MessageHandler = (message) => handler(message); // a distinct identity per subscription
      ownerOf.set(entry, this);
      this.#space.addHandler(fullChannel, entry);
      const subscription = { channel: fullChannel, handler: entry };
      this.#subscriptions.add(subscription);
      return async () => {
        if (!this.#subscriptions.delete(subscription)) return;
        this.#space.removeHandler(fullChannel, entry);
      };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const { channel, handler } of this.#subscriptions) this.#space.removeHandler(channel, handler);
    this.#subscriptions.clear();
  }

  async #run<T>(fn: () => T): Promise<T> {
    if (this.#closed) throw new SdcError('STORE_CLOSED', 'key/value store is closed');
    return fn();
  }

  #key(key: string): string {
    if (typeof key !== 'string' || key.length === 0 || key.length > this.#keyLengthMax) {
      throw new SdcError('STORE_INVALID_ARGUMENT', `key must be 1..${this.#keyLengthMax} characters`);
    }
    return `${this.#keyPrefix}${key}`;
  }

  #checkValue(value: string): void {
    if (typeof value !== 'string') throw new SdcError('STORE_INVALID_ARGUMENT', 'values are strings');
    if (Buffer.byteLength(value) > this.#valueBytesMax) throw new SdcError('STORE_LIMIT', `value exceeds ${this.#valueBytesMax} bytes`);
  }

  #checkTtl(ttlMs: number): void {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > ttlMsMax) {
      throw new SdcError('STORE_INVALID_ARGUMENT', `ttlMs must be an integer in 1..${ttlMsMax}`);
    }
  }
}

/** Which store subscribed a handler, so publish can count connections rather than handlers. */
const ownerOf = new WeakMap<MessageHandler, MemoryKeyValueStore>();
