import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCrashRecovered, checkDownloadsResumed, checkFirstWaveOnly, checkPausedInFirstWave, checkRolloutCompleted, checkTargetsRoute, type DeviceEnd, type RolloutFacts } from './ota-checkers.js';
import type { DeviceOtaRecord } from './ota-observer.js';

/** Each OTA checker passes a good run and catches a planted violation (sim/checkers.test.ts style). */
const record = (deviceId: string, over: Partial<DeviceOtaRecord> = {}): DeviceOtaRecord => ({
  deviceId, executionId: `ex-${deviceId}`, wave: 0, brick: null, length: 100, attempts: [{ startOffset: 0, status: 200, atMs: 0, cutAtOffset: null }],
  downloaded: { sha256: 'ab', matched: true }, committed: true, healthy: true, ended: 'done', events: [], targetsRoute: false, targetFetches: 0, kernelCalls: {}, crash: null, ...over,
});

const paused: RolloutFacts = {
  status: 'paused', pauseReason: 'error_threshold', waveIndex: 0, waves: [['d1', 'd2'], ['d3']],
  executions: [{ deviceId: 'd1', wave: 0, state: 'succeeded' }, { deviceId: 'd2', wave: 0, state: 'rolled_back' }],
  history: [{ status: 'paused', wave: 0 }],
};

describe('OTA checkers', () => {
  it('first wave only: passes, and catches a later-wave execution, an install outside the wave, and a run where nothing bricked', () => {
    const records = [record('d1'), record('d2', { brick: 'health_check_fails', healthy: false })];
    assert.deepEqual(checkFirstWaveOnly(paused, records), []);
    const leaked = { ...paused, executions: [...paused.executions, { deviceId: 'd3', wave: 1, state: 'notified' }] };
    assert.match(checkFirstWaveOnly(leaked, records)[0]!.message, /d3 of wave 1/);
    assert.match(checkFirstWaveOnly(paused, [...records, record('d3')])[0]!.message, /d3, outside the first wave, installed/);
    assert.match(checkFirstWaveOnly(paused, [record('d1'), record('d2')])[0]!.message, /tested nothing/);
  });

  it('paused in the first wave: passes, and catches a completed rollout, a pause in wave 1 and a success-threshold pause', () => {
    assert.deepEqual(checkPausedInFirstWave(paused), []);
    assert.equal(checkPausedInFirstWave({ ...paused, status: 'completed', pauseReason: null, history: [{ status: 'completed', wave: 1 }] }).length, 2);
    assert.equal(checkPausedInFirstWave({ ...paused, waveIndex: 1, history: [{ status: 'paused', wave: 1 }] }).length, 2);
    assert.equal(checkPausedInFirstWave({ ...paused, pauseReason: 'success_threshold_not_met' }).length, 1);
    assert.match(checkPausedInFirstWave(undefined)[0]!.message, /never started/);
  });

  it('downloads resumed: passes a cut resumed with 206 at its offset, and catches a restart, a wrong offset, a lost download and a digest mismatch', () => {
    const cut = (later: DeviceOtaRecord['attempts']) => record('d1', {
      attempts: [{ startOffset: 0, status: 200, atMs: 0, cutAtOffset: 50 }, ...later],
    });
    const good = cut([{ startOffset: 50, status: 'unreachable', atMs: 1, cutAtOffset: null }, { startOffset: 50, status: 206, atMs: 2, cutAtOffset: null }]);
    assert.deepEqual(checkDownloadsResumed([good], true), []);
    assert.match(checkDownloadsResumed([cut([{ startOffset: 50, status: 200, atMs: 2, cutAtOffset: null }])], true)[0]!.message, /status 200, not 206/);
    assert.match(checkDownloadsResumed([cut([{ startOffset: 0, status: 200, atMs: 2, cutAtOffset: null }])], true)[0]!.message, /asked again from 0/);
    assert.match(checkDownloadsResumed([cut([])], true)[0]!.message, /never got the rest/);
    assert.match(checkDownloadsResumed([record('d1', { downloaded: { sha256: 'cd', matched: false } })], false)[0]!.message, /not the signed digest/);
    assert.match(checkDownloadsResumed([record('d1')], true)[0]!.message, /no download was cut/);
  });

  it('rollout completed: passes when every device succeeded, and catches a paused rollout and a failed device', () => {
    const done: RolloutFacts = { ...paused, status: 'completed', pauseReason: null, executions: paused.executions.map((e) => ({ ...e, state: 'succeeded' })) };
    assert.deepEqual(checkRolloutCompleted(done, 2), []);
    assert.ok(checkRolloutCompleted(paused, 2).some((v) => /ended paused/.test(v.message)));
    assert.ok(checkRolloutCompleted(paused, 2).some((v) => /d2 ended rolled_back/.test(v.message)));
    assert.ok(checkRolloutCompleted(done, 3).some((v) => /2 of 3 devices succeeded/.test(v.message)));
  });

  it('targets route: passes a URL-less device that used the route, and catches a presigned GET, no route request, a wrong digest, and a run where none took it', () => {
    const viaTargets = record('d1', { targetsRoute: true, attempts: [], targetFetches: 1 });
    assert.deepEqual(checkTargetsRoute([viaTargets, record('d2')], true), []);
    assert.match(checkTargetsRoute([{ ...viaTargets, attempts: record('d1').attempts }], true)[0]!.message, /made 1 presigned GETs/);
    assert.match(checkTargetsRoute([{ ...viaTargets, targetFetches: 0 }], true)[0]!.message, /never asked the targets route/);
    assert.match(checkTargetsRoute([{ ...viaTargets, downloaded: { sha256: 'cd', matched: false } }], true)[0]!.message, /not the signed digest/);
    assert.match(checkTargetsRoute([record('d2')], true)[0]!.message, /tested nothing/);
    assert.deepEqual(checkTargetsRoute([record('d2')], false), []);
  });

  it('crash recovered: passes recovered crashes and agreeing kernels, and catches a half-applied update, a repeated kernel call, an unrecovered crash, and a run with no crash', () => {
    const options = { crashesExpected: true, installedVersion: '1.0.0' };
    const kernel = (currentVersion: string, over: Partial<DeviceEnd['kernel']> = {}) => ({ currentVersion, stagedVersion: '', watchdogArmed: false, ...over });
    const end = (deviceId: string, state: string, over: Partial<DeviceEnd> = {}): DeviceEnd => ({ deviceId, executionId: `ex-${deviceId}`, state, intent: null, targetVersion: '2.0.0', kernel: kernel(state === 'succeeded' ? '2.0.0' : '1.0.0'), ...over });
    const crashed = record('d1', { crash: { intent: 'commit', beforeCall: false, recovered: true }, kernelCalls: { stageUpdate: 1, commitUpdate: 1 } });
    assert.deepEqual(checkCrashRecovered([crashed, record('d2')], [end('d1', 'succeeded'), end('d2', 'rolled_back')], options), []);
    assert.match(checkCrashRecovered([crashed], [end('d1', 'succeeded', { kernel: kernel('1.0.0') })], options)[0]!.message, /not the installed 2.0.0/);
    assert.match(checkCrashRecovered([crashed], [end('d1', 'succeeded', { kernel: kernel('2.0.0', { watchdogArmed: true }) })], options)[0]!.message, /watchdog armed/);
    assert.match(checkCrashRecovered([crashed], [end('d1', 'rolled_back', { kernel: kernel('2.0.0') })], options)[0]!.message, /not back at 1.0.0/);
    assert.match(checkCrashRecovered([crashed], [end('d1', 'staged')], options)[0]!.message, /never finished/);
    assert.match(checkCrashRecovered([crashed], [end('d1', 'succeeded', { intent: 'commit' })], options)[0]!.message, /never settled/);
    assert.match(checkCrashRecovered([{ ...crashed, kernelCalls: { commitUpdate: 2 } }], [], options)[0]!.message, /commitUpdate 2 times/);
    assert.match(checkCrashRecovered([{ ...crashed, crash: { intent: 'stage', beforeCall: true, recovered: false } }], [], options)[0]!.message, /never recovered/);
    assert.match(checkCrashRecovered([record('d2')], [], options)[0]!.message, /tested nothing/);
    assert.deepEqual(checkCrashRecovered([record('d2', { ended: 'silent' })], [end('d2', 'rebooting')], { ...options, crashesExpected: false }), [], 'a silent brick is left out');
  });
});
