import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deadlineStepMsMax, timerDelayMs } from './deadline-timer.js';

const dayMs = 24 * 3600 * 1000;

describe('timerDelayMs', () => {
  it('waits a far deadline in steps of at most a day (Node fires a timer over 2^31-1 ms at once)', () => {
    const nowMs = 1_700_000_000_000;
    assert.equal(timerDelayMs(nowMs + 90 * dayMs, nowMs), deadlineStepMsMax);
    assert.ok(deadlineStepMsMax < 2 ** 31 - 1);
  });

  it('waits exactly until a near deadline, and not at all for one already passed', () => {
    const nowMs = 1_700_000_000_000;
    assert.equal(timerDelayMs(nowMs + 1_234, nowMs), 1_234);
    assert.equal(timerDelayMs(nowMs - 1, nowMs), 0);
    assert.equal(timerDelayMs(nowMs + 10, nowMs, 5), 5);
  });
});
