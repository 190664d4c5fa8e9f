import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { AppendBatcher } from './append-batcher.js';

/** Counts the bus calls the batcher makes, and fails appendBatch while `failing` holds. */
function countingBus(inner: StreamBus, state: { single: number; batches: number[]; failing: boolean }): StreamBus {
  return new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'append') return (...args: Parameters<StreamBus['append']>) => { state.single += 1; return target.append(...args); };
      if (name === 'appendBatch') {
        return (...args: Parameters<StreamBus['appendBatch']>) => {
          state.batches.push(args[1].length);
          if (state.failing) return Promise.reject(new SdcError('STORE_UNAVAILABLE', 'bus down (test)'));
          return target.appendBatch(...args);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function setup(entriesMax: number, waitingMax = 1_000) {
  const memory = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
  const state = { single: 0, batches: [] as number[], failing: false };
  const batcher = new AppendBatcher({ bus: countingBus(memory, state), stream: 't', maxLen: 1_000, entriesMax, waitingMax });
  return { memory, state, batcher };
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

  it('rejects every caller of a failed batch, and the next batch is written again', async () => {
    const { memory, state, batcher } = setup(8);
    state.failing = true;
    const outcomes = await Promise.allSettled([batcher.append({ n: 'a' }), batcher.append({ n: 'b' })]);
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
    assert.ok(outcomes.every((o) => o.status === 'rejected' && SdcError.is(o.reason) && o.reason.code === 'STORE_UNAVAILABLE'));
    state.failing = false;
    await batcher.append({ n: 'c' });
    assert.equal(await memory.length('t'), 1);
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
});
