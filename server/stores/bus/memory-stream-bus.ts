import { SdcError } from '../../../core/errors/index.js';
import type { Clock, Scheduler, TimerHandle } from '../../../core/ports/ports.js';
import {
  deadFields, deadLetterStream,
  type AppendOptions, type BusEntry, type ClaimOptions, type PendingEntry, type PendingOptions, type RangeOptions, type ReadGroupOptions,
  type StoredBusEntry, type StreamBus, type TrimmedUnread,
} from './bus-port.js';
import { estimateEntriesThrough, hasDeletionsFrom, trimmedUnreadOf } from './bus-trim.js';
import { busLimits, checkBatch, checkCount, checkFields, checkIds, checkName, checkNonNegative, parseEntryId } from './bus-arguments.js';

/**
 * Redis Streams semantics in memory, on an injected Clock and Scheduler so idle times and blocking
 * reads follow virtual time in the simulator. Trimming with maxLen is exact. Every collection is
 * bounded; a full one refuses with STORE_LIMIT rather than dropping anything.
 */
export interface MemoryStreamBusOptions {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly streamsMax?: number;
  readonly groupsPerStreamMax?: number;
  readonly consumersPerGroupMax?: number;
  /** Entries a stream may hold when appends give no maxLen (then a full stream refuses appends). */
  readonly entriesPerStreamMax?: number;
  /** Delivered-but-unacked entries per group. */
  readonly pendingPerGroupMax?: number;
  /** Blocked readers across all streams. */
  readonly waitersMax?: number;
  /** Length kept in each `<stream>:dead`. */
  readonly deadMaxLen?: number;
}

interface StoredEntry {
  readonly id: string;
  readonly ms: number;
  readonly seq: number;
  readonly fields: Readonly<Record<string, string>>;
}

interface PendingState {
  consumer: string;
  deliveredAtMs: number;
  deliveryCount: number;
}

interface Group {
  lastDeliveredMs: number;
  lastDeliveredSeq: number;
  /** Redis entries-read: set at creation, one more per entry delivered (see bus-trim.ts); null when unknown. */
  entriesRead: number | null;
  /** Insertion order is id order: new entries are delivered in increasing id order and claims keep their key. */
  readonly pending: Map<string, PendingState>;
  readonly consumers: Set<string>;
}

interface Stream {
  /**
   * Sorted by id; the stream is `entries[head..]`. Trimming moves `head` and the array is compacted
   * only once the trimmed front is half of it, so a trim costs what it removes, not the stream's
   * length (a splice of a stream held at its bound moved every entry at each batch). An entry is
   * found by id with a binary search: no map beside the array to keep up per append (issue 17).
   */
  entries: StoredEntry[];
  head: number;
  lastMs: number;
  lastSeq: number;
  /** Every entry ever appended (Redis entries-added), and the largest id `remove` deleted (max-deleted-entry-id). */
  entriesAdded: number;
  maxDeletedId: string;
  readonly groups: Map<string, Group>;
}

interface Waiter {
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  readonly count: number;
  readonly timer: TimerHandle;
  readonly resolve: (entries: BusEntry[]) => void;
  readonly reject: (error: unknown) => void;
}

function isAfter(entry: StoredEntry, ms: number, seq: number): boolean {
  return entry.ms > ms || (entry.ms === ms && entry.seq > seq);
}

/** Index of the first entry at or after `from` with an id greater than (ms, seq). */
function firstIndexAfter(entries: readonly StoredEntry[], ms: number, seq: number, from: number): number {
  let low = from;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (isAfter(entries[middle] as StoredEntry, ms, seq)) high = middle;
    else low = middle + 1;
  }
  return low;
}

function sizeOf(state: Stream): number {
  return state.entries.length - state.head;
}

/** Where the entry with this id is in `state.entries` (at or after head), if the stream holds it. */
function indexOfEntry(state: Stream, id: string): number | undefined {
  const { ms, seq } = parseEntryId(id);
  const index = firstIndexAfter(state.entries, ms, seq, state.head) - 1;
  if (index < state.head) return undefined;
  const entry = state.entries[index] as StoredEntry;
  return entry.ms === ms && entry.seq === seq ? index : undefined;
}

function findEntry(state: Stream, id: string): StoredEntry | undefined {
  const index = indexOfEntry(state, id);
  return index === undefined ? undefined : state.entries[index];
}

export class MemoryStreamBus implements StreamBus {
  private readonly streams = new Map<string, Stream>();
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly streamsMax: number;
  private readonly groupsPerStreamMax: number;
  private readonly consumersPerGroupMax: number;
  private readonly entriesPerStreamMax: number;
  private readonly pendingPerGroupMax: number;
  private readonly waitersMax: number;
  /** StreamBus.deadMaxLen. */
  readonly deadMaxLen: number;

  constructor(options: MemoryStreamBusOptions) {
    this.clock = options.clock;
    this.scheduler = options.scheduler;
    this.streamsMax = options.streamsMax ?? 1024;
    this.groupsPerStreamMax = options.groupsPerStreamMax ?? 64;
    this.consumersPerGroupMax = options.consumersPerGroupMax ?? 1024;
    this.entriesPerStreamMax = options.entriesPerStreamMax ?? 100_000;
    this.pendingPerGroupMax = options.pendingPerGroupMax ?? 100_000;
    this.waitersMax = options.waitersMax ?? 10_000;
    this.deadMaxLen = options.deadMaxLen ?? 10_000;
  }

  async append(stream: string, fields: Record<string, string>, opts: AppendOptions = {}): Promise<string> {
    this.assertOpen();
    checkName('stream', stream);
    checkFields(fields);
    if (opts.maxLen !== undefined) checkCount('maxLen', opts.maxLen, busLimits.maxLenMax);
    const id = this.appendEntry(stream, { ...fields }, opts.maxLen);
    this.wakeWaiters(stream);
    return id;
  }

  async appendBatch(stream: string, entries: ReadonlyArray<Record<string, string>>, opts: AppendOptions = {}): Promise<string[]> {
    this.assertOpen();
    checkBatch(stream, entries, opts.maxLen);
    if (entries.length === 0) return [];
    const state = this.streamOrCreate(stream);
    // All or nothing here: a stream without maxLen that cannot take the whole batch refuses it.
    if (opts.maxLen === undefined && sizeOf(state) + entries.length > this.entriesPerStreamMax) {
      throw new SdcError('STORE_LIMIT', `stream ${stream} holds ${sizeOf(state)} of ${this.entriesPerStreamMax} entries; the batch of ${entries.length} does not fit`);
    }
    const ids = entries.map((fields) => this.appendEntry(stream, { ...fields }, opts.maxLen, false));
    this.trim(state, opts.maxLen);
    this.wakeWaiters(stream);
    return ids;
  }

  async ensureGroup(stream: string, group: string, startId: '0' | '$'): Promise<void> {
    this.assertOpen();
    checkName('stream', stream);
    checkName('group', group);
    const state = this.streamOrCreate(stream);
    if (state.groups.has(group)) return;
    if (state.groups.size >= this.groupsPerStreamMax) {
      throw new SdcError('STORE_LIMIT', `stream ${stream} already has ${this.groupsPerStreamMax} groups`);
    }
    const fromStart = startId === '0';
    state.groups.set(group, {
      lastDeliveredMs: fromStart ? 0 : state.lastMs,
      lastDeliveredSeq: fromStart ? 0 : state.lastSeq,
      // As the Redis adapter creates it: the entries before the group's start count as read.
      entriesRead: fromStart ? state.entriesAdded - sizeOf(state) : state.entriesAdded,
      pending: new Map(),
      consumers: new Set(),
    });
  }

  readGroup(stream: string, group: string, consumer: string, opts: ReadGroupOptions): Promise<BusEntry[]> {
    try {
      this.assertOpen();
      checkName('consumer', consumer);
      checkCount('count', opts.count);
      const blockMs = opts.blockMs ?? 0;
      checkNonNegative('blockMs', blockMs, busLimits.blockMsMax);
      const { signal } = opts;
      if (signal?.aborted === true) return Promise.resolve([]);
      const entries = this.deliverNew(stream, group, consumer, opts.count);
      if (entries.length > 0 || blockMs === 0) return Promise.resolve(entries);
      if (this.waiters.size >= this.waitersMax) throw new SdcError('STORE_LIMIT', `more than ${this.waitersMax} blocked readers`);
      return new Promise<BusEntry[]>((resolve, reject) => {
        // Every way out (entries, timeout, abort, wipe, close) removes the abort listener: a
        // consumer passes one signal to all its reads, which must not pile listeners up on it.
        const onAbort = (): void => {
          if (!this.waiters.delete(waiter)) return;
          this.scheduler.cancel(waiter.timer);
          resolve([]);
        };
        const waiter: Waiter = {
          stream, group, consumer, count: opts.count,
          resolve: (delivered) => { signal?.removeEventListener('abort', onAbort); resolve(delivered); },
          reject: (error) => { signal?.removeEventListener('abort', onAbort); reject(error); },
          timer: this.scheduler.schedule(blockMs, () => {
            this.waiters.delete(waiter);
            waiter.resolve([]);
          }),
        };
        this.waiters.add(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async ack(stream: string, group: string, ids: readonly string[]): Promise<number> {
    this.assertOpen();
    for (const id of ids) parseEntryId(id);
    const state = this.streams.get(stream)?.groups.get(group);
    if (state === undefined) return 0;
    let acked = 0;
    for (const id of ids) if (state.pending.delete(id)) acked++;
    return acked;
  }

  async pending(stream: string, group: string, opts: PendingOptions = {}): Promise<PendingEntry[]> {
    this.assertOpen();
    const count = opts.count ?? 100;
    const idleMsMin = opts.idleMsMin ?? 0;
    checkCount('count', count);
    checkNonNegative('idleMsMin', idleMsMin, Number.MAX_SAFE_INTEGER);
    const state = this.group(stream, group);
    const now = this.clock.nowMs();
    const result: PendingEntry[] = [];
    for (const [id, entry] of state.pending) {
      if (result.length >= count) break;
      const idleMs = Math.max(0, now - entry.deliveredAtMs);
      if (idleMs >= idleMsMin) result.push({ id, consumer: entry.consumer, idleMs, deliveryCount: entry.deliveryCount });
    }
    return result;
  }

  async claim(stream: string, group: string, consumer: string, opts: ClaimOptions): Promise<BusEntry[]> {
    this.assertOpen();
    checkName('consumer', consumer);
    checkCount('count', opts.count);
    checkNonNegative('minIdleMs', opts.minIdleMs, Number.MAX_SAFE_INTEGER);
    const streamState = this.streams.get(stream);
    const state = this.group(stream, group);
    this.registerConsumer(state, consumer);
    const now = this.clock.nowMs();
    const claimed: BusEntry[] = [];
    for (const [id, entry] of state.pending) {
      if (claimed.length >= opts.count) break;
      if (now - entry.deliveredAtMs < opts.minIdleMs) continue;
      const stored = streamState === undefined ? undefined : findEntry(streamState, id);
      if (stored === undefined) {
        state.pending.delete(id); // trimmed away: nothing left to deliver (Redis 7 XAUTOCLAIM does the same)
        continue;
      }
      entry.consumer = consumer;
      entry.deliveredAtMs = now;
      entry.deliveryCount += 1;
      claimed.push({ id, fields: { ...stored.fields }, deliveryCount: entry.deliveryCount });
    }
    return claimed;
  }

  async deadLetter(stream: string, group: string, id: string, reason: string): Promise<string | null> {
    this.assertOpen();
    parseEntryId(id);
    if (reason.length > busLimits.reasonLengthMax) throw new SdcError('STORE_INVALID_ARGUMENT', 'dead-letter reason is too long');
    const state = this.group(stream, group);
    const entry = state.pending.get(id);
    if (entry === undefined) return null;
    const streamState = this.streams.get(stream);
    const stored = streamState === undefined ? undefined : findEntry(streamState, id);
    const deadId = this.appendEntry(deadLetterStream(stream), {
      ...stored?.fields,
      [deadFields.reason]: reason,
      [deadFields.sourceId]: id,
      [deadFields.group]: group,
      [deadFields.deliveryCount]: String(entry.deliveryCount),
    }, this.deadMaxLen);
    state.pending.delete(id);
    this.wakeWaiters(deadLetterStream(stream));
    return deadId;
  }

  async length(stream: string): Promise<number> {
    this.assertOpen();
    const state = this.streams.get(stream);
    return state === undefined ? 0 : sizeOf(state);
  }

  async trimmedUnread(stream: string, group: string): Promise<TrimmedUnread> {
    this.assertOpen();
    checkName('stream', stream);
    checkName('group', group);
    const state = this.group(stream, group);
    const streamState = this.streams.get(stream) as Stream;
    const counters = this.counters(streamState);
    const after = firstIndexAfter(streamState.entries, state.lastDeliveredMs, state.lastDeliveredSeq, streamState.head);
    // Exact here, whatever the distance: the in-memory bus finds the group's place by binary search.
    return trimmedUnreadOf({
      ...counters, lastDeliveredId: `${state.lastDeliveredMs}-${state.lastDeliveredSeq}`, entriesRead: state.entriesRead,
      entriesAfterDelivered: streamState.entries.length - after,
    });
  }

  async range(stream: string, opts: RangeOptions): Promise<StoredBusEntry[]> {
    this.assertOpen();
    checkName('stream', stream);
    checkCount('count', opts.count);
    const after = opts.afterId === undefined ? undefined : parseEntryId(opts.afterId);
    const state = this.streams.get(stream);
    if (state === undefined) return [];
    const { entries, head } = state;
    const start = after === undefined ? head : firstIndexAfter(entries, after.ms, after.seq, head);
    return entries.slice(start, start + opts.count).map((entry) => ({ id: entry.id, fields: { ...entry.fields } }));
  }

  async remove(stream: string, ids: readonly string[]): Promise<number> {
    this.assertOpen();
    checkName('stream', stream);
    checkIds(ids);
    const state = this.streams.get(stream);
    if (state === undefined) return 0;
    let removed = 0;
    for (const id of new Set(ids)) {
      const index = indexOfEntry(state, id);
      if (index === undefined) continue;
      state.entries.splice(index, 1);
      removed += 1;
      const { ms, seq } = parseEntryId(id);
      const max = parseEntryId(state.maxDeletedId);
      if (ms > max.ms || (ms === max.ms && seq > max.seq)) state.maxDeletedId = `${ms}-${seq}`;
    }
    return removed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters) {
      this.scheduler.cancel(waiter.timer);
      waiter.reject(new SdcError('STORE_CLOSED', 'stream bus closed while a read was blocked'));
    }
    this.waiters.clear();
    this.streams.clear();
  }

  /**
   * Loses every stream, group and pending entry at once, as Redis does on FLUSHALL or a restart
   * without persistence; blocked readers are rejected with STORE_NO_GROUP (Redis answers them
   * `UNBLOCKED`). For tests and the simulator: the services must re-create their groups.
   */
  wipe(): void {
    this.assertOpen();
    for (const waiter of this.waiters) {
      this.scheduler.cancel(waiter.timer);
      waiter.reject(new SdcError('STORE_NO_GROUP', `stream ${waiter.stream} was wiped while a read was blocked`, { stream: waiter.stream, group: waiter.group }));
    }
    this.waiters.clear();
    this.streams.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new SdcError('STORE_CLOSED', 'stream bus is closed');
  }

  private streamOrCreate(stream: string): Stream {
    let state = this.streams.get(stream);
    if (state === undefined) {
      if (this.streams.size >= this.streamsMax) throw new SdcError('STORE_LIMIT', `more than ${this.streamsMax} streams`);
      state = { entries: [], head: 0, lastMs: 0, lastSeq: 0, entriesAdded: 0, maxDeletedId: '0-0', groups: new Map() };
      this.streams.set(stream, state);
    }
    return state;
  }

  private group(stream: string, group: string): Group {
    const state = this.streams.get(stream)?.groups.get(group);
    if (state === undefined) throw new SdcError('STORE_NO_GROUP', `no group ${group} on stream ${stream}`, { stream, group });
    return state;
  }

  private registerConsumer(group: Group, consumer: string): void {
    if (group.consumers.has(consumer)) return;
    if (group.consumers.size >= this.consumersPerGroupMax) {
      throw new SdcError('STORE_LIMIT', `more than ${this.consumersPerGroupMax} consumers in a group`);
    }
    group.consumers.add(consumer);
  }

  private appendEntry(stream: string, fields: Record<string, string>, maxLen: number | undefined, trim = true): string {
    const state = this.streamOrCreate(stream);
    if (maxLen === undefined && sizeOf(state) >= this.entriesPerStreamMax) {
      throw new SdcError('STORE_LIMIT', `stream ${stream} holds ${this.entriesPerStreamMax} entries; append with maxLen or consume it`);
    }
    // Ids never go backwards, even if the clock does (Redis does the same).
    const now = this.clock.nowMs();
    const ms = now > state.lastMs ? now : state.lastMs;
    const seq = now > state.lastMs ? 0 : state.lastSeq + 1;
    const entry: StoredEntry = { id: `${ms}-${seq}`, ms, seq, fields };
    state.entries.push(entry);
    state.entriesAdded += 1;
    state.lastMs = ms;
    state.lastSeq = seq;
    if (trim) this.trim(state, maxLen);
    return entry.id;
  }

  /** Removes the oldest entries beyond maxLen (or the stream's bound); the array is compacted once its trimmed front is half of it. */
  private trim(state: Stream, maxLen: number | undefined): void {
    const limit = Math.min(maxLen ?? this.entriesPerStreamMax, this.entriesPerStreamMax);
    const excess = sizeOf(state) - limit;
    if (excess <= 0) return;
    // Dropped now (not at compaction), so trimmed entries are not kept alive.
    state.entries.fill(undefined as unknown as StoredEntry, state.head, state.head + excess);
    state.head += excess;
    if (state.head * 2 >= state.entries.length) {
      state.entries = state.entries.slice(state.head);
      state.head = 0;
    }
  }

  private deliverNew(stream: string, group: string, consumer: string, count: number): BusEntry[] {
    const streamState = this.streams.get(stream);
    const state = this.group(stream, group);
    this.registerConsumer(state, consumer);
    if (streamState === undefined) return [];
    const start = firstIndexAfter(streamState.entries, state.lastDeliveredMs, state.lastDeliveredSeq, streamState.head);
    const room = this.pendingPerGroupMax - state.pending.size;
    const take = Math.min(count, streamState.entries.length - start);
    if (take > 0 && room <= 0) {
      throw new SdcError('STORE_LIMIT', `group ${group} has ${this.pendingPerGroupMax} unacked entries`);
    }
    const now = this.clock.nowMs();
    const delivered: BusEntry[] = [];
    for (const entry of streamState.entries.slice(start, start + Math.min(take, room))) {
      state.pending.set(entry.id, { consumer, deliveredAtMs: now, deliveryCount: 1 });
      this.countRead(streamState, state, entry.id);
      state.lastDeliveredMs = entry.ms;
      state.lastDeliveredSeq = entry.seq;
      delivered.push({ id: entry.id, fields: { ...entry.fields }, deliveryCount: 1 });
    }
    return delivered;
  }

  /** The stream's counters as XINFO STREAM gives them. */
  private counters(state: Stream): { entriesAdded: number; length: number; firstId: string | null; lastId: string; maxDeletedId: string } {
    return {
      entriesAdded: state.entriesAdded, length: sizeOf(state), firstId: state.entries[state.head]?.id ?? null,
      lastId: `${state.lastMs}-${state.lastSeq}`, maxDeletedId: state.maxDeletedId,
    };
  }

  /** Redis's entries-read update on a delivery: one more, unless unknown or an XDEL lies ahead, when it is estimated anew. */
  private countRead(streamState: Stream, group: Group, id: string): void {
    // The usual case first, without building the counters: every delivered entry passes here.
    if (group.entriesRead !== null && streamState.maxDeletedId === '0-0') {
      group.entriesRead += 1;
      return;
    }
    const counters = this.counters(streamState);
    if (group.entriesRead !== null && !hasDeletionsFrom(counters, id)) group.entriesRead += 1;
    else group.entriesRead = estimateEntriesThrough(counters, id);
  }

  /** Gives new entries to blocked readers of `stream`, oldest waiter first. */
  private wakeWaiters(stream: string): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.stream !== stream) continue;
      let entries: BusEntry[];
      try {
        entries = this.deliverNew(waiter.stream, waiter.group, waiter.consumer, waiter.count);
      } catch (error) {
        this.waiters.delete(waiter);
        this.scheduler.cancel(waiter.timer);
        waiter.reject(error);
        continue;
      }
      if (entries.length === 0) continue;
      this.waiters.delete(waiter);
      this.scheduler.cancel(waiter.timer);
      waiter.resolve(entries);
    }
  }
}
