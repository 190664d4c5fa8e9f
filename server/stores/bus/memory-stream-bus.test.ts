import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../../../core/errors/index.js';
import { VirtualTime } from '../../../core/time/virtual-time.js';
import { runBusContract } from './bus-contract.js';
import { MemoryStreamBus, type MemoryStreamBusOptions } from './memory-stream-bus.js';

let time: VirtualTime = new VirtualTime();
runBusContract('in-memory (virtual time)', {
  create: async () => new MemoryStreamBus({ clock: time, scheduler: time }),
  reset: async () => { time = new VirtualTime(); },
  advance: async (ms) => { time.advance(ms); },
  wipe: async (bus) => (bus as MemoryStreamBus).wipe(),
});

function memoryBus(options: Partial<MemoryStreamBusOptions> = {}): { bus: MemoryStreamBus; time: VirtualTime } {
  const virtual = new VirtualTime();
  return { bus: new MemoryStreamBus({ clock: virtual, scheduler: virtual, ...options }), time: virtual };
}

function isCode(code: string): (error: unknown) => boolean {
  return (error) => SdcError.is(error) && error.code === code;
}

describe('in-memory stream bus specifics', () => {
  it('trims exactly to maxLen', async () => {
    const { bus } = memoryBus();
    for (let i = 0; i < 50; i++) await bus.append('s', { n: String(i) }, { maxLen: 7 });
    assert.equal(await bus.length('s'), 7);
  });

  it('refuses an append to a full stream without maxLen instead of dropping entries', async () => {
    const { bus } = memoryBus({ entriesPerStreamMax: 3 });
    for (let i = 0; i < 3; i++) await bus.append('s', { n: String(i) });
    await assert.rejects(bus.append('s', { n: 'x' }), isCode('STORE_LIMIT'));
    await bus.append('s', { n: 'y' }, { maxLen: 3 });
    assert.equal(await bus.length('s'), 3);
  });

  it('caps streams, groups, consumers, blocked readers and unacked entries', async () => {
    const { bus } = memoryBus({ streamsMax: 1, groupsPerStreamMax: 1, consumersPerGroupMax: 1, waitersMax: 1, pendingPerGroupMax: 1 });
    await bus.ensureGroup('s', 'g', '0');
    await assert.rejects(bus.append('other', { n: '1' }), isCode('STORE_LIMIT'));
    await assert.rejects(bus.ensureGroup('s', 'g2', '0'), isCode('STORE_LIMIT'));
    void bus.readGroup('s', 'g', 'c1', { count: 1, blockMs: 1000 });
    await assert.rejects(bus.readGroup('s', 'g', 'c1', { count: 1, blockMs: 1000 }), isCode('STORE_LIMIT'));
    await assert.rejects(bus.readGroup('s', 'g', 'c2', { count: 1 }), isCode('STORE_LIMIT'));
    await bus.append('s', { n: '1' }); // goes to the blocked c1
    await bus.append('s', { n: '2' });
    await assert.rejects(bus.readGroup('s', 'g', 'c1', { count: 1 }), isCode('STORE_LIMIT'), 'one unacked entry is the cap');
    await bus.close();
  });

  it('keeps ids increasing when the clock stands still or goes back', async () => {
    let nowMs = 1000;
    const virtual = new VirtualTime();
    const bus = new MemoryStreamBus({ clock: { nowMs: () => nowMs }, scheduler: virtual });
    const a = await bus.append('s', { n: 'a' });
    const b = await bus.append('s', { n: 'b' });
    nowMs = 500;
    const c = await bus.append('s', { n: 'c' });
    assert.deepEqual([a, b, c], ['1000-0', '1000-1', '1000-2']);
  });

  it('drops pending entries whose data was trimmed when claiming', async () => {
    const { bus, time: virtual } = memoryBus();
    await bus.ensureGroup('s', 'g', '0');
    await bus.append('s', { n: 'old' });
    await bus.readGroup('s', 'g', 'c1', { count: 1 });
    await bus.append('s', { n: 'new' }, { maxLen: 1 });
    virtual.advance(100);
    assert.deepEqual(await bus.claim('s', 'g', 'c2', { minIdleMs: 50, count: 5 }), []);
    assert.deepEqual(await bus.pending('s', 'g'), []);
  });

  it('rejects blocked readers on close and cancels their timers', async () => {
    const { bus, time: virtual } = memoryBus();
    await bus.ensureGroup('s', 'g', '$');
    const blocked = bus.readGroup('s', 'g', 'c', { count: 1, blockMs: 1000 });
    assert.equal(virtual.pendingTimers, 1);
    await bus.close();
    await assert.rejects(blocked, isCode('STORE_CLOSED'));
    assert.equal(virtual.pendingTimers, 0);
    await assert.rejects(bus.append('s', { n: '1' }), isCode('STORE_CLOSED'));
  });

  it('delivers every entry to exactly one consumer of a group, and pending is delivered minus acked', async () => {
    type Op = { kind: 'append' } | { kind: 'read'; consumer: number; count: number } | { kind: 'ack'; pick: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ kind: 'append' as const }),
      fc.record({ kind: fc.constant('read' as const), consumer: fc.integer({ min: 0, max: 2 }), count: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }),
    );
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
      const { bus } = memoryBus();
      await bus.ensureGroup('s', 'g', '0');
      const appended: string[] = [];
      const delivered: string[] = [];
      const acked = new Set<string>();
      for (const step of ops) {
        if (step.kind === 'append') appended.push(await bus.append('s', { n: String(appended.length) }));
        else if (step.kind === 'read') delivered.push(...(await bus.readGroup('s', 'g', `c${step.consumer}`, { count: step.count })).map((e) => e.id));
        else if (delivered.length > 0) {
          const id = delivered[step.pick % delivered.length] as string;
          assert.equal(await bus.ack('s', 'g', [id]), acked.has(id) ? 0 : 1);
          acked.add(id);
        }
      }
      assert.deepEqual(delivered, appended.slice(0, delivered.length), 'in order, none twice, none skipped');
      const pending = (await bus.pending('s', 'g', { count: 1000 })).map((p) => p.id);
      assert.deepEqual(pending, delivered.filter((id) => !acked.has(id)));
    }), { numRuns: 300 });
  });
});
