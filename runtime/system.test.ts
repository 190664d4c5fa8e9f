import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemScheduler } from './system.js';

test('a system timer handle has an id of its own without asking the Timeout for one', () => {
  // Asking a Timeout for its id (Symbol.toPrimitive) makes Node keep it in a table while it is pending:
  // an entry per gateway session (docs/benchmarks.md, 2026-12-04 "memory per session").
  const probe = setTimeout(() => undefined, 1);
  const prototype = Object.getPrototypeOf(probe) as { [Symbol.toPrimitive]: () => number };
  clearTimeout(probe);
  const original = prototype[Symbol.toPrimitive];
  let asked = 0;
  prototype[Symbol.toPrimitive] = function primitive(this: unknown) {
    asked += 1;
    return original.call(this);
  };
  try {
    const handles = [systemScheduler.schedule(60_000, () => undefined), systemScheduler.schedule(60_000, () => undefined)];
    for (const handle of handles) systemScheduler.cancel(handle);
    assert.equal(asked, 0);
    assert.notEqual(handles[0]!.id, handles[1]!.id);
    assert.ok(handles.every((handle) => Number.isSafeInteger(handle.id) && handle.id > 0));
  } finally {
    prototype[Symbol.toPrimitive] = original;
  }
});

test('a system timer fires once, and a cancelled one never', async () => {
  const fired: string[] = [];
  const cancelled = systemScheduler.schedule(0, () => fired.push('cancelled'));
  systemScheduler.cancel(cancelled);
  await new Promise<void>((resolve) => { systemScheduler.schedule(0, () => { fired.push('ran'); resolve(); }); });
  assert.deepEqual(fired, ['ran']);
});

test('a pending system timer is moved with its own delay (the same handle, fired once, after a timer set after it), not with another', async () => {
  const fired: string[] = [];
  let done!: () => void;
  const both = new Promise<void>((resolve) => { done = resolve; });
  // System timers are unref'd: this one keeps the test's process waiting for them.
  const keepAlive = setInterval(() => undefined, 1_000);
  const moved = systemScheduler.schedule(30, () => {
    fired.push('moved');
    done();
  });
  // Set after `moved`, with the same delay: without the move it would fire second.
  systemScheduler.schedule(30, () => fired.push('later'));
  assert.equal(systemScheduler.reschedule!(moved, 31), false, 'another delay: the caller cancels and schedules');
  assert.equal(systemScheduler.reschedule!(moved, 30), true);
  await both;
  await new Promise((resolve) => setTimeout(resolve, 40));
  clearInterval(keepAlive);
  assert.deepEqual(fired, ['later', 'moved']);
});
