import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../../core/errors/index.js';
import { busLimits } from './bus-arguments.js';
import { deadFields, deadLetterStream, type StreamBus } from './bus-port.js';

export interface BusContractTarget {
  create(): Promise<StreamBus>;
  /** Empties every stream the suite may have written. */
  reset(): Promise<void>;
  /** Lets `ms` of the bus's time pass: advances a virtual clock, or waits in real time. */
  advance(ms: number): Promise<void>;
  /** Loses every stream and group of `bus` at once, as Redis FLUSHALL or a restart without persistence does. */
  wipe(bus: StreamBus): Promise<void>;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(SdcError.is(error), `expected SdcError ${code}, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/**
 * `promise`'s value, or 'guard' if it is still pending after guardMs of real time. The guard's
 * timer is ref'd: a read that never ends fails the test instead of leaving an empty event loop
 * (node:test then cancels it) or hanging it. A failure detector, not a timing assertion.
 */
export async function settledOrGuard<T>(promise: Promise<T>, guardMs = 10_000): Promise<T | 'guard'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<'guard'>((resolve) => { timer = setTimeout(() => resolve('guard'), guardMs); });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function idOrder(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/** The one behaviour every StreamBus adapter must have. Idle thresholds are small real times (50 ms) so Redis can run it too. */
export function runBusContract(name: string, target: BusContractTarget): void {
  describe(`StreamBus contract: ${name}`, () => {
    let bus: StreamBus;
    beforeEach(async () => {
      await target.reset();
      bus = await target.create();
    });
    afterEach(async () => {
      await bus.close();
    });

    it('appends, reads through a group in order, and acks', async () => {
      await bus.ensureGroup('jobs', 'workers', '0');
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await bus.append('jobs', { n: String(i), kind: 'job' }));
      assert.deepEqual([...ids].sort(idOrder), ids, 'ids increase');
      assert.equal(await bus.length('jobs'), 3);
      const read = await bus.readGroup('jobs', 'workers', 'c1', { count: 10 });
      assert.deepEqual(read, ids.map((id, i) => ({ id, fields: { n: String(i), kind: 'job' }, deliveryCount: 1 })));
      assert.deepEqual(await bus.readGroup('jobs', 'workers', 'c1', { count: 10 }), [], 'each entry is new to the group once');
      assert.equal(await bus.ack('jobs', 'workers', ids), 3);
      assert.equal(await bus.ack('jobs', 'workers', ids), 0, 'acking twice counts nothing');
      assert.deepEqual(await bus.pending('jobs', 'workers'), []);
      assert.equal(await bus.length('jobs'), 3, 'acking does not delete');
    });

    it("starts a '$' group after the existing entries, and leaves an existing group as it is", async () => {
      await bus.append('events', { n: 'old' });
      await bus.ensureGroup('events', 'late', '$');
      await bus.ensureGroup('events', 'early', '0');
      await bus.append('events', { n: 'new' });
      assert.deepEqual((await bus.readGroup('events', 'late', 'c', { count: 10 })).map((e) => e.fields['n']), ['new']);
      await bus.ensureGroup('events', 'late', '0');
      assert.deepEqual(await bus.readGroup('events', 'late', 'c', { count: 10 }), []);
      assert.deepEqual((await bus.readGroup('events', 'early', 'c', { count: 10 })).map((e) => e.fields['n']), ['old', 'new']);
      assert.equal(await bus.length('missing'), 0);
    });

    it('shares the work of one group between two consumers', async () => {
      await bus.ensureGroup('work', 'g', '0');
      for (let i = 0; i < 6; i++) await bus.append('work', { n: String(i) });
      const first = await bus.readGroup('work', 'g', 'c1', { count: 4 });
      const second = await bus.readGroup('work', 'g', 'c2', { count: 4 });
      assert.equal(first.length, 4);
      assert.equal(second.length, 2);
      const all = [...first, ...second].map((e) => e.fields['n']);
      assert.deepEqual(all, ['0', '1', '2', '3', '4', '5']);
      const pending = await bus.pending('work', 'g');
      assert.deepEqual(pending.map((p) => p.consumer), ['c1', 'c1', 'c1', 'c1', 'c2', 'c2']);
      assert.deepEqual(pending.map((p) => p.id), [...first, ...second].map((e) => e.id));
    });

    it('lists unacked entries as pending with consumer, idle time and delivery count', async () => {
      await bus.ensureGroup('p', 'g', '0');
      const a = await bus.append('p', { n: 'a' });
      const b = await bus.append('p', { n: 'b' });
      await bus.readGroup('p', 'g', 'c1', { count: 2 });
      await bus.ack('p', 'g', [a]);
      const [only, ...rest] = await bus.pending('p', 'g');
      assert.deepEqual(rest, []);
      assert.equal(only?.id, b);
      assert.equal(only?.consumer, 'c1');
      assert.equal(only?.deliveryCount, 1);
      await target.advance(60);
      const idle = await bus.pending('p', 'g', { idleMsMin: 50 });
      assert.deepEqual(idle.map((p) => p.id), [b]);
      assert.ok((idle[0]?.idleMs ?? 0) >= 50);
      assert.deepEqual(await bus.pending('p', 'g', { idleMsMin: 3_600_000 }), []);
      assert.equal((await bus.pending('p', 'g', { count: 1 })).length, 1);
    });

    it('lets another consumer claim idle entries, counting each delivery', async () => {
      // Generous against a real server's clock: `fresh` must not reach idleMs between its read and the claim.
      const idleMs = 500;
      await bus.ensureGroup('c', 'g', '0');
      const id = await bus.append('c', { n: 'x' });
      const fresh = await bus.append('c', { n: 'y' });
      await bus.readGroup('c', 'g', 'c1', { count: 1 });
      assert.deepEqual(await bus.claim('c', 'g', 'c2', { minIdleMs: idleMs, count: 10 }), [], 'not idle long enough yet');
      await target.advance(idleMs + 50);
      await bus.readGroup('c', 'g', 'c1', { count: 1 }); // `fresh` is delivered now, so it is not idle
      const claimed = await bus.claim('c', 'g', 'c2', { minIdleMs: idleMs, count: 10 });
      assert.deepEqual(claimed, [{ id, fields: { n: 'x' }, deliveryCount: 2 }]);
      const pending = await bus.pending('c', 'g');
      assert.deepEqual(pending.map((p) => [p.id, p.consumer, p.deliveryCount]), [[id, 'c2', 2], [fresh, 'c1', 1]]);
      await target.advance(idleMs + 50);
      const again = await bus.claim('c', 'g', 'c3', { minIdleMs: idleMs, count: 1 });
      assert.deepEqual(again.map((e) => [e.id, e.deliveryCount]), [[id, 3]], 'count bounds the claim, oldest first');
    });

    it('dead-letters a pending entry to <stream>:dead and acks it', async () => {
      await bus.ensureGroup('d', 'g', '0');
      const id = await bus.append('d', { n: 'poison' });
      await bus.readGroup('d', 'g', 'c1', { count: 1 });
      await target.advance(60);
      await bus.claim('d', 'g', 'c2', { minIdleMs: 50, count: 1 });
      const deadId = await bus.deadLetter('d', 'g', id, 'handler failed 2 times');
      assert.equal(typeof deadId, 'string');
      assert.deepEqual(await bus.pending('d', 'g'), []);
      assert.equal(await bus.length(deadLetterStream('d')), 1);
      await bus.ensureGroup(deadLetterStream('d'), 'inspect', '0');
      const [dead] = await bus.readGroup(deadLetterStream('d'), 'inspect', 'ops', { count: 10 });
      assert.deepEqual(dead?.fields, {
        n: 'poison',
        [deadFields.reason]: 'handler failed 2 times',
        [deadFields.sourceId]: id,
        [deadFields.group]: 'g',
        [deadFields.deliveryCount]: '2',
      });
      assert.equal(await bus.deadLetter('d', 'g', id, 'again'), null, 'an entry no longer pending is not moved twice');
    });

    it('range reads entries in id order after an id, outside any group; remove deletes by id', async () => {
      assert.deepEqual(await bus.range('r', { count: 10 }), [], 'a missing stream is empty');
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) ids.push(await bus.append('r', { n: String(i) }));
      const first = await bus.range('r', { count: 2 });
      assert.deepEqual(first, [{ id: ids[0], fields: { n: '0' } }, { id: ids[1], fields: { n: '1' } }]);
      const next = await bus.range('r', { afterId: first.at(-1)!.id, count: 10 });
      assert.deepEqual(next.map((e) => e.fields['n']), ['2', '3', '4'], 'after is exclusive');
      assert.deepEqual(await bus.range('r', { afterId: ids[4]!, count: 10 }), []);
      // Reading a range delivers nothing: a group created from the start still gets everything.
      await bus.ensureGroup('r', 'g', '0');
      assert.equal((await bus.readGroup('r', 'g', 'c', { count: 10 })).length, 5);
      assert.equal(await bus.remove('r', [ids[1]!, ids[3]!, ids[3]!]), 2, 'a repeated id counts once');
      assert.equal(await bus.remove('r', [ids[1]!]), 0, 'already removed');
      assert.equal(await bus.remove('nowhere', [ids[0]!]), 0);
      assert.equal(await bus.length('r'), 3);
      assert.deepEqual((await bus.range('r', { count: 10 })).map((e) => e.fields['n']), ['0', '2', '4']);
      assert.deepEqual((await bus.range('r', { afterId: ids[1]!, count: 10 })).map((e) => e.fields['n']), ['2', '4'], 'after a removed id');
      await rejectsWithCode(bus.range('r', { count: 0 }), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.range('r', { afterId: 'x-1', count: 1 }), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.remove('r', []), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.remove('r', ['1-x']), 'STORE_INVALID_ARGUMENT');
    });

    it('trims to about maxLen, always keeping the newest entries', async () => {
      const ids = [];
      for (let i = 0; i < 300; i++) ids.push(await bus.append('t', { n: String(i) }, { maxLen: 20 }));
      const length = await bus.length('t');
      assert.ok(length >= 20 && length < 300, `length ${length} after trimming to ~20`);
      await bus.ensureGroup('t', 'g', '0');
      const kept = await bus.readGroup('t', 'g', 'c', { count: 1000 });
      assert.equal(kept.length, length);
      assert.deepEqual(kept.map((e) => e.id), ids.slice(300 - length), 'what remains is the newest suffix');
    });

    it('reports entries trimmed before a group read them, with their count, and none for entries it had read', async () => {
      await bus.ensureGroup('lost', 'slow', '0');
      await bus.ensureGroup('lost', 'fast', '0');
      const ids: string[] = [];
      for (let i = 0; i < 10; i += 1) ids.push(await bus.append('lost', { n: String(i) }));
      await bus.readGroup('lost', 'slow', 'c', { count: 3 });
      await bus.readGroup('lost', 'fast', 'c', { count: 10 });
      const none = await bus.trimmedUnread('lost', 'slow');
      assert.deepEqual(none, { entriesLost: 0, exact: true, firstId: ids[0], lastDeliveredId: ids[2], entriesAdded: 10, length: 10 });
      // 300 more, kept to about 20: Redis (MAXLEN ~) keeps whole nodes, so its length is read back, not assumed.
      for (let i = 10; i < 310; i += 1) ids.push(await bus.append('lost', { n: String(i) }, { maxLen: 20 }));
      const length = await bus.length('lost');
      assert.ok(length >= 20 && length < 300, `length ${length}`);
      const firstKept = ids[310 - length]!;
      const slow = await bus.trimmedUnread('lost', 'slow');
      assert.deepEqual(slow, { entriesLost: 310 - length - 3, exact: true, firstId: firstKept, lastDeliveredId: ids[2], entriesAdded: 310, length });
      // The fast group read its 10 before the trim; the 300 after them it had not read are lost to it too.
      assert.equal((await bus.trimmedUnread('lost', 'fast')).entriesLost, 310 - length - 10);
      // Reading past the gap does not hide it: the count stays (it is over the stream's life).
      const read = await bus.readGroup('lost', 'slow', 'c', { count: 1000 });
      assert.equal(read[0]?.id, firstKept, 'the next entry delivered is the first one kept');
      assert.deepEqual(await bus.trimmedUnread('lost', 'slow'), { ...slow, lastDeliveredId: ids[309] });
      // A group that read everything before a trim lost nothing to it.
      await bus.ensureGroup('kept', 'g', '0');
      for (let i = 0; i < 50; i += 1) await bus.append('kept', { n: String(i) });
      assert.equal((await bus.readGroup('kept', 'g', 'c', { count: 100 })).length, 50);
      for (let i = 0; i < 300; i += 1) {
        await bus.append('kept', { n: String(i) }, { maxLen: 20 });
        await bus.readGroup('kept', 'g', 'c', { count: 10 });
      }
      const kept = await bus.trimmedUnread('kept', 'g');
      assert.equal(kept.entriesLost, 0);
      assert.equal(kept.exact, true);
      assert.ok(kept.length < 350, 'the stream was trimmed');
      // A group created after a trim counts nothing from before it.
      await bus.ensureGroup('lost', 'late', '0');
      assert.equal((await bus.trimmedUnread('lost', 'late')).entriesLost, 0);
      await rejectsWithCode(bus.trimmedUnread('lost', 'nobody'), 'STORE_NO_GROUP');
      await rejectsWithCode(bus.trimmedUnread('missing', 'g'), 'STORE_NO_GROUP');
    });

    it('cannot tell the trimmed entries once one was deleted inside the stream (remove, XDEL)', async () => {
      await bus.ensureGroup('del', 'g', '0');
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) ids.push(await bus.append('del', { n: String(i) }));
      assert.equal(await bus.remove('del', [ids[2]!]), 1);
      assert.deepEqual(await bus.trimmedUnread('del', 'g'), { entriesLost: null, exact: false, firstId: ids[0], lastDeliveredId: '0-0', entriesAdded: 5, length: 4 });
    });

    it('wakes a blocked reader when an entry is appended', async () => {
      await bus.ensureGroup('b', 'g', '$');
      const blocked = bus.readGroup('b', 'g', 'c1', { count: 5, blockMs: 10_000 });
      const id = await bus.append('b', { n: 'wake' });
      assert.deepEqual(await blocked, [{ id, fields: { n: 'wake' }, deliveryCount: 1 }]);
    });

    it('returns nothing when a blocking read times out', async () => {
      await bus.ensureGroup('bt', 'g', '$');
      const blocked = bus.readGroup('bt', 'g', 'c1', { count: 5, blockMs: 100 });
      await target.advance(150);
      assert.deepEqual(await blocked, []);
    });

    it('ends a blocked read when its signal aborts: nothing is delivered to it, the next read gets the entry, and blocking reads still work', async () => {
      await bus.ensureGroup('ba', 'g', '$');
      const stop = new AbortController();
      // The longest block there is, and no time passes here: only the abort can end this read.
      const blocked = bus.readGroup('ba', 'g', 'c1', { count: 5, blockMs: busLimits.blockMsMax, signal: stop.signal });
      await bus.length('ba'); // a round trip first: an abort must end the read wherever it is
      stop.abort();
      assert.deepEqual(await settledOrGuard(blocked), [], 'the aborted read ends with nothing');
      assert.deepEqual(getEventListeners(stop.signal, 'abort'), [], 'the read left no listener on the signal');
      const id = await bus.append('ba', { n: 'after' });
      assert.deepEqual(await bus.pending('ba', 'g'), [], 'nothing was delivered to the aborted reader');
      assert.deepEqual(await bus.readGroup('ba', 'g', 'c1', { count: 5, blockMs: 10_000, signal: stop.signal }), [], 'an aborted signal reads nothing');
      assert.deepEqual(await bus.readGroup('ba', 'g', 'c2', { count: 5 }), [{ id, fields: { n: 'after' }, deliveryCount: 1 }]);
      // A later blocking read with a live signal is woken as usual, and leaves no listener behind either.
      const live = new AbortController();
      const next = bus.readGroup('ba', 'g', 'c1', { count: 5, blockMs: 10_000, signal: live.signal });
      await bus.length('ba');
      const woken = await bus.append('ba', { n: 'wake' });
      assert.deepEqual(await settledOrGuard(next), [{ id: woken, fields: { n: 'wake' }, deliveryCount: 1 }]);
      assert.deepEqual(getEventListeners(live.signal, 'abort'), []);
    });

    it('answers STORE_NO_GROUP once the store lost its streams (a blocked reader too), and ensureGroup brings the group back', async () => {
      await bus.ensureGroup('w', 'g', '0');
      const lost = await bus.append('w', { n: 'lost' });
      await bus.readGroup('w', 'g', 'c1', { count: 10 });
      // Settled into a value at once: the rejection may come while the wipe is still being awaited.
      const blocked = bus.readGroup('w', 'g', 'c2', { count: 1, blockMs: 10_000 }).then((entries) => entries, (error: unknown) => error);
      await target.wipe(bus);
      const outcome = await blocked;
      assert.ok(SdcError.is(outcome) && outcome.code === 'STORE_NO_GROUP', `the blocked reader got ${String(outcome)}`);
      await rejectsWithCode(bus.readGroup('w', 'g', 'c1', { count: 10 }), 'STORE_NO_GROUP');
      await rejectsWithCode(bus.claim('w', 'g', 'c1', { minIdleMs: 0, count: 10 }), 'STORE_NO_GROUP');
      await rejectsWithCode(bus.pending('w', 'g'), 'STORE_NO_GROUP');
      await rejectsWithCode(bus.deadLetter('w', 'g', lost, 'gone'), 'STORE_NO_GROUP');
      assert.equal(await bus.ack('w', 'g', [lost]), 0, 'an entry lost with the store is not pending');
      assert.equal(await bus.length('w'), 0);
      // Producers write on before the consumer notices; a group re-created from '0' reads what they wrote.
      await bus.append('w', { n: 'after' });
      await bus.ensureGroup('w', 'g', '0');
      assert.deepEqual((await bus.readGroup('w', 'g', 'c1', { count: 10 })).map((e) => e.fields['n']), ['after']);
    });

    it('appends a batch in order, interleaved with single appends, with increasing ids', async () => {
      await bus.ensureGroup('batch', 'g', '0');
      const first = await bus.append('batch', { n: 'a' });
      const ids = await bus.appendBatch('batch', [{ n: 'b' }, { n: 'c', kind: 'x' }, { n: 'd' }]);
      const last = await bus.append('batch', { n: 'e' });
      assert.equal(ids.length, 3);
      const all = [first, ...ids, last];
      assert.deepEqual([...all].sort(idOrder), all, 'ids increase across single and batch appends');
      assert.equal(new Set(all).size, 5);
      const read = await bus.readGroup('batch', 'g', 'c', { count: 10 });
      assert.deepEqual(read.map((e) => e.id), all);
      assert.deepEqual(read.map((e) => e.fields), [{ n: 'a' }, { n: 'b' }, { n: 'c', kind: 'x' }, { n: 'd' }, { n: 'e' }]);
      assert.deepEqual(await bus.appendBatch('batch', []), [], 'an empty batch appends nothing');
      assert.equal(await bus.length('batch'), 5);
    });

    it('trims a batch to about maxLen, keeping the newest, and wakes a blocked reader', async () => {
      await bus.ensureGroup('bt', 'g', '0');
      const blocked = bus.readGroup('bt', 'g', 'c', { count: 500, blockMs: 10_000 });
      const entries = Array.from({ length: 500 }, (_, i) => ({ n: String(i) }));
      const ids = await bus.appendBatch('bt', entries, { maxLen: 100 });
      assert.ok((await blocked).length >= 1, 'the blocked reader was woken');
      const length = await bus.length('bt');
      assert.ok(length >= 100 && length < 500, `about 100 kept, got ${length}`);
      await bus.ensureGroup('bt', 'fresh', '0');
      const kept = await bus.readGroup('bt', 'fresh', 'c', { count: 500 });
      assert.equal(kept.at(-1)?.id, ids.at(-1), 'the newest entry is kept');
    });

    it('refuses a bad batch whole: nothing of it is appended', async () => {
      await rejectsWithCode(bus.appendBatch('bad', [{ n: '1' }, {}]), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.appendBatch('bad', [{ n: '1' }, { n: 'x'.repeat(busLimits.fieldBytesMax + 1) }]), 'STORE_LIMIT');
      const tooMany = Array.from({ length: busLimits.batchEntriesMax + 1 }, () => ({ n: '1' }));
      await rejectsWithCode(bus.appendBatch('bad', tooMany), 'STORE_LIMIT');
      await rejectsWithCode(bus.appendBatch('bad', [{ n: '1' }], { maxLen: 0 }), 'STORE_INVALID_ARGUMENT');
      assert.equal(await bus.length('bad'), 0);
    });

    it('refuses reads on a missing group and invalid arguments', async () => {
      await rejectsWithCode(bus.readGroup('nogroup', 'g', 'c', { count: 1 }), 'STORE_NO_GROUP');
      await bus.ensureGroup('args', 'g', '0');
      await rejectsWithCode(bus.readGroup('args', 'g', 'c', { count: 0 }), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.append('args', {}), 'STORE_INVALID_ARGUMENT');
      await rejectsWithCode(bus.ack('args', 'g', ['not-an-id']), 'STORE_INVALID_ARGUMENT');
    });
  });
}
