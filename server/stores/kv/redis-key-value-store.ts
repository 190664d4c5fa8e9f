import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SdcError } from '../../../core/errors/index.js';
import { mapRedisError } from '../redis-errors.js';
import { ioredisLibrary, ioredisMockLibrary } from '../store-libraries.js';
import { checkBytesMax, checkExpiringSetAdd, checkNowMs } from './expiring-set.js';
import type { BoundedValue, ExpiringSetAddOptions, ExpiringSetAddResult, KeyValueStore, MessageHandler, SetOptions, SubscribeOptions } from './kv-port.js';

export interface RedisKeyValueStoreOptions {
  /** An ioredis client or an ioredis-mock instance; the store owns it and closes it. */
  readonly client: Redis;
  /** Prepended to every key and channel, so stores sharing a server never collide. */
  readonly keyPrefix: string;
  readonly keyLengthMax?: number;
  readonly valueBytesMax?: number;
  readonly channelsMax?: number;
  readonly handlersPerChannelMax?: number;
  /** Where a throwing subscriber goes; the default raises a process warning so it is never silent. */
  readonly onHandlerError?: (error: unknown, channel: string) => void;
  /**
   * The client's own data, readable synchronously: only for ioredis-mock, whose commands run when
   * called. compareAndSet and deleteIfEqual then read it and issue their write in one synchronous
   * step, as atomic as the script, without the script: ioredis-mock runs each EVAL in a new
   * fengari Lua state that parses the script again (about 9 % of `sdc bench roundtrip`'s CPU at 200
   * agents on embedded stores, for the gateway's presence refreshes; issue 17).
   */
  readonly inProcessData?: InProcessData;
}

/** ioredis-mock's keyspace (keys as the client sees them; expired keys read as absent). */
export interface InProcessData {
  has(key: string): boolean;
  get(key: string): unknown;
}

const ttlMsMax = 10 * 365 * 24 * 3600 * 1000;

/** One script, so the comparison and the write are atomic on the server (GET of a missing key is false, never equal). */
const compareAndSetScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`;

/** The comparison and the DEL in one script, for the same reason as compareAndSetScript. */
const deleteIfEqualScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

/**
 * getBounded in one script: STRLEN first, so a value above the bound (ARGV[1] bytes) is answered
 * by its size and never sent; GET of a missing key is false, which cannot sit in a Lua table.
 */
const getBoundedScript = `
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return {2, n} end
local v = redis.call('GET', KEYS[1])
if v == false then return {0} end
return {1, v}`;

/** The size check and the DEL in one script, so a value within the bound written meanwhile is never removed. */
const deleteIfLargerScript = `
if redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[1])`;

/**
 * expiringSetAdd in one script: prune by score (expiry on the caller's clock, ARGV[1]), count, and
 * only below the bound add and set the key's TTL to its last member's expiry; a refusal only prunes.
 * The PEXPIRE argument is at most ttlMsMax (12 digits), which Lua's number-to-string keeps exact.
 */
const expiringSetAddScript = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return {0, n} end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], tonumber(last[2]) - tonumber(ARGV[1]))
return {1, redis.call('ZCARD', KEYS[1])}`;

/** A Lua script and the SHA-1 of its text, by which EVALSHA names it. */
export interface StoreScript {
  readonly lua: string;
  readonly sha1: string;
}

function storeScript(lua: string): StoreScript {
  return { lua, sha1: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Sent by SHA-1 (EVALSHA): the presence refresh of every heartbeat is a compareAndSet, and EVAL
 * would ship the text each time and make Redis hash it again. By hand rather than with ioredis
 * `defineCommand`, whose wrapper cost 1-3 µs more of the client's CPU per call (issue 15,
 * docs/benchmarks.md). Exported for scripts/measure-kv-scripts.ts, which compares the two ways.
 */
export const kvScripts = {
  compareAndSet: storeScript(compareAndSetScript),
  deleteIfEqual: storeScript(deleteIfEqualScript),
  getBounded: storeScript(getBoundedScript),
  deleteIfLarger: storeScript(deleteIfLargerScript),
  expiringSetAdd: storeScript(expiringSetAddScript),
} as const;

/** Redis's answer to EVALSHA of a script it does not hold. */
function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function reportHandlerError(error: unknown, channel: string): void {
  process.emitWarning(`kv subscriber for ${channel} threw: ${error instanceof Error ? error.message : String(error)}`, 'KeyValueStoreWarning');
}

/**
 * One KeyValueStore over any ioredis-compatible client: real ioredis, or ioredis-mock as the
 * embedded default. Subscriptions use a duplicate connection, because a Redis connection in
 * subscribe mode accepts no other commands.
 */
export class RedisKeyValueStore implements KeyValueStore {
  private readonly client: Redis;
  private subscriber: Redis | undefined;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  /** By subscription: what to call when the subscriber connection came back (SubscribeOptions). */
  private readonly resubscribeListeners = new Map<MessageHandler, () => void>();
  private readonly keyPrefix: string;
  private readonly keyLengthMax: number;
  private readonly valueBytesMax: number;
  private readonly channelsMax: number;
  private readonly handlersPerChannelMax: number;
  private readonly onHandlerError: (error: unknown, channel: string) => void;
  private readonly inProcessData: InProcessData | undefined;
  private closed = false;

  constructor(options: RedisKeyValueStoreOptions) {
    this.client = options.client;
    this.client.on('error', () => undefined); // errors reach callers through rejected commands
    this.keyPrefix = options.keyPrefix;
    this.keyLengthMax = options.keyLengthMax ?? 512;
    this.valueBytesMax = options.valueBytesMax ?? 1024 * 1024;
    this.channelsMax = options.channelsMax ?? 1024;
    this.handlersPerChannelMax = options.handlersPerChannelMax ?? 64;
    this.onHandlerError = options.onHandlerError ?? reportHandlerError;
    this.inProcessData = options.inProcessData;
  }

  get(key: string): Promise<string | null> {
    return this.run(() => this.client.get(this.key(key)));
  }

  getBounded(key: string, bytesMax: number): Promise<BoundedValue> {
    return this.run(async () => {
      const fullKey = this.key(key);
      checkBytesMax(bytesMax);
      if (this.inProcessData !== undefined) {
        // ioredis-mock holds the value in this process already: its size is read, not the script run.
        const value = this.inProcessValue(fullKey);
        if (value === null) return { state: 'absent' };
        const bytes = Buffer.byteLength(value);
        return bytes > bytesMax ? { state: 'tooLarge', bytes } : { state: 'value', value };
      }
      const [kind, payload] = await this.evalScript(kvScripts.getBounded, fullKey, String(bytesMax)) as [number, (number | string)?];
      if (kind === 2) return { state: 'tooLarge', bytes: Number(payload) };
      return kind === 1 ? { state: 'value', value: String(payload) } : { state: 'absent' };
    });
  }

  deleteIfLarger(key: string, bytesMax: number): Promise<boolean> {
    return this.run(async () => {
      const fullKey = this.key(key);
      checkBytesMax(bytesMax);
      if (this.inProcessData !== undefined) {
        // As compareAndSet: the size read and the DEL in one synchronous step.
        const value = this.inProcessValue(fullKey);
        if (value === null || Buffer.byteLength(value) <= bytesMax) return false;
        return (await this.client.del(fullKey)) > 0;
      }
      return (await this.evalScript(kvScripts.deleteIfLarger, fullKey, String(bytesMax))) === 1;
    });
  }

  set(key: string, value: string, opts: SetOptions = {}): Promise<boolean> {
    return this.run(async () => {
      const fullKey = this.key(key);
      this.checkValue(value);
      const ttl = opts.ttlMs;
      if (ttl !== undefined) this.checkTtl(ttl);
      let reply: string | null;
      if (ttl !== undefined && opts.onlyIfAbsent === true) reply = await this.client.set(fullKey, value, 'PX', ttl, 'NX');
      else if (ttl !== undefined) reply = await this.client.set(fullKey, value, 'PX', ttl);
      else if (opts.onlyIfAbsent === true) reply = await this.client.set(fullKey, value, 'NX');
      else reply = await this.client.set(fullKey, value);
      return reply === 'OK';
    });
  }

  compareAndSet(key: string, expected: string, value: string, opts: { readonly ttlMs?: number } = {}): Promise<boolean> {
    return this.run(async () => {
      const fullKey = this.key(key);
      this.checkValue(value);
      if (opts.ttlMs !== undefined) this.checkTtl(opts.ttlMs);
      if (this.inProcessData !== undefined) {
        // No await between the read and the SET, which ioredis-mock performs as it is called.
        if (this.inProcessValue(fullKey) !== expected) return false;
        const written = opts.ttlMs === undefined ? this.client.set(fullKey, value) : this.client.set(fullKey, value, 'PX', opts.ttlMs);
        return (await written) === 'OK';
      }
      const reply = await this.evalScript(kvScripts.compareAndSet, fullKey, expected, value, opts.ttlMs === undefined ? '' : String(opts.ttlMs));
      return reply === 1;
    });
  }

  deleteIfEqual(key: string, expected: string): Promise<boolean> {
    return this.run(async () => {
      const fullKey = this.key(key);
      if (this.inProcessData !== undefined) {
        // As compareAndSet: the read and the DEL in one synchronous step.
        if (this.inProcessValue(fullKey) !== expected) return false;
        return (await this.client.del(fullKey)) > 0;
      }
      return (await this.evalScript(kvScripts.deleteIfEqual, fullKey, expected)) === 1;
    });
  }

  /**
   * Runs a one-key script by its SHA-1. Redis holds scripts until a restart or SCRIPT FLUSH (and
   * never had one it was not sent yet): it then answers NOSCRIPT, and EVAL sends the text, which
   * runs the script and caches it again, so callers never see NOSCRIPT. The EVAL goes after what
   * was sent meanwhile; both scripts write only over `expected`, so a write that overtook one makes
   * it answer false rather than clobber. With autopipelining, EVALSHA joins the pipeline as any
   * command does, and one NOSCRIPT in a pipeline fails only that command.
   */
  private async evalScript(script: StoreScript, fullKey: string, ...args: string[]): Promise<unknown> {
    try {
      return await this.client.evalsha(script.sha1, 1, fullKey, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.client.eval(script.lua, 1, fullKey, ...args);
    }
  }

  /** What GET would answer now, read synchronously from ioredis-mock's keyspace (null: no such key). */
  private inProcessValue(fullKey: string): string | null {
    const data = this.inProcessData;
    if (data === undefined || !data.has(fullKey)) return null;
    const value = data.get(fullKey);
    return Buffer.isBuffer(value) ? value.toString() : typeof value === 'string' ? value : null;
  }

  /** GETDEL: one command, atomic on the server (and in ioredis-mock, which runs it as it is called). */
  take(key: string): Promise<string | null> {
    return this.run(() => this.client.getdel(this.key(key)));
  }

  del(key: string): Promise<boolean> {
    return this.run(async () => (await this.client.del(this.key(key))) > 0);
  }

  incr(key: string, by = 1): Promise<number> {
    return this.run(async () => {
      if (!Number.isSafeInteger(by)) throw new SdcError('STORE_INVALID_ARGUMENT', 'incr step must be a safe integer');
      const result = await this.client.incrby(this.key(key), by);
      // Real Redis refuses a non-integer value; ioredis-mock returns NaN instead, so check here too.
      if (!Number.isSafeInteger(result)) throw new SdcError('STORE_CONFLICT', `value of ${key} is not an integer`);
      return result;
    });
  }

  expire(key: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => {
      this.checkTtl(ttlMs);
      return (await this.client.pexpire(this.key(key), ttlMs)) === 1;
    });
  }

  ttlMs(key: string): Promise<number | null> {
    return this.run(async () => {
      const remaining = await this.client.pttl(this.key(key));
      return remaining >= 0 ? remaining : null; // -2 missing, -1 no TTL
    });
  }

  expiringSetAdd(key: string, member: string, opts: ExpiringSetAddOptions): Promise<ExpiringSetAddResult> {
    return this.run(async () => {
      const fullKey = this.key(key);
      checkExpiringSetAdd(member, opts, ttlMsMax, this.keyLengthMax);
      const inProcess = this.inProcessExpiringSetAdd(fullKey, member, opts);
      if (inProcess !== undefined) return inProcess;
      const reply = await this.evalScript(kvScripts.expiringSetAdd, fullKey, String(opts.nowMs), member, String(opts.expiresAtMs), String(opts.membersMax));
      const [added, members] = reply as [number, number];
      return { added: added === 1, members: Number(members) };
    });
  }

  /**
   * expiringSetAdd on ioredis-mock without the script, which costs about 30 ms of CPU there (a new
   * fengari state per EVAL): its commands run as they are called, so the prune, the count read from
   * its keyspace, the ZADD and the PEXPIRE happen in one synchronous step, as atomic as the script.
   * Undefined (use the script) when there is no keyspace to read. STORE_CONFLICT for a key that
   * holds anything but a sorted set (ioredis-mock's Lua loses the WRONGTYPE of a command in a script).
   */
  private inProcessExpiringSetAdd(fullKey: string, member: string, opts: ExpiringSetAddOptions): Promise<ExpiringSetAddResult> | undefined {
    const data = this.inProcessData;
    if (data === undefined) return undefined;
    if (data.has(fullKey) && sortedSetScores(data.get(fullKey)) === undefined) {
      throw new SdcError('STORE_CONFLICT', `value of ${fullKey.slice(this.keyPrefix.length)} is not an expiring set`);
    }
    const pruned = this.client.zremrangebyscore(fullKey, '-inf', opts.nowMs);
    const left = sortedSetScores(data.has(fullKey) ? data.get(fullKey) : new Map()) ?? [];
    if (left.length >= opts.membersMax) return pruned.then(() => ({ added: false, members: left.length }));
    const adding = this.client.zadd(fullKey, opts.expiresAtMs, member);
    const now = sortedSetScores(data.get(fullKey)) ?? [opts.expiresAtMs];
    const expiring = this.client.pexpire(fullKey, Math.max(...now) - opts.nowMs);
    return Promise.all([pruned, adding, expiring]).then(() => ({ added: true, members: now.length }));
  }

  expiringSetRemove(key: string, member: string): Promise<boolean> {
    return this.run(async () => (await this.client.zrem(this.key(key), member)) > 0);
  }

  expiringSetCount(key: string, nowMs: number): Promise<number> {
    return this.run(async () => {
      checkNowMs(nowMs);
      return this.client.zcount(this.key(key), `(${nowMs}`, '+inf');
    });
  }

  publish(channel: string, message: string): Promise<number> {
    return this.run(async () => {
      this.checkValue(message);
      return this.client.publish(this.key(channel), message);
    });
  }

  subscribe(channel: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    return this.run(async () => {
      const fullChannel = this.key(channel);
      let set = this.handlers.get(fullChannel);
      if (set === undefined) {
        if (this.handlers.size >= this.channelsMax) throw new SdcError('STORE_LIMIT', `more than ${this.channelsMax} subscribed channels`);
        set = new Set();
        this.handlers.set(fullChannel, set);
        try {
          await this.subscriberClient().subscribe(fullChannel);
        } catch (error) {
          this.handlers.delete(fullChannel);
          throw error;
        }
      }
      if (set.size >= this.handlersPerChannelMax) throw new SdcError('STORE_LIMIT', `more than ${this.handlersPerChannelMax} handlers on ${channel}`);
      const entry: MessageHandler = (message) => handler(message); // a distinct identity per subscription
      set.add(entry);
      const onResubscribed = options.onResubscribed;
      if (onResubscribed !== undefined) this.resubscribeListeners.set(entry, onResubscribed);
      return async () => {
        this.resubscribeListeners.delete(entry);
        const current = this.handlers.get(fullChannel);
        if (current === undefined || !current.delete(entry) || current.size > 0) return;
        this.handlers.delete(fullChannel);
        if (!this.closed) await this.run(() => this.subscriberClient().unsubscribe(fullChannel));
      };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.resubscribeListeners.clear();
    const clients = this.subscriber === undefined ? [this.client] : [this.subscriber, this.client];
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  }

  private subscriberClient(): Redis {
    if (this.subscriber === undefined) {
      // Named, so an operator's CLIENT LIST (and our outage test) can tell which connection is whose.
      const subscriber = this.client.duplicate({ connectionName: subscriberConnectionName(this.keyPrefix) });
      subscriber.on('error', () => undefined);
      subscriber.on('message', (channel: string, message: string) => {
        for (const handler of this.handlers.get(channel) ?? []) {
          try {
            handler(message);
          } catch (error) {
            this.onHandlerError(error, channel.slice(this.keyPrefix.length));
          }
        }
      });
      // ioredis re-subscribes by itself after a reconnect (autoResubscribe), then says `ready`;
      // what was published in between is gone, so the listeners are told from the second `ready` on.
      let readies = 0;
      subscriber.on('ready', () => {
        readies += 1;
        if (readies > 1 && !this.closed) this.notifyResubscribed();
      });
      this.subscriber = subscriber;
    }
    return this.subscriber;
  }

  private notifyResubscribed(): void {
    for (const [entry, listener] of [...this.resubscribeListeners]) {
      try {
        listener();
      } catch (error) {
        const channel = [...this.handlers].find(([, set]) => set.has(entry))?.[0] ?? '';
        this.onHandlerError(error, channel.slice(this.keyPrefix.length));
      }
    }
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new SdcError('STORE_CLOSED', 'key/value store is closed');
    try {
      return await fn();
    } catch (error) {
      throw mapRedisError(error);
    }
  }

  private key(key: string): string {
    if (typeof key !== 'string' || key.length === 0 || key.length > this.keyLengthMax) {
      throw new SdcError('STORE_INVALID_ARGUMENT', `key must be 1..${this.keyLengthMax} characters`);
    }
    return `${this.keyPrefix}${key}`;
  }

  private checkValue(value: string): void {
    if (typeof value !== 'string') throw new SdcError('STORE_INVALID_ARGUMENT', 'values are strings');
    if (Buffer.byteLength(value) > this.valueBytesMax) throw new SdcError('STORE_LIMIT', `value exceeds ${this.valueBytesMax} bytes`);
  }

  private checkTtl(ttlMs: number): void {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > ttlMsMax) {
      throw new SdcError('STORE_INVALID_ARGUMENT', `ttlMs must be an integer in 1..${ttlMsMax}`);
    }
  }
}

/** The scores of ioredis-mock's sorted set `value` (a Map of member -> { score }), or undefined for anything else. */
function sortedSetScores(value: unknown): number[] | undefined {
  if (!(value instanceof Map)) return undefined;
  const scores: number[] = [];
  for (const entry of value.values()) {
    const score = (entry as { score?: unknown } | null)?.score;
    if (typeof score !== 'number') return undefined;
    scores.push(score);
  }
  return scores;
}

/** The subscriber connection's CLIENT SETNAME: no spaces, and short. */
export function subscriberConnectionName(keyPrefix: string): string {
  return `sdc-sub:${keyPrefix}`.replace(/[^\x21-\x7e]/g, '_').slice(0, 100);
}

/** The embedded default: ioredis-mock in this process. TTLs follow the real clock (ioredis-mock reads Date.now). */
export function createEmbeddedKeyValueStore(options: { keyPrefix: string; valueBytesMax?: number }): KeyValueStore {
  const RedisMock = ioredisMockLibrary();
  const client = new RedisMock();
  const data = (client as unknown as { data?: InProcessData }).data;
  return new RedisKeyValueStore({ client, keyPrefix: options.keyPrefix, valueBytesMax: options.valueBytesMax, ...(data === undefined ? {} : { inProcessData: data }) });
}

/** Real Redis through ioredis. */
export function createRedisKeyValueStore(options: { url: string; keyPrefix: string; valueBytesMax?: number }): KeyValueStore {
  const { Redis } = ioredisLibrary();
  return new RedisKeyValueStore({ client: new Redis(options.url, { maxRetriesPerRequest: 3, enableAutoPipelining: true }), keyPrefix: options.keyPrefix, valueBytesMax: options.valueBytesMax });
}
