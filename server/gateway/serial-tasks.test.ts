import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queryObjects } from 'node:v8';
import { SerialTasks } from './serial-tasks.js';

/** Microtask jobs until `check` holds (at most `max`), counted. */
async function jobsUntil(check: () => boolean, max = 20): Promise<number> {
  for (let jobs = 0; jobs <= max; jobs++) {
    if (check()) return jobs;
    await Promise.resolve();
  }
  return Number.POSITIVE_INFINITY;
}

describe('SerialTasks (a session\'s frames in order, bounded)', () => {
  it('runs tasks one after another, in order, each after the previous one ended', async () => {
    const errors: unknown[] = [];
    const tasks = new SerialTasks(10, (e) => errors.push(e));
    const log: string[] = [];
    const step = (name: string, hops: number) => async () => {
      log.push(`${name} start`);
      for (let i = 0; i < hops; i++) await Promise.resolve();
      log.push(`${name} end`);
    };
    assert.equal(tasks.push(step('a', 3)), true);
    assert.equal(tasks.push(step('b', 0)), true);
    assert.equal(tasks.push(step('c', 1)), true);
    await tasks.drained();
    assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    assert.deepEqual(errors, []);
    assert.equal(tasks.queued, 0);
  });

  it('refuses a task beyond the bound, and takes one again once a slot is free', async () => {
    const tasks = new SerialTasks(2, () => undefined);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    assert.equal(tasks.push(() => gate), true);
    assert.equal(tasks.push(async () => undefined), true);
    assert.equal(tasks.push(async () => undefined), false, 'a third while two wait');
    release();
    await tasks.drained();
    assert.equal(tasks.push(async () => undefined), true);
    await tasks.drained();
  });

  it('hands a failure to onError and goes on with the next task', async () => {
    const errors: unknown[] = [];
    const tasks = new SerialTasks(10, (e) => errors.push(e));
    const ran: string[] = [];
    tasks.push(async () => { throw new Error('boom'); });
    tasks.push(async () => { ran.push('after'); });
    await tasks.drained();
    assert.deepEqual(errors.map((e) => (e as Error).message), ['boom']);
    assert.deepEqual(ran, ['after']);
    assert.equal(tasks.queued, 0);
  });

  it('frees a finished task\'s slot in the job after the task settles (one reaction, not a catch and then a finally)', async () => {
    // The tail's reaction runs the task (1), adopting its promise takes two jobs (2, 3), and the
    // next job frees the slot (4). With .catch(onError).finally(...) it was freed a job later (5).
    const tasks = new SerialTasks(1, () => undefined);
    tasks.push(async () => undefined);
    assert.equal(await jobsUntil(() => tasks.push(async () => undefined)), 4);
    await tasks.drained();
    const failing = new SerialTasks(1, () => undefined);
    failing.push(async () => { throw new Error('x'); });
    assert.equal(await jobsUntil(() => failing.push(async () => undefined)), 4, 'after a failure too');
    await failing.drained();
  });

  it('keeps, once idle, no function and no promise of its own (a gateway holds one queue per session)', async () => {
    const count = (constructor: new (...args: never[]) => unknown) => queryObjects(constructor as never, { format: 'count' }) as number;
    const queuesCount = 2_000;
    const failures: Array<[number | undefined, unknown]> = [];
    // One error handler for every queue, told whose task failed.
    const onError = (error: unknown, owner: number | undefined) => failures.push([owner, error]);
    const functionsBefore = count(Function);
    const promisesBefore = count(Promise);
    const queues = Array.from({ length: queuesCount }, (_, i) => new SerialTasks(4, onError, i));
    for (const queue of queues) queue.push(async () => undefined);
    queues[3]!.push(async () => { throw new Error('boom'); });
    await Promise.all(queues.map((queue) => queue.drained()));
    const functionsPerQueue = (count(Function) - functionsBefore) / queuesCount;
    const promisesPerQueue = (count(Promise) - promisesBefore) / queuesCount;
    // Before: a `done` and a `failed` closure per queue, and its last promise.
    assert.ok(functionsPerQueue < 0.5, `${functionsPerQueue} functions per idle queue`);
    assert.ok(promisesPerQueue < 0.5, `${promisesPerQueue} promises per idle queue`);
    assert.deepEqual(failures.map(([owner, error]) => [owner, (error as Error).message]), [[3, 'boom']]);
    assert.ok(queues.every((queue) => queue.queued === 0));
  });
});
