import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { SdcError } from '../errors/index.js';
import { deadLetterStream, type BusEntry } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { createVirtualTime } from '../stores/virtual-time.js';
import { StreamConsumer } from './stream-consumer.js';

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
        const time = createVirtualTime();
        const bus = new MemoryStreamBus({ clock: time.clock, scheduler: time.scheduler });
        for (const [index, step] of plan.entries()) {
          await bus.append(stream, step.malformed ? { junk: String(index), turns: String(step.turns) } : { device: `d${step.device}`, index: String(index), turns: String(step.turns) });
        }
        const handled = new Map<string, number[]>();
        const inFlight = new Map<string, number>();
        let running = 0;
        let runningMax = 0;
        const consumer = new StreamConsumer({
          bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time.scheduler,
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

  it('runs as a pipeline: reads on while an entry is handled, never more than entriesInFlightMax unfinished, one device in order', async () => {
    const time = createVirtualTime();
    const bus = new MemoryStreamBus({ clock: time.clock, scheduler: time.scheduler });
    const release = new Map<string, () => void>();
    const started: string[] = [];
    const finished: string[] = [];
    const consumer = new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time.scheduler,
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

  it('refuses a partition limit below one', () => {
    const time = createVirtualTime();
    const bus = new MemoryStreamBus({ clock: time.clock, scheduler: time.scheduler });
    assert.throws(() => new StreamConsumer({
      bus, stream, group, consumer: 'c1', logger: pino({ level: 'silent' }), scheduler: time.scheduler, handle: async () => undefined, partitionsInFlightMax: 0,
    }), (e) => SdcError.is(e, 'STORE_INVALID_ARGUMENT'));
  });
});
