import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { RampingVusRun, rampingVuSteps } from './ramping-vus.js';

test('ramping-vus steps: linear between stage targets, one VU at a time, a 0 s stage jumps, 0 at the end', () => {
  assert.deepEqual(rampingVuSteps([{ duration_s: 4, target_vus: 4 }, { duration_s: 10, target_vus: 4 }, { duration_s: 2, target_vus: 0 }]), [
    { offsetMs: 0, vus: 0 }, { offsetMs: 1000, vus: 1 }, { offsetMs: 2000, vus: 2 }, { offsetMs: 3000, vus: 3 }, { offsetMs: 4000, vus: 4 },
    { offsetMs: 14_500, vus: 3 }, { offsetMs: 15_000, vus: 2 }, { offsetMs: 15_500, vus: 1 }, { offsetMs: 16_000, vus: 0 },
  ]);
  // A jump, a hold that ends above 0 (the drop to 0 comes at the stages' end), a ramp from 3 down to 1.
  assert.deepEqual(rampingVuSteps([{ duration_s: 0, target_vus: 3 }, { duration_s: 2, target_vus: 1 }, { duration_s: 1, target_vus: 1 }]), [
    { offsetMs: 0, vus: 0 }, { offsetMs: 0, vus: 3 }, { offsetMs: 1000, vus: 2 }, { offsetMs: 2000, vus: 1 }, { offsetMs: 3000, vus: 0 },
  ]);
});

/** Iterations that each wait `sessionMs` of virtual time (or until interrupted), logged as `vu:start@ms` and `vu:end@ms` or `vu:interrupted@ms`. */
function harness(sessionMs: number, stages: Array<{ duration_s: number; target_vus: number }>, grace = { gracefulRampDownMs: 3_000, gracefulStopMs: 5_000 }) {
  const time = new VirtualTime(0);
  const log: string[] = [];
  const run = new RampingVusRun({
    stages, ...grace, clock: time, scheduler: time,
    iteration: (vu, signal) => new Promise<void>((resolve) => {
      log.push(`${vu}:start@${time.nowMs()}`);
      const timer = time.schedule(sessionMs, () => resolve());
      signal.addEventListener('abort', () => { time.cancel(timer); resolve(); });
    }),
    onIterationEnd: (vu, interrupted) => log.push(`${vu}:${interrupted ? 'interrupted' : 'end'}@${time.nowMs()}`),
  });
  return { time, log, run };
}

async function drive(time: VirtualTime, untilMs: number): Promise<void> {
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  await settle();
  await time.runUntil(untilMs, settle);
}

test('ramping-vus: VUs loop their iteration while planned; a VU ramped down finishes its iteration within gracefulRampDown, else it is interrupted', async () => {
  // 2 VUs at 1 s and 2 s, held to 10 s, then VU 1 ramped down at 11 s and VU 0 at 12 s; sessions of 4 s, gracefulRampDown 3 s.
  const { time, log, run } = harness(4_000, [{ duration_s: 2, target_vus: 2 }, { duration_s: 8, target_vus: 2 }, { duration_s: 2, target_vus: 0 }]);
  const done = run.run();
  await drive(time, 60_000);
  const result = await done;
  assert.deepEqual(log, [
    '0:start@1000', '1:start@2000', '0:end@5000', '0:start@5000', '1:end@6000', '1:start@6000',
    '0:end@9000', '0:start@9000', '1:end@10000', '1:start@10000',
    // VU 1 ramped down at 11 s: its session (to 14 s) ends within the 3 s grace. VU 0 ramped down at 12 s:
    // its session would end at 13 s, within the grace too. No new iteration starts after a ramp-down.
    '0:end@13000', '1:end@14000',
  ]);
  assert.deepEqual({ iterations: result.iterations, interrupted: result.interrupted, maxVus: result.maxVus, stagesEndMs: result.stagesEndMs, endedMs: result.endedMs },
    { iterations: 6, interrupted: 0, maxVus: 2, stagesEndMs: 12_000, endedMs: 14_000 });
});

test('ramping-vus: past gracefulRampDown the iteration is interrupted; at the stages end running ones get gracefulStop', async () => {
  // Sessions of 10 s. VU 1 is ramped down at 5 s (its session started at 1 s would end at 11 s): interrupted at 8 s.
  // VU 0 runs to the stages' end at 6 s (its session to 10 s): gracefulStop 5 s lets it finish at 10 s.
  const { time, log, run } = harness(10_000, [{ duration_s: 0, target_vus: 2 }, { duration_s: 4, target_vus: 2 }, { duration_s: 1, target_vus: 1 }, { duration_s: 1, target_vus: 1 }]);
  const done = run.run();
  await drive(time, 60_000);
  const result = await done;
  assert.deepEqual(log, ['0:start@0', '1:start@0', '1:interrupted@8000', '0:end@10000']);
  assert.equal(result.iterations, 1);
  assert.equal(result.interrupted, 1);

  // gracefulStop shorter than the session left: interrupted at the stages' end + gracefulStop.
  const short = harness(10_000, [{ duration_s: 0, target_vus: 1 }, { duration_s: 2, target_vus: 1 }], { gracefulRampDownMs: 3_000, gracefulStopMs: 1_000 });
  const shortDone = short.run.run();
  await drive(short.time, 60_000);
  assert.deepEqual(short.log, ['0:start@0', '0:interrupted@3000']);
  assert.equal((await shortDone).endedMs, 3_000);
});

test('ramping-vus: a VU planned again while ramping down keeps looping, and its hard stop is called off', async () => {
  // 1 VU, down to 0 at 2 s, back to 1 at 3 s (within the 3 s grace), held to 9 s; sessions of 4 s.
  const { time, log, run } = harness(4_000, [{ duration_s: 0, target_vus: 1 }, { duration_s: 2, target_vus: 1 }, { duration_s: 0, target_vus: 0 }, { duration_s: 1, target_vus: 0 }, { duration_s: 0, target_vus: 1 }, { duration_s: 6, target_vus: 1 }]);
  const done = run.run();
  await drive(time, 60_000);
  const result = await done;
  assert.deepEqual(log, ['0:start@0', '0:end@4000', '0:start@4000', '0:end@8000', '0:start@8000', '0:end@12000']);
  assert.equal(result.interrupted, 0);
});
