// The late-timer rule (late-timer.ts) and the stalling scheduler its users are tested with. The
// rule at work is tested at both ends: server/gateway/late-timer.test.ts (the gateway's session
// timer) and agent/agent-core.test.ts ("silence check after a stall").
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lateTimerLimitsFor, stallDeferralMs } from './late-timer.js';
import { StallingScheduler } from './stalling-scheduler.js';
import { VirtualTime } from './virtual-time.js';

describe('stallDeferralMs', () => {
  const limits = lateTimerLimitsFor(30_000);

  it('tolerates a busy loop, defers a stall by its lateness up to an interval, and only once', () => {
    assert.deepEqual(limits, { lateToleranceMs: 1_000, recheckMsMax: 30_000 });
    assert.equal(stallDeferralMs(10_000, 11_000, false, limits), undefined, 'lateness within the tolerance');
    assert.equal(stallDeferralMs(10_000, 11_001, false, limits), 1_001);
    assert.equal(stallDeferralMs(10_000, 90_000, false, limits), 30_000, 'capped at an interval');
    assert.equal(stallDeferralMs(10_000, 90_000, true, limits), undefined, 'the judgement after a deferral is final');
    assert.equal(stallDeferralMs(10_000, 9_000, false, limits), undefined, 'early (a day step of a far deadline)');
  });

  it('tolerates a tenth of a short interval', () => {
    assert.deepEqual(lateTimerLimitsFor(400), { lateToleranceMs: 40, recheckMsMax: 400 });
    assert.deepEqual(lateTimerLimitsFor(5), { lateToleranceMs: 1, recheckMsMax: 5 });
  });
});

describe('StallingScheduler', () => {
  it('fires on time while running, and holds what falls due in a stall until it ends, in order, late', () => {
    const time = new VirtualTime(0);
    const scheduler = new StallingScheduler(time);
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, time.nowMs()]);
    scheduler.schedule(100, at('on time'));
    time.advance(100);
    scheduler.stall();
    assert.equal(scheduler.stalled, true);
    scheduler.schedule(50, at('first'));
    scheduler.schedule(80, at('second'));
    const cancelledHeld = scheduler.schedule(90, at('cancelled while held'));
    time.advance(300);
    scheduler.cancel(cancelledHeld);
    assert.deepEqual(fired, [['on time', 100]], 'nothing runs in a stall');
    scheduler.resume();
    assert.equal(scheduler.stalled, false);
    assert.deepEqual(fired, [['on time', 100], ['first', 400], ['second', 400]]);
  });

  it('lets a held timer cancel one held after it', () => {
    const time = new VirtualTime(0);
    const scheduler = new StallingScheduler(time);
    const fired: string[] = [];
    scheduler.stall();
    let second: ReturnType<StallingScheduler['schedule']> | undefined;
    scheduler.schedule(10, () => { fired.push('first'); scheduler.cancel(second!); });
    second = scheduler.schedule(20, () => fired.push('second'));
    time.advance(50);
    scheduler.resume();
    assert.deepEqual(fired, ['first']);
  });
});
