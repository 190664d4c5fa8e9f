import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drainMicrotasks } from './drain.js';

describe('drainMicrotasks', () => {
  it('settles after every continuation queued before it, and those they queue in turn', async () => {
    const order: string[] = [];
    const chain = async (name: string, depth: number) => {
      for (let i = 0; i < depth; i += 1) await Promise.resolve();
      order.push(name);
    };
    void chain('deep', 1_000);
    void Promise.resolve().then(() => Promise.resolve().then(() => order.push('nested')));
    await drainMicrotasks();
    order.push('drained');
    assert.deepEqual(order, ['nested', 'deep', 'drained']);
  });
});
