import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventQueue } from './event-queue.js';

function drain(queue: EventQueue, untilMs = Infinity): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  while (queue.popUntil(untilMs)) out.push([queue.dueMs, queue.a]);
  return out;
}

describe('model event queue', () => {
  it('pops by due time, and events due together in the order they were pushed', () => {
    const queue = new EventQueue({ capacity: 16 });
    const pushes: Array<[number, number]> = [[30, 0], [10, 1], [20, 2], [10, 3], [10, 4], [0, 5], [20, 6]];
    for (const [dueMs, a] of pushes) queue.push(dueMs, 7, a, 0, 0, 0);
    assert.deepEqual(drain(queue), [[0, 5], [10, 1], [10, 3], [10, 4], [20, 2], [20, 6], [30, 0]]);
  });

  it('carries the kind and the four arguments of each event', () => {
    const queue = new EventQueue();
    queue.push(5, 42, -1, 2_000_000_000, 3, 4);
    assert.equal(queue.popUntil(5), true);
    assert.deepEqual([queue.dueMs, queue.kind, queue.a, queue.b, queue.c, queue.d], [5, 42, -1, 2_000_000_000, 3, 4]);
  });

  it('leaves events due after the bound in the queue', () => {
    const queue = new EventQueue();
    for (const dueMs of [1, 2, 3, 4]) queue.push(dueMs, 1, dueMs, 0, 0, 0);
    assert.deepEqual(drain(queue, 2), [[1, 1], [2, 2]]);
    assert.equal(queue.size, 2);
    assert.equal(queue.peekDueMs(), 3);
  });

  it('grows past its initial capacity without losing the order, with pops interleaved', () => {
    const queue = new EventQueue({ capacity: 16 });
    const expected: Array<[number, number]> = [];
    let x = 12345;
    for (let i = 0; i < 5_000; i += 1) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const dueMs = x % 1_000;
      queue.push(dueMs, 1, i, 0, 0, 0);
      expected.push([dueMs, i]);
      if (i % 7 === 0) queue.push(2_000, 1, -i, 0, 0, 0);
    }
    expected.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    assert.deepEqual(drain(queue, 1_999), expected);
    assert.equal(queue.size, Math.ceil(5_000 / 7));
  });

  it('refuses to hold more than its bound', () => {
    const queue = new EventQueue({ capacity: 16, pendingMax: 32 });
    for (let i = 0; i < 32; i += 1) queue.push(i, 1, i, 0, 0, 0);
    assert.throws(() => queue.push(99, 1, 0, 0, 0, 0), /more than 32 pending model events/);
  });
});
