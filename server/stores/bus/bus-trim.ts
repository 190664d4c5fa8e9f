import type { TrimmedUnread } from './bus-port.js';

/**
 * How both bus adapters work out `trimmedUnread` from the same counters, so they answer alike.
 * The counters are Redis 7's (XINFO STREAM and XINFO GROUPS); the in-memory bus keeps the same ones.
 *
 * - `entriesAdded`: every entry ever appended (exact); `length`: those still held. With trims only
 *   (no XDEL inside the stream), the entries gone are the oldest `entriesAdded - length`.
 * - the group's `entriesRead`: set when the group is created (ensureGroup: the entries before its
 *   start) and incremented once per entry delivered, as long as no XDEL lies ahead of the group
 *   (`maxDeletedId`; a trim does not set it). So it counts entries delivered, not positions: an
 *   entry trimmed before the group read it is never counted, and the group's true position
 *   (how many entries were appended up to its last delivered id) minus `entriesRead` is the number
 *   of entries it lost, over the stream's life.
 * - The true position is known exactly while the group is behind the stream's first entry (it is
 *   `entriesAdded - length` plus nothing: every entry after it that is gone was lost), and, when the
 *   group is inside the stream, from the number of entries after its last delivered id
 *   (`entriesAfterDelivered`, which the Redis adapter counts up to a bound). Past that bound only
 *   a lower bound is known: the group is at or after the first entry.
 */
export interface StreamGroupCounters {
  readonly entriesAdded: number;
  readonly length: number;
  /** The stream's first entry, null when it is empty. */
  readonly firstId: string | null;
  /** The newest id ever generated (Redis last-generated-id), '0-0' for a stream never appended to. */
  readonly lastId: string;
  /** The largest id XDEL removed ('0-0': none); trimming does not set it. */
  readonly maxDeletedId: string;
  readonly lastDeliveredId: string;
  /** Redis entries-read; null when Redis does not know it. */
  readonly entriesRead: number | null;
  /** Entries in the stream after lastDeliveredId; null when more than the adapter counted. */
  readonly entriesAfterDelivered: number | null;
}

/** Orders two well-formed `<ms>-<seq>` ids. */
export function compareEntryIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

const zeroId = '0-0';

/** Whether an XDEL removed an entry at or after `fromId` inside the stream (Redis streamRangeHasTombstones with no end). */
export function hasDeletionsFrom(counters: Pick<StreamGroupCounters, 'length' | 'firstId' | 'maxDeletedId'>, fromId: string): boolean {
  const { length, firstId, maxDeletedId } = counters;
  if (length === 0 || firstId === null || maxDeletedId === zeroId) return false;
  if (compareEntryIds(firstId, maxDeletedId) > 0) return false;
  return compareEntryIds(maxDeletedId, fromId) >= 0;
}

/**
 * Redis's estimate of how many entries were appended up to `id` (streamEstimateDistanceFromFirstEverEntry):
 * known at the last id, before or at the first entry when no XDEL splits the stream; null elsewhere.
 */
export function estimateEntriesThrough(counters: Omit<StreamGroupCounters, 'lastDeliveredId' | 'entriesRead' | 'entriesAfterDelivered'>, id: string): number | null {
  const { entriesAdded, length, firstId, lastId, maxDeletedId } = counters;
  if (entriesAdded === 0) return 0;
  const toLast = compareEntryIds(id, lastId);
  if (length === 0 && toLast <= 0) return entriesAdded;
  if (toLast === 0) return entriesAdded;
  if (toLast > 0 || firstId === null) return null;
  const toFirst = compareEntryIds(id, firstId);
  if (maxDeletedId === zeroId || compareEntryIds(maxDeletedId, firstId) < 0) {
    if (toFirst < 0) return entriesAdded - length;
    if (toFirst === 0) return entriesAdded - length + 1;
  }
  return null;
}

/** The entries a group lost to trimming, from the counters (see StreamGroupCounters). */
export function trimmedUnreadOf(counters: StreamGroupCounters): TrimmedUnread {
  const { entriesAdded, length, firstId, lastDeliveredId, entriesAfterDelivered } = counters;
  const base = { firstId, lastDeliveredId, entriesAdded, length };
  // An XDEL inside the stream (only dead-letter streams see one) breaks the "oldest are gone" count.
  if (hasDeletionsFrom(counters, zeroId)) return { ...base, entriesLost: null, exact: false };
  const read = counters.entriesRead ?? estimateEntriesThrough(counters, lastDeliveredId);
  if (read === null) return { ...base, entriesLost: null, exact: false };
  const removed = entriesAdded - length;
  if (firstId === null || compareEntryIds(lastDeliveredId, firstId) < 0) return { ...base, entriesLost: Math.max(0, removed - read), exact: true };
  if (entriesAfterDelivered !== null) return { ...base, entriesLost: Math.max(0, entriesAdded - entriesAfterDelivered - read), exact: true };
  // Inside the stream, too far from its end to count: the group's position is at least the first entry's.
  return { ...base, entriesLost: Math.max(0, removed + 1 - read), exact: false };
}
