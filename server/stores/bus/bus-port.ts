/**
 * The stream bus port: append-only streams read through consumer groups with at-least-once
 * delivery, after Redis Streams (the real adapter) and implemented in memory on virtual time
 * (the embedded adapter). Consumers ack what they processed; entries left unacked become
 * claimable by another consumer once idle, and poison entries are moved to `<stream>:dead`.
 */

export interface BusEntry {
  /** `<ms>-<seq>`, increasing within a stream. */
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
  /** 1 on first delivery; each claim adds one. */
  readonly deliveryCount: number;
}

export interface PendingEntry {
  readonly id: string;
  readonly consumer: string;
  /** Milliseconds since the entry was last delivered. */
  readonly idleMs: number;
  readonly deliveryCount: number;
}

export interface AppendOptions {
  /**
   * Keep about the newest `maxLen` entries. The bound is approximate on Redis (`MAXLEN ~`, it
   * trims whole internal nodes, so the length can stay above maxLen by up to a node) and exact in
   * memory. Entries newer than the newest `maxLen` are never removed.
   */
  readonly maxLen?: number;
}

export interface ReadGroupOptions {
  readonly count: number;
  /** Wait up to this long for a new entry when none is ready. 0 or absent: return at once (unlike Redis, 0 never means forever). */
  readonly blockMs?: number;
  /**
   * Ends a blocked read early: it then resolves [] as at a timeout, and an already aborted signal
   * reads nothing. A stopping consumer ends its own read with this instead of waiting out blockMs:
   * that wait is a timer on the bus's scheduler, which may never fire again (a virtual clock no
   * one advances any more, an unref'd timer in an otherwise empty event loop), and stop() then
   * never resolved. On Redis the read's connection is dropped; an entry Redis delivered in that
   * instant stays pending for this consumer, to be claimed (at least once, as after a crash).
   */
  readonly signal?: AbortSignal;
}

export interface PendingOptions {
  /** At most this many entries, oldest first (default 100). */
  readonly count?: number;
  readonly idleMsMin?: number;
}

export interface ClaimOptions {
  readonly minIdleMs: number;
  readonly count: number;
}

export interface RangeOptions {
  /** Entries after this id (exclusive); absent: from the first entry. */
  readonly afterId?: string;
  readonly count: number;
}

/**
 * What a stream and one of its groups tell about entries the stream trimmed (maxLen) before the
 * group read them: data lost without any error, since a trim removes the oldest entries whether
 * or not every group has read them. Cumulative over the stream's life (it starts again at 0 when
 * the stream is created anew, e.g. after Redis lost its data); a caller counts each loss once by
 * remembering the last value it saw. See bus-trim.ts for how it is worked out.
 */
export interface TrimmedUnread {
  /**
   * Entries appended after the group's position that are gone and were never delivered to it.
   * Exact when `exact`; otherwise a lower bound (the group has already read past the gap and is
   * too far from the stream's end to count). null: cannot be told (an XDEL inside the stream).
   */
  readonly entriesLost: number | null;
  readonly exact: boolean;
  /** The stream's first entry now (null: empty): every lost entry's id is below it. */
  readonly firstId: string | null;
  /** The group's last delivered id: when it is below firstId, the lost entries lie between the two. */
  readonly lastDeliveredId: string;
  /** Entries ever appended to the stream, and those it holds now. */
  readonly entriesAdded: number;
  readonly length: number;
}

/** An entry as stored, read outside any consumer group. */
export interface StoredBusEntry {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
}

export interface StreamBus {
  append(stream: string, fields: Record<string, string>, opts?: AppendOptions): Promise<string>;
  /**
   * Appends `entries` to one stream in this order, in one round trip (a Redis pipeline), and
   * returns their ids in the same order. Every entry is checked first, so bad input appends
   * nothing; a store failure part-way may leave some appended (the callers are at least once).
   * At most busLimits.batchEntriesMax entries; an empty batch appends nothing.
   */
  appendBatch(stream: string, entries: ReadonlyArray<Record<string, string>>, opts?: AppendOptions): Promise<string[]>;
  /** Creates the group (and the stream) if missing; an existing group is left as it is. `'0'`: from the start, `'$'`: only new entries. */
  ensureGroup(stream: string, group: string, startId: '0' | '$'): Promise<void>;
  /** New entries (never delivered to the group) for this consumer; STORE_NO_GROUP if the group does not exist. */
  readGroup(stream: string, group: string, consumer: string, opts: ReadGroupOptions): Promise<BusEntry[]>;
  /** Returns how many of `ids` were pending and are now acknowledged. */
  ack(stream: string, group: string, ids: readonly string[]): Promise<number>;
  pending(stream: string, group: string, opts?: PendingOptions): Promise<PendingEntry[]>;
  /** XAUTOCLAIM: entries idle at least `minIdleMs`, oldest first, move to `consumer` with deliveryCount + 1. Pending entries whose data was trimmed are dropped from the pending list. */
  claim(stream: string, group: string, consumer: string, opts: ClaimOptions): Promise<BusEntry[]>;
  /**
   * Copies a pending entry to `<stream>:dead` with `dead.*` fields (reason, source id, group,
   * delivery count) and acks it. Returns the dead entry's id, or null if `id` was not pending.
   */
  deadLetter(stream: string, group: string, id: string, reason: string): Promise<string | null>;
  /**
   * The length deadLetter keeps each `<stream>:dead` to (the adapter's option, default 10,000):
   * a caller that appends a dead letter itself (one frame of a telemetry_frames entry,
   * server/control-plane/events.ts) bounds it the same, rather than trimming it shorter.
   */
  readonly deadMaxLen: number;
  length(stream: string): Promise<number>;
  /**
   * Entries the stream trimmed before `group` read them (TrimmedUnread); STORE_NO_GROUP if the
   * group does not exist. Bounded cost: a few counters, and on Redis at most
   * busLimits.trimCountEntriesMax entries counted after the group's position.
   */
  trimmedUnread(stream: string, group: string): Promise<TrimmedUnread>;
  /**
   * Up to `count` entries in id order after `afterId`, read outside any group (XRANGE): nothing is
   * delivered or acknowledged. For operators inspecting a stream (dead letters); a missing stream is empty.
   */
  range(stream: string, opts: RangeOptions): Promise<StoredBusEntry[]>;
  /**
   * Deletes entries by id (XDEL); returns how many existed. Pending references to them stay until
   * a claim drops them, as on Redis. For removing a dead letter an operator has dealt with.
   */
  remove(stream: string, ids: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

export const deadLetterSuffix = ':dead';

export function deadLetterStream(stream: string): string {
  return `${stream}${deadLetterSuffix}`;
}

/** Field names added to a dead-lettered entry; the original fields are kept beside them. */
export const deadFields = {
  reason: 'dead.reason',
  sourceId: 'dead.sourceId',
  group: 'dead.group',
  deliveryCount: 'dead.deliveryCount',
} as const;
