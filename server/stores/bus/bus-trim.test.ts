// trimmedUnreadOf: the counting both bus adapters share (bus-trim.ts), case by case from the
// counters, including the ones the contract suite cannot reach cheaply on Redis (a group far from
// the stream's end, past the 256 entries the adapter counts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { estimateEntriesThrough, trimmedUnreadOf, type StreamGroupCounters } from './bus-trim.js';

// A stream of 1,000 appended entries `<n>-0` (n = 1..1000), the oldest 600 trimmed: 400 held, 601-0 first.
const stream = { entriesAdded: 1_000, length: 400, firstId: '601-0', lastId: '1000-0', maxDeletedId: '0-0' } as const;
const counters = (group: Partial<StreamGroupCounters>): StreamGroupCounters => ({
  ...stream, lastDeliveredId: '0-0', entriesRead: 0, entriesAfterDelivered: null, ...group,
});

describe('trimmedUnreadOf', () => {
  it('is exact while the group is behind the first entry: every entry after it that is gone was lost', () => {
    assert.deepEqual(trimmedUnreadOf(counters({ lastDeliveredId: '100-0', entriesRead: 100 })), {
      entriesLost: 500, exact: true, firstId: '601-0', lastDeliveredId: '100-0', entriesAdded: 1_000, length: 400,
    });
  });

  it('is exact inside the stream when the entries after the group were counted', () => {
    // The group lost 500, then read 301 more (601..901): it has read 401, 99 are left after it.
    assert.equal(trimmedUnreadOf(counters({ lastDeliveredId: '901-0', entriesRead: 401, entriesAfterDelivered: 99 })).entriesLost, 500);
    assert.equal(trimmedUnreadOf(counters({ lastDeliveredId: '1000-0', entriesRead: 1_000, entriesAfterDelivered: 0 })).entriesLost, 0, 'read everything: nothing lost');
  });

  it('is a lower bound inside the stream past the count, and never more than the loss', () => {
    const far = trimmedUnreadOf(counters({ lastDeliveredId: '650-0', entriesRead: 150 }));
    // The group lost 500 (101..600), then read 50 (601..650): at least the first entry's counter (601) less what it read (150).
    assert.deepEqual([far.entriesLost, far.exact], [451, false]);
    assert.ok(far.entriesLost! <= 500);
    assert.equal(trimmedUnreadOf(counters({ lastDeliveredId: '650-0', entriesRead: 650 })).entriesLost, 0, 'nothing lost: no false report');
  });

  it('cannot tell after an XDEL inside the stream, nor with an unknown read counter in the middle', () => {
    assert.equal(trimmedUnreadOf(counters({ maxDeletedId: '700-0', lastDeliveredId: '100-0', entriesRead: 100 })).entriesLost, null);
    assert.equal(trimmedUnreadOf(counters({ lastDeliveredId: '700-0', entriesRead: null })).entriesLost, null);
  });

  it('estimates an unknown read counter as Redis does: before the first entry, at it, at the last', () => {
    assert.equal(estimateEntriesThrough(stream, '100-0'), 600);
    assert.equal(estimateEntriesThrough(stream, '601-0'), 601);
    assert.equal(estimateEntriesThrough(stream, '1000-0'), 1_000);
    assert.equal(estimateEntriesThrough(stream, '700-0'), null);
    assert.equal(estimateEntriesThrough({ ...stream, maxDeletedId: '700-0' }, '100-0'), null);
    // A group created at '0' by an older version, never read: Redis counts the trimmed entries as read.
    assert.equal(trimmedUnreadOf(counters({ entriesRead: null })).entriesLost, 0);
  });
});
