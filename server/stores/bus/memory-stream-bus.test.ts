import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../../../core/errors/index.js';
import { VirtualTime } from '../../../core/time/virtual-time.js';
import { runBusContract } from './bus-contract.js';
import { deadLetterStream } from './bus-port.js';
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
  it('a trimmed stream holds, finds and ranges over exactly its last maxLen entries, whatever was trimmed, removed or read before', async () => {
    // The stream is an array with a moving head (trims move it, compaction copies the rest): a
    // model (the list of ids kept) must agree with length, range, remove, claim and dead-letter.
    type Op = { kind: 'append'; batch: number; maxLen: number } | { kind: 'remove'; pick: number } | { kind: 'range'; pick: number; count: number } | { kind: 'read'; count: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), batch: fc.integer({ min: 1, max: 9 }), maxLen: fc.integer({ min: 1, max: 12 }) }),
      fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('range' as const), pick: fc.nat(), count: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant('read' as const), count: fc.integer({ min: 1, max: 5 }) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
      const { bus, time } = memoryBus();
      await bus.ensureGroup('s', 'g', '0');
      let kept: string[] = [];
      const everAppended: string[] = [];
      for (const step of ops) {
        time.advance(1);
        if (step.kind === 'append') {
          const ids = await bus.appendBatch('s', Array.from({ length: step.batch }, (_, i) => ({ n: String(everAppended.length + i) })), { maxLen: step.maxLen });
          everAppended.push(...ids);
          kept = [...kept, ...ids].slice(-step.maxLen);
        } else if (step.kind === 'remove') {
          const id = everAppended[step.pick % Math.max(1, everAppended.length)];
          if (id === undefined) continue;
          assert.equal(await bus.remove('s', [id]), kept.includes(id) ? 1 : 0);
          kept = kept.filter((k) => k !== id);
        } else if (step.kind === 'range') {
          const after = everAppended[step.pick % Math.max(1, everAppended.length)];
          const expected = (after === undefined ? kept : kept.filter((id) => everAppended.indexOf(id) > everAppended.indexOf(after))).slice(0, step.count);
          assert.deepEqual((await bus.range('s', { count: step.count, ...(after === undefined ? {} : { afterId: after }) })).map((e) => e.id), expected);
        } else {
          await bus.readGroup('s', 'g', 'c1', { count: step.count });
        }
        assert.equal(await bus.length('s'), kept.length);
      }
      // Every pending entry still held is claimed with its fields; a trimmed or removed one is dropped from pending.
      const claimed = await bus.claim('s', 'g', 'c2', { minIdleMs: 0, count: 1000 });
      for (const entry of claimed) {
        assert.ok(kept.includes(entry.id));
        assert.equal(entry.fields.n, String(everAppended.indexOf(entry.id)));
      }
      for (const { id } of await bus.pending('s', 'g', { count: 1000 })) assert.ok(kept.includes(id), `pending ${id} is held`);
      const victim = claimed[0];
      if (victim !== undefined) {
        assert.notEqual(await bus.deadLetter('s', 'g', victim.id, 'test'), null);
        const [dead] = await bus.range(deadLetterStream('s'), { count: 1 });
        assert.equal(dead?.fields.n, victim.fields.n);
      }
    }), { numRuns: 300 });
  });
});
