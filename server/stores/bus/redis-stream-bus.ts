import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SdcError } from '../../../core/errors/index.js';
import { mapRedisError } from '../redis-errors.js';
import { ioredisLibrary } from '../store-libraries.js';
import {
  deadFields, deadLetterStream,
  type AppendOptions, type BusEntry, type ClaimOptions, type PendingEntry, type PendingOptions, type RangeOptions, type ReadGroupOptions,
  type StoredBusEntry, type StreamBus, type TrimmedUnread,
} from './bus-port.js';
import { trimmedUnreadOf } from './bus-trim.js';
import { busLimits, checkBatch, checkCount, checkFields, checkIds, checkName, checkNonNegative, parseEntryId } from './bus-arguments.js';

export interface RedisStreamBusOptions {
  /** redis://host:port/db */
  readonly url: string;
  /** Prepended to every stream key, so runs and tests sharing a server never collide. */
  readonly keyPrefix?: string;
  /**
   * A blocking XREADGROUP holds its connection until it returns, so blocking reads run on
   * dedicated connections from a pool of at most this many; non-blocking commands share one.
   */
  readonly blockingConnectionsMax?: number;
  /** Approximate length kept in each `<stream>:dead`. */
  readonly deadMaxLen?: number;
}

/** XAUTOCLAIM follows a cursor; this bounds the calls one claim() makes. */
const claimRoundsMax = 100;

/**
 * appendBatch's XADDs, run by Redis from one command: ARGV is the MAXLEN ('' for none), then per
 * entry its field count and its names and values. A pipeline of one XADD per entry cost the
 * client a command object, its argument list and a reply of its own per entry: about 9 us of the
 * ingest path's CPU per telemetry sample, most of the client's share (issue 17, docs/benchmarks.md
 * 2026-12-05). Redis runs the XADDs back to back, as it runs a pipeline's that arrive in one read;
 * one script holds the server for at most appendScriptEntriesMax entries (a batch of more is sent
 * as several, in order on the one connection). A failing XADD stops the script with the XADDs
 * before it done, as a failing pipeline command left those before it: the caller sees the error.
 */
const appendBatchLua = `
local ids = {}
local at = 2
while at <= #ARGV do
  local n = tonumber(ARGV[at])
  local args = { KEYS[1] }
  if ARGV[1] ~= '' then args[2] = 'MAXLEN'; args[3] = '~'; args[4] = ARGV[1] end
  args[#args + 1] = '*'
  for i = 1, 2 * n do args[#args + 1] = ARGV[at + i] end
  ids[#ids + 1] = redis.call('XADD', unpack(args))
  at = at + 1 + 2 * n
end
return ids`;
const appendBatchScript = { lua: appendBatchLua, sha1: createHash('sha1').update(appendBatchLua).digest('hex') } as const;
/** Entries per script call: the server is held for about this many XADDs at once. */
const appendScriptEntriesMax = 128;

/**
 * XGROUP CREATE with ENTRIESREAD (Redis 7): the group's read counter starts known, at the entries
 * before its start ('0': those already trimmed away; '$': every entry), in one step with reading
 * the stream's counters. Without it the counter is unknown until the first read, and Redis counts
 * entries trimmed before that read as read (bus-trim.ts). ARGV: group, start id. Returns 1 when
 * created, 0 when the group existed.
 */
const ensureGroupLua = `
local read = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local added, length = 0, 0
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] elseif info[i] == 'length' then length = info[i + 1] end
  end
  if ARGV[2] == '$' then read = added else read = added - length end
end
local reply = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', read)
if type(reply) == 'table' and reply.err then
  if string.sub(reply.err, 1, 9) == 'BUSYGROUP' then return 0 end
  return reply
end
return 1`;
const ensureGroupScript = { lua: ensureGroupLua, sha1: createHash('sha1').update(ensureGroupLua).digest('hex') } as const;

/**
 * The counters trimmedUnread works from (bus-trim.ts), read in one step: XINFO STREAM, the group's
 * XINFO GROUPS entry, and the entries after the group's position counted up to ARGV[2] (one more
 * means "more than that"). ARGV: group, count bound. Returns nil when the stream or the group is
 * missing; otherwise [entries-added, length, first id or '', last-generated-id,
 * max-deleted-entry-id, last-delivered-id, entries-read or -1, entries after or -1].
 */
const trimmedUnreadLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local s = {}
for i = 1, #info, 2 do s[info[i]] = info[i + 1] end
local g = nil
for _, item in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #item, 2 do fields[item[i]] = item[i + 1] end
  if fields['name'] == ARGV[1] then g = fields end
end
if g == nil then return false end
local first = ''
if type(s['first-entry']) == 'table' then first = s['first-entry'][1] end
local bound = tonumber(ARGV[2])
local after = #redis.call('XRANGE', KEYS[1], '(' .. g['last-delivered-id'], '+', 'COUNT', bound + 1)
if after > bound then after = -1 end
local read = g['entries-read']
if type(read) ~= 'number' then read = -1 end
return { s['entries-added'], s['length'], first, s['last-generated-id'], s['max-deleted-entry-id'], g['last-delivered-id'], read, after }`;
const trimmedUnreadScript = { lua: trimmedUnreadLua, sha1: createHash('sha1').update(trimmedUnreadLua).digest('hex') } as const;

function fieldsFromList(list: unknown): Record<string, string> {
  if (!Array.isArray(list) || list.length % 2 !== 0) throw new SdcError('STORE_CORRUPT', 'malformed stream entry fields from Redis');
  const fields: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) fields[String(list[i])] = String(list[i + 1]);
  return fields;
}

function fieldsToList(fields: Record<string, string>): string[] {
  const list: string[] = [];
  for (const name of Object.keys(fields)) list.push(name, fields[name] as string);
  return list;
}

/** [[id, [f, v, ...]], ...] -> entries; nil entries (deleted, Redis 6.2 XAUTOCLAIM) are skipped. */
function entriesFromReply(reply: unknown, deliveryCount: number): BusEntry[] {
  if (!Array.isArray(reply)) throw new SdcError('STORE_CORRUPT', 'malformed stream entries from Redis');
  const entries: BusEntry[] = [];
  for (const item of reply) {
    if (!Array.isArray(item) || item[1] === null) continue;
    entries.push({ id: String(item[0]), fields: fieldsFromList(item[1]), deliveryCount });
  }
  return entries;
}

function pendingFromReply(reply: unknown): PendingEntry[] {
  if (!Array.isArray(reply)) throw new SdcError('STORE_CORRUPT', 'malformed XPENDING reply from Redis');
  return reply.map((item: unknown) => {
    if (!Array.isArray(item) || item.length < 4) throw new SdcError('STORE_CORRUPT', 'malformed XPENDING entry from Redis');
    return { id: String(item[0]), consumer: String(item[1]), idleMs: Number(item[2]), deliveryCount: Number(item[3]) };
  });
}

/** The oldest Redis the bus works with: XGROUP CREATE ... ENTRIESREAD and XINFO's entries-added / entries-read. */
export const redisVersionRequired = '7.0';

/** redis_version from an `INFO server` answer, or undefined. */
export function redisVersionOf(info: string): string | undefined {
  return /^redis_version:([^\r\n]+)/m.exec(info)?.[1]?.trim();
}

/**
 * Throws STORE_REDIS_VERSION_UNSUPPORTED when `info` (an `INFO server` answer) names a Redis
 * older than 7.0; returns quietly when it names 7.0 or later or no version (then the caller's own
 * error stands).
 */
export function requireRedisVersion(info: string, options: { readonly cause?: unknown } = {}): void {
  const found = redisVersionOf(info);
  if (found === undefined) return;
  const major = Number(found.split('.')[0]);
  if (!Number.isInteger(major) || major >= Number(redisVersionRequired.split('.')[0])) return;
  throw new SdcError('STORE_REDIS_VERSION_UNSUPPORTED', `Redis ${redisVersionRequired} or later is required (found ${found})`,
    { found, required: redisVersionRequired }, options.cause === undefined ? {} : { cause: options.cause });
}

/** Redis Streams through ioredis. Idle times and ids come from the Redis server's clock. */
export class RedisStreamBus implements StreamBus {
  private readonly client: Redis;
  private readonly idleBlockingClients: Redis[] = [];
  private readonly busyBlockingClients = new Set<Redis>();
  private readonly keyPrefix: string;
  private readonly blockingConnectionsMax: number;
  /** StreamBus.deadMaxLen. */
  readonly deadMaxLen: number;
  private closed = false;

  constructor(options: RedisStreamBusOptions) {
    // Auto-pipelining: the commands issued in one turn of the event loop (each handler's XACK, each
    // session's append) go to Redis as one pipeline instead of one round trip each. Blocking reads
    // run on their own connections (blockingRead), so nothing here waits behind one.
    const { Redis } = ioredisLibrary();
    this.client = new Redis(options.url, { maxRetriesPerRequest: 3, lazyConnect: false, enableAutoPipelining: true });
    // Errors reach callers through rejected commands; without a listener ioredis would also print them.
    this.client.on('error', () => undefined);
    this.keyPrefix = options.keyPrefix ?? '';
    this.blockingConnectionsMax = options.blockingConnectionsMax ?? 8;
    this.deadMaxLen = options.deadMaxLen ?? 10_000;
  }

  async append(stream: string, fields: Record<string, string>, opts: AppendOptions = {}): Promise<string> {
    checkName('stream', stream);
    checkFields(fields);
    const trim: Array<string | number> = [];
    if (opts.maxLen !== undefined) {
      checkCount('maxLen', opts.maxLen, busLimits.maxLenMax);
      trim.push('MAXLEN', '~', opts.maxLen);
    }
    return String(await this.command(this.client, 'XADD', this.key(stream), ...trim, '*', ...fieldsToList(fields)));
  }

  async appendBatch(stream: string, entries: ReadonlyArray<Record<string, string>>, opts: AppendOptions = {}): Promise<string[]> {
    checkBatch(stream, entries, opts.maxLen);
    if (entries.length === 0) return [];
    if (this.closed) throw new SdcError('STORE_CLOSED', 'stream bus is closed');
    const key = this.key(stream);
    const maxLen = opts.maxLen === undefined ? '' : String(opts.maxLen);
    // Issued in the same turn, the scripts of a long batch go out together (autopipelining), in order on one connection.
    const calls: Array<Promise<string[]>> = [];
    for (let from = 0; from < entries.length; from += appendScriptEntriesMax) calls.push(this.appendScript(key, maxLen, entries.slice(from, from + appendScriptEntriesMax)));
    return (await Promise.all(calls)).flat();
  }

  /** One appendBatchScript call: the ids of `entries`, in order. */
  private async appendScript(key: string, maxLen: string, entries: ReadonlyArray<Record<string, string>>): Promise<string[]> {
    const args: Array<string | number> = [maxLen];
    for (const fields of entries) {
      const names = Object.keys(fields);
      args.push(names.length);
      for (const name of names) args.push(name, fields[name] as string);
    }
    const reply = await this.evalScript(appendBatchScript, key, args);
    if (!Array.isArray(reply) || reply.length !== entries.length) throw new SdcError('STORE_CORRUPT', 'malformed reply from Redis to a batch of XADDs');
    return reply.map(String);
  }

  /**
   * Runs a one-key script by its SHA-1; a Redis that does not hold it (restarted, SCRIPT FLUSH)
   * answers NOSCRIPT without running anything, and EVAL sends the text, which also caches it again.
   */
  private async evalScript(script: { readonly lua: string; readonly sha1: string }, key: string, args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await this.command(this.client, 'EVALSHA', script.sha1, 1, key, ...args);
    } catch (error) {
      if (!(error instanceof SdcError) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.command(this.client, 'EVAL', script.lua, 1, key, ...args);
    }
  }

  async ensureGroup(stream: string, group: string, startId: '0' | '$'): Promise<void> {
    checkName('stream', stream);
    checkName('group', group);
    try {
      await this.evalScript(ensureGroupScript, this.key(stream), [group, startId]);
    } catch (error) {
      // Redis before 7.0 answers XGROUP CREATE ... ENTRIESREAD with a bare "ERR syntax error"
      // (review h11, finding 8): ask its version, so the start fails naming the requirement.
      if (!(error instanceof SdcError) || !/syntax error/i.test(error.message)) throw error;
      requireRedisVersion(String(await this.command(this.client, 'INFO', 'server')), { cause: error });
      throw error;
    }
  }

  async trimmedUnread(stream: string, group: string): Promise<TrimmedUnread> {
    checkName('stream', stream);
    checkName('group', group);
    const reply = await this.evalScript(trimmedUnreadScript, this.key(stream), [group, busLimits.trimCountEntriesMax]);
    if (reply === null) throw new SdcError('STORE_NO_GROUP', `no group ${group} on stream ${stream}`, { stream, group });
    if (!Array.isArray(reply) || reply.length !== 8) throw new SdcError('STORE_CORRUPT', 'malformed reply from Redis to the trimmed-entries script');
    const [entriesAdded, length, firstId, lastId, maxDeletedId, lastDeliveredId, entriesRead, after] = reply as [number, number, string, string, string, string, number, number];
    return trimmedUnreadOf({
      entriesAdded: Number(entriesAdded), length: Number(length), firstId: firstId === '' ? null : String(firstId), lastId: String(lastId),
      maxDeletedId: String(maxDeletedId), lastDeliveredId: String(lastDeliveredId),
      entriesRead: Number(entriesRead) < 0 ? null : Number(entriesRead), entriesAfterDelivered: Number(after) < 0 ? null : Number(after),
    });
  }

  async readGroup(stream: string, group: string, consumer: string, opts: ReadGroupOptions): Promise<BusEntry[]> {
    checkName('consumer', consumer);
    checkCount('count', opts.count);
    const blockMs = opts.blockMs ?? 0;
    checkNonNegative('blockMs', blockMs, busLimits.blockMsMax);
    if (opts.signal?.aborted === true) return [];
    const args = ['GROUP', group, consumer, 'COUNT', opts.count, ...(blockMs > 0 ? ['BLOCK', blockMs] : []), 'STREAMS', this.key(stream), '>'];
    const reply = blockMs > 0
      ? await this.blockingRead(args, opts.signal)
      : await this.command(this.client, 'XREADGROUP', ...args);
    if (reply === null) return [];
    if (!Array.isArray(reply) || !Array.isArray(reply[0])) throw new SdcError('STORE_CORRUPT', 'malformed XREADGROUP reply from Redis');
    return entriesFromReply(reply[0][1], 1);
  }

  async ack(stream: string, group: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    for (const id of ids) parseEntryId(id);
    return Number(await this.command(this.client, 'XACK', this.key(stream), group, ...ids));
  }

  async pending(stream: string, group: string, opts: PendingOptions = {}): Promise<PendingEntry[]> {
    const count = opts.count ?? 100;
    checkCount('count', count);
    const idle = opts.idleMsMin !== undefined && opts.idleMsMin > 0 ? ['IDLE', opts.idleMsMin] : [];
    return pendingFromReply(await this.command(this.client, 'XPENDING', this.key(stream), group, ...idle, '-', '+', count));
  }

  async claim(stream: string, group: string, consumer: string, opts: ClaimOptions): Promise<BusEntry[]> {
    checkName('consumer', consumer);
    checkCount('count', opts.count);
    checkNonNegative('minIdleMs', opts.minIdleMs, Number.MAX_SAFE_INTEGER);
    const claimed: Array<{ id: string; fields: Record<string, string> }> = [];
    let cursor = '0-0';
    for (let round = 0; round < claimRoundsMax && claimed.length < opts.count; round++) {
      const reply = await this.command(this.client, 'XAUTOCLAIM', this.key(stream), group, consumer, opts.minIdleMs, cursor,
        'COUNT', opts.count - claimed.length);
      if (!Array.isArray(reply) || reply.length < 2) throw new SdcError('STORE_CORRUPT', 'malformed XAUTOCLAIM reply from Redis');
      claimed.push(...entriesFromReply(reply[1], 0));
      cursor = String(reply[0]);
      if (cursor === '0-0') break;
    }
    if (claimed.length === 0) return [];
    // XAUTOCLAIM returns no delivery counts; read them back for exactly the claimed ids.
    const pipeline = this.client.pipeline();
    for (const entry of claimed) pipeline.call('XPENDING', this.key(stream), group, entry.id, entry.id, 1);
    const results = await this.exec(pipeline);
    return claimed.map((entry, index) => {
      const [pending] = pendingFromReply(results[index]);
      return { ...entry, deliveryCount: pending?.deliveryCount ?? 1 };
    });
  }

  async deadLetter(stream: string, group: string, id: string, reason: string): Promise<string | null> {
    parseEntryId(id);
    if (reason.length > busLimits.reasonLengthMax) throw new SdcError('STORE_INVALID_ARGUMENT', 'dead-letter reason is too long');
    const [pending] = pendingFromReply(await this.command(this.client, 'XPENDING', this.key(stream), group, id, id, 1));
    if (pending === undefined) return null;
    const range = await this.command(this.client, 'XRANGE', this.key(stream), id, id);
    const original = entriesFromReply(range, pending.deliveryCount)[0]?.fields ?? {};
    const fields = {
      ...original,
      [deadFields.reason]: reason,
      [deadFields.sourceId]: id,
      [deadFields.group]: group,
      [deadFields.deliveryCount]: String(pending.deliveryCount),
    };
    // One transaction, so the entry is never both dead and still pending, nor acked and lost.
    const transaction = this.client.multi();
    transaction.call('XADD', this.key(deadLetterStream(stream)), 'MAXLEN', '~', this.deadMaxLen, '*', ...fieldsToList(fields));
    transaction.call('XACK', this.key(stream), group, id);
    const [deadId] = await this.exec(transaction);
    return String(deadId);
  }

  async length(stream: string): Promise<number> {
    return Number(await this.command(this.client, 'XLEN', this.key(stream)));
  }

  async range(stream: string, opts: RangeOptions): Promise<StoredBusEntry[]> {
    checkName('stream', stream);
    checkCount('count', opts.count);
    // The next possible id, inclusive: the same as an exclusive start, which XRANGE has only since Redis 6.2.
    const after = opts.afterId === undefined ? undefined : parseEntryId(opts.afterId);
    const start = after === undefined ? '-' : `${after.ms}-${after.seq + 1}`;
    const reply = await this.command(this.client, 'XRANGE', this.key(stream), start, '+', 'COUNT', opts.count);
    return entriesFromReply(reply, 0).map(({ id, fields }) => ({ id, fields }));
  }

  async remove(stream: string, ids: readonly string[]): Promise<number> {
    checkName('stream', stream);
    checkIds(ids);
    return Number(await this.command(this.client, 'XDEL', this.key(stream), ...new Set(ids)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A blocked read cannot be interrupted politely; dropping its connection rejects it.
    for (const client of this.busyBlockingClients) client.disconnect();
    await Promise.all(this.idleBlockingClients.map((client) => client.quit().catch(() => client.disconnect())));
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private key(stream: string): string {
    return `${this.keyPrefix}${stream}`;
  }

  private async command(client: Redis, name: string, ...args: Array<string | number>): Promise<unknown> {
    if (this.closed) throw new SdcError('STORE_CLOSED', 'stream bus is closed');
    try {
      return await client.call(name, ...args);
    } catch (error) {
      throw this.closed ? new SdcError('STORE_CLOSED', 'stream bus closed during the call', {}, { cause: error }) : mapRedisError(error);
    }
  }

  private async exec(batch: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await batch.exec();
    } catch (error) {
      throw mapRedisError(error);
    }
    if (results === null) throw new SdcError('STORE_CONFLICT', 'Redis transaction was aborted');
    return results.map(([error, value]) => {
      if (error !== null) throw mapRedisError(error);
      return value;
    });
  }

  /**
   * A blocking XREADGROUP, on a dedicated connection since it holds its connection until it
   * returns. An abort drops that connection, which ends the read at once; it then answers null,
   * as at a timeout, and the connection is not reused. (CLIENT UNBLOCK from another connection is
   * not sure to end it: sent before the read reaches Redis, it finds nothing to unblock, and the
   * read then waits out its BLOCK time, which is what a stopping consumer must not wait for.)
   */
  private async blockingRead(args: ReadonlyArray<string | number>, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.closed) throw new SdcError('STORE_CLOSED', 'stream bus is closed');
    let client = this.idleBlockingClients.pop();
    if (client === undefined) {
      if (this.busyBlockingClients.size >= this.blockingConnectionsMax) {
        throw new SdcError('STORE_LIMIT', `more than ${this.blockingConnectionsMax} blocking reads at once`);
      }
      client = this.client.duplicate();
      client.on('error', () => undefined);
    }
    const reader = client;
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      reader.disconnect();
    };
    this.busyBlockingClients.add(reader);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.command(reader, 'XREADGROUP', ...args);
    } catch (error) {
      if (aborted && !this.closed) return null;
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.busyBlockingClients.delete(reader);
      if (this.closed || aborted) reader.disconnect();
      else this.idleBlockingClients.push(reader);
    }
  }
}
