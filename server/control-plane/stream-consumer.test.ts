import { createHook } from 'node:async_hooks';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { settledOrGuard } from '../stores/bus/bus-contract.js';
import { deadLetterStream, type BusEntry, type StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { retryLimits, StreamConsumer } from './stream-consumer.js';

const stream = 'test:events';
const group = 'cp';

/** Lets other handlers run: the handler's "SQL work" is a number of event-loop turns. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('StreamConsumer partitions', () => {
  it('handles devices concurrently, each device in stream order with one entry in flight, and acks or dead-letters every entry', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ device: fc.integer({ min: 0, max: 5 }), turns: fc.integer({ min: 0, max: 4 }), malformed: fc.boolean() }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 4 }),
      async (plan, inFlightMax) => {
        const time = new VirtualTime();
        const bus = new MemoryStreamBus({ clock: time, scheduler: time });
        for (const [index, step] of plan.entries()) {
          await bus.append(stream, step.malformed ? { junk: String(index), turns: String(step.turns) } : { device: `d${step.device}`, index: String(index), turns: String(step.turns) });
        }
        const handled = new Map<string, number[]>();
        const inFlight = new Map<string, number>();
        let running = 0;
        let runningMax = 0;
        const consumer = new StreamConsumer({
          bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
          batchSize: 64, partitionsInFlightMax: inFlightMax,
          partitionKey: (entry: BusEntry) => entry.fields['device'],
          handle: async (entry) => {
            const device = entry.fields['device'];
            running += 1;
            runningMax = Math.max(runningMax, running);
            if (device === undefined) {
              // A malformed entry is a partition of its own and holds a handler slot like any other.
              await turns(Number(entry.fields['turns']));
              running -= 1;
              throw new SdcError('PROTO_UNKNOWN_TYPE', 'no device field');
            }
            assert.equal(inFlight.get(device) ?? 0, 0, `two entries of ${device} in flight at once`);
            inFlight.set(device, 1);
            await turns(Number(entry.fields['turns']));
            handled.set(device, [...(handled.get(device) ?? []), Number(entry.fields['index'])]);
            running -= 1;
            inFlight.set(device, 0);
          },
        });
        assert.equal(await consumer.drain(), plan.length);
        for (const [device, indexes] of handled) {
          const expected = plan.flatMap((step, index) => (!step.malformed && `d${step.device}` === device ? [index] : []));
          assert.deepEqual(indexes, expected, `${device} handled out of order`);
        }
        const partitions = new Set(plan.filter((step) => !step.malformed).map((step) => step.device)).size + plan.filter((step) => step.malformed).length;
        assert.ok(runningMax <= inFlightMax, `${runningMax} partitions in flight, limit ${inFlightMax}`);
        // The first entry of every partition is ready at once, so the concurrency is reached before any handler finishes.
        assert.ok(runningMax >= Math.min(inFlightMax, partitions), `only ${runningMax} of ${Math.min(inFlightMax, partitions)} partitions ran at once`);
        assert.deepEqual(await bus.pending(stream, group), [], 'every entry was acked or dead-lettered');
        assert.equal(await bus.length(deadLetterStream(stream)), plan.filter((step) => step.malformed).length);
        await bus.close();
      },
    ), { numRuns: 150 });
  });

  it('acks the entries finished together in one XACK, and each entry only after its handler resolved', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    for (let index = 0; index < 12; index += 1) await bus.append(stream, { device: `d${index}`, index: String(index) });
    const ackCalls: string[][] = [];
    const handled = new Set<string>();
    const counting = new Proxy(bus, {
      get(target, property, receiver) {
        if (property === 'ack') {
          return async (s: string, g: string, ids: readonly string[]) => {
            for (const id of ids) assert.ok(handled.has(id), `entry ${id} acked before its handler resolved`);
            ackCalls.push([...ids]);
            await turns(1); // a round trip to the bus, during which more entries finish
            return target.ack(s, g, ids);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const consumer = new StreamConsumer({
      bus: counting, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
      partitionKey: (entry: BusEntry) => entry.fields['device'], partitionsInFlightMax: 64,
      handle: async (entry) => {
        await turns(1);
        handled.add(entry.id);
      },
    });
    assert.equal(await consumer.drain(), 12);
    assert.deepEqual(await bus.pending(stream, group), [], 'every entry acked');
    assert.equal(ackCalls.flat().length, 12, 'each entry acked once');
    assert.ok(ackCalls.length < 12, `12 entries finished together took ${ackCalls.length} XACKs`);
    await bus.close();
  });

  it('runs as a pipeline: reads on while an entry is handled, never more than entriesInFlightMax unfinished, one device in order', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    const release = new Map<string, () => void>();
    const started: string[] = [];
    const finished: string[] = [];
    const consumer = new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
      entriesInFlightMax: 3, partitionKey: (entry: BusEntry) => entry.fields['device'],
      handle: async (entry) => {
        const name = entry.fields['name']!;
        started.push(name);
        await new Promise<void>((resolve) => { release.set(name, resolve); });
        finished.push(name);
      },
    });
    await consumer.ensureGroup();
    consumer.start({ blockMs: 1_000 });
    await bus.append(stream, { device: 'a', name: 'a1' });
    await turns(5);
    assert.deepEqual(started, ['a1']);
    // Read after a1 and handled while a1 is still running: no batch waits for another's slowest entry.
    await bus.append(stream, { device: 'b', name: 'b1' });
    await bus.append(stream, { device: 'a', name: 'a2' });
    await bus.append(stream, { device: 'c', name: 'c1' });
    await turns(10);
    assert.deepEqual(started, ['a1', 'b1'], 'a2 waits for a1; c1 is not read while three entries are unfinished');
    assert.equal(consumer.entriesInFlight, 3);
    release.get('b1')!();
    await turns(10);
    assert.deepEqual(started, ['a1', 'b1', 'c1']);
    release.get('a1')!();
    await turns(10);
    assert.deepEqual(started, ['a1', 'b1', 'c1', 'a2']);
    release.get('a2')!();
    release.get('c1')!();
    await turns(10);
    assert.deepEqual(finished, ['b1', 'a1', 'a2', 'c1']);
    const stopped = consumer.stop();
    time.advance(1_000); // ends the blocking read
    await stopped;
    assert.deepEqual(await bus.pending(stream, group), [], 'every entry was acked');
    await bus.close();
  });

  it('re-creates its group when the store lost it (Redis restart without persistence, FLUSHALL) and handles what was appended since', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    const handled: string[] = [];
    const consumer = new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
      handle: async (entry) => { handled.push(entry.fields['name']!); },
    });
    consumer.start({ blockMs: 1_000 });
    await turns(5);
    await bus.append(stream, { name: 'before' });
    await turns(10);
    assert.deepEqual(handled, ['before']);
    bus.wipe(); // the blocked read fails with STORE_NO_GROUP
    await bus.append(stream, { name: 'after-wipe' });
    for (let i = 0; i < 5 && handled.length < 2; i++) {
      time.advance(1_000); // the pause after a failed read
      await turns(10);
    }
    assert.deepEqual(handled, ['before', 'after-wipe']);
    await bus.append(stream, { name: 'later' });
    await turns(10);
    assert.deepEqual(handled, ['before', 'after-wipe', 'later']);
    const stopped = consumer.stop();
    time.advance(1_000);
    await stopped;
    bus.wipe();
    await bus.append(stream, { name: 'polled' });
    await assert.rejects(consumer.pollOnce(), (e) => SdcError.is(e, 'STORE_NO_GROUP'), 'a stopped consumer learns of the loss on its next read');
    assert.equal(await consumer.pollOnce(), 1, 'and the read after it re-creates the group');
    assert.deepEqual(handled, ['before', 'after-wipe', 'later', 'polled']);
    await bus.close();
  });

  it('refuses a partition limit below one', () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    assert.throws(() => new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time, handle: async () => undefined, partitionsInFlightMax: 0,
    }), (e) => SdcError.is(e, 'STORE_INVALID_ARGUMENT'));
  });
});

describe('StreamConsumer retries (issue 18.5: a failed entry must not be overtaken by later entries of its device)', () => {
  const unavailable = () => new SdcError('STORE_UNAVAILABLE', 'the store is unavailable (test)');

  /** A consumer whose handler fails for the entries named in `failing` while `store.down` holds. */
  function setUp(options: { failing: readonly string[]; wrapBus?: (bus: MemoryStreamBus) => MemoryStreamBus }) {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    const store = { down: true, failures: 0 };
    const handled: string[] = [];
    const calls = new Map<string, number>();
    const consumer = new StreamConsumer({
      bus: options.wrapBus?.(bus) ?? bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
      partitionKey: (entry: BusEntry) => entry.fields['device'],
      handle: async (entry) => {
        const name = entry.fields['name']!;
        calls.set(name, (calls.get(name) ?? 0) + 1);
        if (store.down && options.failing.includes(name)) {
          store.failures += 1;
          throw unavailable();
        }
        handled.push(name);
      },
    });
    const append = (device: string, name: string) => bus.append(stream, { device, name });
    return { time, bus, store, handled, calls, consumer, append };
  }

  it('retries a failed entry in place while the later entries of its device wait and other devices go on', async () => {
    const { time, bus, store, handled, consumer, append } = setUp({ failing: ['a1'] });
    await append('a', 'a1');
    await append('a', 'a2');
    await append('b', 'b1');
    await consumer.ensureGroup();
    consumer.start({ blockMs: 60_000 });
    await turns(10);
    assert.deepEqual(handled, ['b1'], 'a2 waits behind the failed a1; b1 is not held up');
    time.advance(retryLimits.pauseMsFirst);
    await turns(10);
    assert.equal(store.failures, 2, 'a1 tried again after the first pause');
    assert.deepEqual(handled, ['b1']);
    store.down = false;
    time.advance(2 * retryLimits.pauseMsFirst);
    await turns(10);
    assert.deepEqual(handled, ['b1', 'a1', 'a2'], 'a1, then a2: stream order within the device');
    assert.deepEqual(await bus.pending(stream, group), []);
    const stopped = consumer.stop();
    time.advance(60_000); // ends the blocking read
    await stopped;
    await bus.close();
  });

  it('after attemptsMax leaves the entry pending with the rest of its device, unhandled, and a claim replays them in order', async () => {
    const { time, bus, store, handled, calls, consumer, append } = setUp({ failing: ['a1'] });
    await append('a', 'a1');
    await append('a', 'a2');
    const polled = consumer.pollOnce();
    for (let i = 0; i < retryLimits.attemptsMax; i += 1) {
      await turns(10);
      time.advance(retryLimits.pauseMsMax);
    }
    assert.equal(await polled, 2);
    assert.equal(store.failures, retryLimits.attemptsMax, 'bounded');
    assert.deepEqual(handled, [], 'a2 was not handled ahead of a1');
    assert.equal(calls.get('a2'), undefined);
    assert.deepEqual((await bus.pending(stream, group)).map((p) => p.deliveryCount), [1, 1], 'both left pending');
    store.down = false;
    assert.equal(await consumer.claimIdle(0), 2);
    assert.deepEqual(handled, ['a1', 'a2']);
    assert.deepEqual(await bus.pending(stream, group), []);
    await bus.close();
  });

  it('retries a failed ack without running the handler again', async () => {
    let ackFailures = 1;
    const failAckOnce = (bus: MemoryStreamBus) => new Proxy(bus, {
      get(target, name, receiver) {
        if (name === 'ack') {
          return async (s: string, g: string, ids: readonly string[]) => {
            if (ackFailures > 0) {
              ackFailures -= 1;
              throw unavailable();
            }
            return target.ack(s, g, ids);
          };
        }
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { time, bus, calls, handled, consumer, append } = setUp({ failing: [], wrapBus: failAckOnce });
    await append('a', 'a1');
    await append('a', 'a2');
    const polled = consumer.pollOnce();
    await turns(10);
    assert.deepEqual(handled, ['a1'], 'a2 waits for a1 to be acked');
    time.advance(retryLimits.pauseMsFirst);
    assert.equal(await polled, 2);
    assert.deepEqual(handled, ['a1', 'a2']);
    assert.equal(calls.get('a1'), 1, 'the handler ran once');
    assert.deepEqual(await bus.pending(stream, group), []);
    await bus.close();
  });

  it('stop() cuts a retry pause short and leaves the entry pending', async () => {
    const { bus, store, consumer, append } = setUp({ failing: ['a1'] });
    await append('a', 'a1');
    const polled = consumer.pollOnce();
    await turns(10);
    assert.equal(store.failures, 1);
    await consumer.stop(); // no time passes: the pause is cut, not waited out
    assert.equal(await polled, 1);
    assert.equal(store.failures, 1, 'no retry after stop');
    assert.equal((await bus.pending(stream, group)).length, 1);
    await bus.close();
  });
});

describe('StreamConsumer costs per entry', () => {
  it('handles an entry with at most 8 promises beside its handler\'s (the bus\'s read and ack included): 15 before issue 17\'s first pass, 9.3 before the slot and handler moved into #process', async () => {
    // Every promise is an allocation and a job, and with an AsyncLocalStorage in the process (sql.js
    // adapter) a hook call: paid per telemetry sample. 400 entries over 50 partitions, 8 each.
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    for (let i = 0; i < 400; i++) await bus.append(stream, { device: `d${i % 50}`, i: String(i) });
    let handled = 0;
    const consumer = new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time,
      batchSize: 400, partitionsInFlightMax: 64, entriesInFlightMax: 1_000, partitionKey: (entry) => entry.fields['device'],
      handle: async () => { handled += 1; },
    });
    await consumer.ensureGroup();
    let promises = 0;
    const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises += 1; } }).enable();
    let read: number;
    try {
      read = await consumer.pollOnce(0);
    } finally {
      hook.disable();
    }
    assert.equal(read, 400);
    assert.equal(handled, 400);
    assert.deepEqual(await bus.pending(stream, group), [], 'every entry acked');
    const perEntry = promises / read;
    assert.ok(perEntry <= 8, `${perEntry.toFixed(2)} promises per entry`);
  });
});

/**
 * stop() waited for the running loop, and the loop could be blocked in a read (or pausing after a
 * failed one) until a timer on the bus's or the consumer's scheduler fired: on a virtual clock no
 * one advances any more, or an unref'd timer in an otherwise empty event loop, never. stop() now
 * aborts both. The guard is real time and only turns a hang into a failure.
 */
describe('StreamConsumer stop() ends its own blocked read and pause', () => {
  /** The bus, with a promise resolved when the first blocking read is entered. */
  function watched(bus: StreamBus, options: { failReads?: boolean } = {}): { bus: StreamBus; blocked: Promise<void> } {
    let entered!: () => void;
    const blocked = new Promise<void>((resolve) => { entered = resolve; });
    const proxy = new Proxy(bus, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property !== 'readGroup') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        return (...args: Parameters<StreamBus['readGroup']>) => {
          if (options.failReads === true) return Promise.reject(new SdcError('STORE_UNAVAILABLE', 'bus down'));
          const read = target.readGroup(...args);
          if ((args[3].blockMs ?? 0) > 0) entered(); // the in-memory bus has registered the blocked reader by now
          return read;
        };
      },
    });
    return { bus: proxy, blocked };
  }

  it('resolves while the loop is blocked in a read on a virtual clock no one advances; what is appended after goes to the next consumer', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    const { bus: watching, blocked } = watched(bus);
    const handled: string[] = [];
    const make = (name: string): StreamConsumer => new StreamConsumer({
      bus: watching, stream, group, consumer: name, logger: pino({ level: 'silent' }), scheduler: time,
      handle: async (entry) => { handled.push(`${name}:${entry.fields['n']}`); },
    });
    const first = make('c1');
    first.start({ blockMs: 1_000 });
    await blocked;
    assert.equal(await settledOrGuard(first.stop().then(() => 'stopped')), 'stopped', 'stop() waited for the blocked read');
    await bus.append(stream, { n: 'later' });
    assert.deepEqual(await bus.pending(stream, group), [], 'the stopped consumer\'s read took nothing');
    assert.equal(await make('c2').drain(), 1);
    assert.deepEqual(handled, ['c2:later']);
    await bus.close();
  });

  it('resolves while the loop pauses after a failed read on a scheduler no one advances', async () => {
    const time = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: time, scheduler: time });
    const { bus: failing } = watched(bus, { failReads: true });
    let logged!: () => void;
    const failedRead = new Promise<void>((resolve) => { logged = resolve; });
    // The loop logs the failure and then, in the same turn, starts its pause.
    const logger = pino({ level: 'error' }, { write: (line: string) => { if (line.includes('stream consumer read failed')) logged(); } });
    const consumer = new StreamConsumer({ bus: failing, stream, group, consumer: 'c1', logger, scheduler: time, handle: async () => undefined });
    consumer.start({ blockMs: 1_000 });
    await failedRead;
    assert.equal(time.pendingTimers, 1, 'the loop is pausing');
    assert.equal(await settledOrGuard(consumer.stop().then(() => 'stopped')), 'stopped', 'stop() waited for the pause');
    assert.equal(time.pendingTimers, 0, 'the pause was cut, not left to fire');
    await bus.close();
  });
});
