import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import { armDeadline, deadlineStepMsMax } from './deadline-timer.js';

const dayMs = 24 * 3600 * 1000;

describe('armDeadline', () => {
  it('fires at a deadline months away, never earlier, each wait at most one step (Node fires longer timers at once)', () => {
    const time = new VirtualTime();
    const delays: number[] = [];
    const scheduler = { schedule: (delayMs: number, run: () => void) => { delays.push(delayMs); return time.schedule(delayMs, run); }, cancel: (handle: TimerHandle) => time.cancel(handle) };
    let fired = 0;
    const deadlineMs = time.nowMs() + 90 * dayMs + 123;
    armDeadline({ clock: time, scheduler, deadlineMs, run: () => { fired += 1; } });
    time.advance(90 * dayMs + 122);
    assert.equal(fired, 0, 'one millisecond before the deadline');
    time.advance(1);
    assert.equal(fired, 1);
    time.advance(10 * dayMs);
    assert.equal(fired, 1, 'once');
    assert.ok(delays.every((delayMs) => delayMs <= deadlineStepMsMax && delayMs < 2 ** 31 - 1), `delays ${delays.join()}`);
    assert.equal(time.pendingTimers, 0);
  });

  it('runs at once for a deadline already passed, and never after cancel', () => {
    const time = new VirtualTime();
    let fired = 0;
    armDeadline({ clock: time, scheduler: time, deadlineMs: time.nowMs() - 1, run: () => { fired += 1; } });
    assert.equal(fired, 1);
    const timer = armDeadline({ clock: time, scheduler: time, deadlineMs: time.nowMs() + 3 * dayMs, run: () => { fired += 1; } });
    time.advance(2 * dayMs);
    timer.cancel();
    time.advance(2 * dayMs);
    assert.equal(fired, 1);
    assert.equal(time.pendingTimers, 0);
  });
});
