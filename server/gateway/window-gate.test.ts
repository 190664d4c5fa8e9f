import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { WindowGate } from './window-gate.js';

function gate(windowMs: number, waitingMax = 10) {
  const time = new VirtualTime(1_000);
  const timers = { scheduled: 0, cancelled: 0 };
  const g = new WindowGate({
    windowMs, waitingMax,
    schedule: (delayMs, run) => { timers.scheduled += 1; return time.schedule(delayMs, run); },
    cancel: (timer) => { timers.cancelled += 1; time.cancel(timer); },
  });
  return { time, timers, g };
}

describe('WindowGate (re-checks that go out with the presence refreshes)', () => {
  it('runs what waits when the window closes, synchronously and in order, its own timer cancelled', () => {
    const { time, timers, g } = gate(100);
    const ran: string[] = [];
    assert.equal(g.defer(() => ran.push('a')), true);
    time.advance(30);
    assert.equal(g.defer(() => ran.push('b')), true);
    assert.deepEqual(ran, []);
    g.release();
    assert.deepEqual(ran, ['a', 'b'], 'run inside release(), before it returns');
    assert.deepEqual(timers, { scheduled: 1, cancelled: 1 });
    time.advance(1_000);
    assert.deepEqual(ran, ['a', 'b'], 'nothing runs twice');
  });

  it('without a window closing, runs them two windows after the first', () => {
    const { time, g } = gate(100);
    const ran: number[] = [];
    g.defer(() => ran.push(time.nowMs()));
    time.advance(50);
    g.defer(() => ran.push(time.nowMs()));
    time.advance(149);
    assert.deepEqual(ran, []);
    time.advance(1);
    assert.deepEqual(ran, [1_200, 1_200]);
  });

  it('with no window (0, the simulator) or when full, refuses: the caller runs at once', () => {
    const { timers, g } = gate(0);
    assert.equal(g.defer(() => undefined), false);
    assert.deepEqual(timers, { scheduled: 0, cancelled: 0 });
    const full = gate(100, 1).g;
    assert.equal(full.defer(() => undefined), true);
    assert.equal(full.defer(() => undefined), false);
  });
});
