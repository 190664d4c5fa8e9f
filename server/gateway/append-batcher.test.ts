import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { AppendBatcher } from './append-batcher.js';
import { VirtualTime } from '../../core/time/virtual-time.js';

/** Counts the bus calls the batcher makes, and fails appendBatch while `failing` holds (with `error()`, else STORE_UNAVAILABLE). */
function countingBus(inner: StreamBus, state: { single: number; batches: number[]; failing: boolean; error?: () => unknown }): StreamBus {
  return new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'append') return (...args: Parameters<StreamBus['append']>) => { state.single += 1; return target.append(...args); };
      if (name === 'appendBatch') {
        return (...args: Parameters<StreamBus['appendBatch']>) => {
          state.batches.push(args[1].length);
          if (state.failing) return Promise.reject(state.error?.() ?? new SdcError('STORE_UNAVAILABLE', 'bus down (test)'));
          return target.appendBatch(...args);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function setup(entriesMax: number, waitingMax = 1_000, aborted = () => false) {
  const time = new VirtualTime(1_000_000);
  const memory = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
  const state: { single: number; batches: number[]; failing: boolean; error?: () => unknown } = { single: 0, batches: [], failing: false };
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _encoding, done) { logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } }));
  const batcher = new AppendBatcher({
    bus: countingBus(memory, state), stream: 't', maxLen: 1_000, entriesMax, waitingMax, aborted, logger,
    schedule: (delayMs, run) => time.schedule(delayMs, run), cancel: (timer) => time.cancel(timer),
  });
  return { time, memory, state, batcher, logs };
}

const settleTurns = async (n = 10) => { for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve)); };

/** Which of the promises have settled, and how, as they settle. */
function watch<T>(promises: ReadonlyArray<Promise<T>>): Array<'pending' | 'fulfilled' | 'rejected'> {
  const seen: Array<'pending' | 'fulfilled' | 'rejected'> = promises.map(() => 'pending');
  promises.forEach((p, i) => p.then(() => { seen[i] = 'fulfilled'; }, () => { seen[i] = 'rejected'; }));
  return seen;
}

async function streamFields(memory: MemoryStreamBus): Promise<string[]> {
  return (await memory.range('t', { count: 1_000 })).map((e) => e.fields['n'] as string);
}

describe('AppendBatcher', () => {
  it('writes the appends of one turn as batches of at most entriesMax, in call order, each caller getting its own id', async () => {
    const { memory, state, batcher } = setup(4);
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.append({ n: String(i) })));
    assert.deepEqual(state.batches, [4, 4, 2]);
    assert.equal(state.single, 0);
    await memory.ensureGroup('t', 'g', '0');
    const entries = await memory.readGroup('t', 'g', 'c', { count: 20 });
    assert.deepEqual(entries.map((e) => e.fields['n']), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(entries.map((e) => e.id), ids, 'each caller got the id of its own entry');
    await memory.close();
  });

  it('with entriesMax 1 appends one by one, without batches', async () => {
    const { memory, state, batcher } = setup(1);
    await Promise.all([batcher.append({ n: '0' }), batcher.append({ n: '1' })]);
    assert.equal(state.single, 2);
    assert.deepEqual(state.batches, []);
    await memory.close();
  });

  describe('across a bus outage (appendBatch fails): held and written again, none lost', () => {
    it('writes the failed batches and those formed during the outage after it, in call order, each caller resolving only after its write', async () => {
      const { time, memory, state, batcher } = setup(3);
      state.failing = true;
      const before = Array.from({ length: 5 }, (_, i) => batcher.write({ n: String(i) }));
      const beforeSeen = watch(before);
      await settleTurns();
      assert.deepEqual(state.batches, [3, 2], 'both batches tried');
      assert.equal(batcher.heldEntries, 5);
      const during: Array<Promise<unknown>> = [batcher.write({ n: '5' }), batcher.append({ n: '6' })];
      const duringSeen = watch(during);
      await settleTurns();
      assert.deepEqual(state.batches, [3, 2], 'a batch formed during the backoff waits behind the held ones, not written before them');
      time.advance(250);
      await settleTurns();
      assert.deepEqual(state.batches, [3, 2, 3], 'the first retry (after 250 ms) writes the oldest batch first, and stops at its failure');
      assert.deepEqual([...beforeSeen, ...duringSeen], Array(7).fill('pending'), 'no caller settles while its entry is unwritten');
      state.failing = false;
      time.advance(499);
      await settleTurns();
      assert.deepEqual(state.batches, [3, 2, 3], 'the second retry after 500 ms, not before');
      time.advance(1);
      await Promise.all([...before, ...during]);
      assert.deepEqual(state.batches, [3, 2, 3, 3, 2, 2], 'then the held batches one at a time, oldest first');
      assert.deepEqual(await streamFields(memory), ['0', '1', '2', '3', '4', '5', '6'], 'none lost, none twice, in call order');
      assert.equal(batcher.heldEntries, 0);
      await batcher.append({ n: '7' });
      assert.deepEqual(state.batches.slice(6), [1], 'after the outage a batch is written at the end of its turn again');
      await memory.close();
    });

    it('backs off 250 ms doubling to at most 5 s between failed writes', async () => {
      const { time, memory, state, batcher } = setup(2);
      state.failing = true;
      const entry = batcher.write({ n: 'a' });
      await settleTurns();
      const triedAtMs: number[] = [];
      for (let ms = 0; ms <= 20_000; ms += 50) {
        const tries = state.batches.length;
        time.advance(ms === 0 ? 0 : 50);
        await settleTurns(3);
        if (state.batches.length > tries) triedAtMs.push(ms);
      }
      assert.deepEqual(triedAtMs, [250, 750, 1_750, 3_750, 7_750, 12_750, 17_750]);
      state.failing = false;
      time.advance(5_000);
      await entry;
      assert.deepEqual(await streamFields(memory), ['a']);
      await memory.close();
    });

    it('held entries count towards waitingMax: beyond it STORE_LIMIT, and the held ones are still written', async () => {
      const { time, memory, state, batcher } = setup(2, 4);
      state.failing = true;
      const held = Array.from({ length: 4 }, (_, i) => batcher.write({ n: String(i) }));
      await settleTurns();
      assert.equal(batcher.heldEntries, 4);
      await assert.rejects(batcher.write({ n: 'x' }), (e: unknown) => SdcError.is(e) && e.code === 'STORE_LIMIT');
      state.failing = false;
      time.advance(250);
      await Promise.all(held);
      assert.deepEqual(await streamFields(memory), ['0', '1', '2', '3']);
      await memory.close();
    });

    it('a crashed gateway (aborted) writes nothing more: its held entries are refused at the retry, not written', async () => {
      let crashed = false;
      const { time, memory, state, batcher } = setup(4, 1_000, () => crashed);
      state.failing = true;
      const entries = [batcher.write({ n: 'a' }), batcher.append({ n: 'b' })];
      await settleTurns();
      assert.deepEqual(state.batches, [2]);
      crashed = true;
      state.failing = false;
      time.advance(5_000);
      const outcomes = await Promise.allSettled(entries);
      assert.ok(outcomes.every((o) => o.status === 'rejected' && SdcError.is(o.reason) && o.reason.code === 'GATEWAY_SHUTTING_DOWN'));
      assert.deepEqual(state.batches, [2], 'no write after the crash');
      assert.equal(await memory.length('t'), 0);
      await memory.close();
    });

    it('stopWaiting writes the held entries at once (no backoff), and a failure then reaches the callers (a stop ends)', async () => {
      const { memory, state, batcher } = setup(4);
      state.failing = true;
      const first = batcher.write({ n: 'a' });
      await settleTurns();
      state.failing = false;
      batcher.stopWaiting();
      await first;
      assert.deepEqual(await streamFields(memory), ['a'], 'written without time moving');
      state.failing = true;
      await assert.rejects(batcher.write({ n: 'b' }), (e: unknown) => SdcError.is(e) && e.code === 'STORE_UNAVAILABLE');
      await memory.close();
    });
  });

  describe('an error that is not an outage\'s (it would recur at every retry): rejected to the callers at once, later batches not blocked', () => {
    const permanent: Array<[string, () => unknown, (e: unknown) => boolean]> = [
      ['STORE_INVALID_ARGUMENT', () => new SdcError('STORE_INVALID_ARGUMENT', 'bad entry (test)'), (e) => SdcError.is(e) && e.code === 'STORE_INVALID_ARGUMENT'],
      ['STORE_CORRUPT', () => new SdcError('STORE_CORRUPT', 'malformed reply (test)'), (e) => SdcError.is(e) && e.code === 'STORE_CORRUPT'],
      ['a plain Error (a bug)', () => new Error('bug (test)'), (e) => e instanceof Error && e.message === 'bug (test)'],
    ];
    for (const [name, error, matches] of permanent) {
      it(`${name}: its batch's callers see it, nothing is held, and the next batch is written at the end of its turn`, async () => {
        const { time, memory, state, batcher } = setup(3);
        state.failing = true;
        state.error = error;
        const failed: Array<Promise<unknown>> = [batcher.write({ n: 'a' }), batcher.append({ n: 'b' })];
        const failedSeen = watch(failed);
        await settleTurns();
        assert.deepEqual(failedSeen, ['rejected', 'rejected'], 'rejected at once, not held');
        for (const outcome of await Promise.allSettled(failed)) assert.ok(outcome.status === 'rejected' && matches(outcome.reason));
        assert.equal(batcher.heldEntries, 0);
        state.failing = false;
        const later: Array<Promise<unknown>> = [batcher.write({ n: 'c' }), batcher.append({ n: 'd' })];
        const laterSeen = watch(later);
        await settleTurns();
        assert.deepEqual(laterSeen, ['fulfilled', 'fulfilled'], 'a later batch is not held behind the failed one');
        assert.deepEqual(state.batches, [2, 2], 'one write each, no retry');
        time.advance(10_000);
        await settleTurns();
        assert.deepEqual(state.batches, [2, 2], 'no retry later either');
        assert.deepEqual(await streamFields(memory), ['c', 'd']);
        await memory.close();
      });
    }

    it('a held batch whose retry fails so is rejected then, and the held batches behind it are written in the same retry', async () => {
      const { time, memory, state, batcher } = setup(2);
      state.failing = true;
      const first = batcher.write({ n: 'a' });
      await settleTurns();
      const second = batcher.write({ n: 'b' }); // formed during the backoff: held behind the first
      await settleTurns();
      assert.equal(batcher.heldEntries, 2);
      const seen = watch([first, second]);
      // The first retry fails with an error that is not an outage's, once; the bus takes writes again after it.
      state.error = () => { state.failing = false; return new SdcError('STORE_CORRUPT', 'malformed reply (test)'); };
      time.advance(250);
      await settleTurns();
      assert.deepEqual(seen, ['rejected', 'fulfilled'], 'the first rejected at its retry; the second written right after it, no backoff');
      assert.deepEqual(state.batches, [1, 1, 1]);
      await batcher.write({ n: 'c' });
      assert.deepEqual(state.batches, [1, 1, 1, 1]);
      assert.deepEqual(await streamFields(memory), ['b', 'c'], 'nothing held: the next batch written at the end of its turn');
      assert.equal(batcher.heldEntries, 0);
      await memory.close();
    });
  });

  it('logs each failed write that is held (warn: entries, attempt, next delay) and the held batches once written (info: after how many attempts)', async () => {
    const { time, memory, state, batcher, logs } = setup(3);
    state.failing = true;
    const entries = [batcher.write({ n: '0' }), batcher.write({ n: '1' })];
    await settleTurns();
    time.advance(250);
    await settleTurns();
    state.failing = false;
    time.advance(500);
    await Promise.all(entries);
    await settleTurns();
    const lines = logs.map((l) => ({ level: l['level'], entries: l['entries'], attempt: l['attempt'], next_retry_ms: l['next_retry_ms'], attempts_max: l['attempts_max'] }));
    assert.deepEqual(lines, [
      { level: 40, entries: 2, attempt: 1, next_retry_ms: 250, attempts_max: undefined },
      { level: 40, entries: 2, attempt: 2, next_retry_ms: 500, attempts_max: undefined },
      { level: 30, entries: 2, attempt: undefined, next_retry_ms: undefined, attempts_max: 3 },
    ]);
    await memory.close();
  });

  it('write() callers of one batch wait on its one promise (none of their own), in call order, and all see its failure', async () => {
    const { memory, state, batcher } = setup(3);
    const written = Array.from({ length: 5 }, (_, i) => batcher.write({ n: String(i) }));
    assert.equal(written[0], written[1]);
    assert.equal(written[1], written[2]);
    assert.notEqual(written[2], written[3], 'a full batch is written at once; the next one is another');
    assert.equal(written[3], written[4]);
    await Promise.all(written);
    assert.deepEqual(state.batches, [3, 2]);
    await memory.ensureGroup('t', 'g', '0');
    assert.deepEqual((await memory.readGroup('t', 'g', 'c', { count: 10 })).map((e) => e.fields['n']), ['0', '1', '2', '3', '4']);
    batcher.stopWaiting(); // a stopping batcher passes a failure to the callers (no retry)
    state.failing = true;
    const failed = await Promise.allSettled([batcher.write({ n: 'a' }), batcher.append({ n: 'b' })]);
    assert.ok(failed.every((o) => o.status === 'rejected' && SdcError.is(o.reason) && o.reason.code === 'STORE_UNAVAILABLE'));
    await memory.close();
  });

  it('refuses with STORE_LIMIT beyond waitingMax entries waiting for a flush, and writes the others', async () => {
    const { memory, batcher } = setup(100, 3);
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => batcher.append({ n: String(i) })));
    assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    assert.ok(outcomes.slice(3).every((o) => o.status === 'rejected' && SdcError.is(o.reason) && o.reason.code === 'STORE_LIMIT'));
    assert.equal(await memory.length('t'), 3);
    await memory.close();
  });
  describe('with a window (a deployed gateway: the presence refresh window)', () => {
    function windowed(windowMs: number, aborted = () => false) {
      const time = new VirtualTime(1_000_000);
      const memory = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
      const state = { single: 0, batches: [] as number[], failing: false };
      const timers = { scheduled: 0, cancelled: 0 };
      const batcher = new AppendBatcher({
        bus: countingBus(memory, state), stream: 't', maxLen: 1_000, entriesMax: 100, waitingMax: 1_000, windowMs, aborted,
        schedule: (delayMs, run) => { timers.scheduled += 1; return time.schedule(delayMs, run); },
        cancel: (timer) => { timers.cancelled += 1; time.cancel(timer); },
      });
      return { time, memory, state, timers, batcher };
    }
    const turns = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve)); };

    it('joins appends of many turns and writes them when the presence window closes (flushWindow), its own timer cancelled', async () => {
      const { time, memory, state, timers, batcher } = windowed(100);
      const ids: Array<Promise<string>> = [];
      for (let i = 0; i < 3; i++) {
        ids.push(batcher.append({ n: String(i) }));
        await turns();
        time.advance(20);
      }
      assert.deepEqual(state.batches, [], 'nothing written before the window closes');
      batcher.flushWindow();
      await Promise.all(ids);
      assert.deepEqual(state.batches, [3], 'one write for the three');
      assert.deepEqual(timers, { scheduled: 1, cancelled: 1 });
      time.advance(1_000);
      await turns();
      assert.deepEqual(state.batches, [3], 'the cancelled timer writes nothing');
      batcher.flushWindow();
      assert.deepEqual(state.batches, [3], 'an empty window writes nothing');
      await memory.close();
    });

    it('without a window closing, writes at exactly two windows after the first append', async () => {
      const { time, memory, state, batcher } = windowed(100);
      const first = batcher.append({ n: 'a' });
      time.advance(40);
      const second = batcher.append({ n: 'b' });
      time.advance(159);
      await turns();
      assert.deepEqual(state.batches, [], 'not before windowMs');
      time.advance(1);
      await Promise.all([first, second]);
      assert.deepEqual(state.batches, [2]);
      await memory.close();
    });

    it('a crashed gateway (aborted) writes nothing more: the waiting entries are refused', async () => {
      let crashed = false;
      const { time, memory, state, batcher } = windowed(100, () => crashed);
      const entry = batcher.append({ n: 'a' });
      crashed = true;
      time.advance(200);
      await assert.rejects(entry, (e: unknown) => SdcError.is(e) && e.code === 'GATEWAY_SHUTTING_DOWN');
      assert.deepEqual(state.batches, []);
      assert.equal(await memory.length('t'), 0);
      await memory.close();
    });

    it('a window of 0 keeps the end-of-turn flush (the simulator\'s timing) and needs no timer', async () => {
      const { memory, state, timers, batcher } = windowed(0);
      await Promise.all([batcher.append({ n: 'a' }), batcher.append({ n: 'b' })]);
      assert.deepEqual(state.batches, [2]);
      assert.deepEqual(timers, { scheduled: 0, cancelled: 0 });
      await memory.close();
    });
  });
});
