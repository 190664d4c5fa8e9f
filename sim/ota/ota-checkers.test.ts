import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkDownloadsResumed, checkFirstWaveOnly, checkPausedInFirstWave, checkRolloutCompleted, type RolloutFacts } from './ota-checkers.js';
import type { DeviceOtaRecord } from './ota-observer.js';

/** Each OTA checker passes a good run and catches a planted violation (sim/checkers.test.ts style). */
const record = (deviceId: string, over: Partial<DeviceOtaRecord> = {}): DeviceOtaRecord => ({
  deviceId, executionId: `ex-${deviceId}`, wave: 0, brick: null, length: 100, attempts: [{ startOffset: 0, status: 200, atMs: 0, cutAtOffset: null }],
  downloaded: { sha256: 'ab', matched: true }, committed: true, healthy: true, ended: 'done', events: [], ...over,
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
});
