import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinScenarioPath, loadScenario, parseScenario, type Scenario } from '../scenario.js';
import { noticeRepushIntervalMsDefault } from '../../server/ota/rollouts.js';
import { noticeRepushIntervalMs } from './rollout.js';
import { runModel } from './run-model.js';

/** A scenario's rollout with every wave at `percent` (small fleets: 10 % of 20 devices holds no brick for sure, 50 % holds exactly one). */
function withWaves(scenario: Scenario, percent: number, ota: Partial<NonNullable<Scenario['ota']>> = {}): Scenario {
  return parseScenario({ ...scenario, ota: { ...scenario.ota!, ...ota, waves: scenario.ota!.waves.map((wave) => ({ ...wave, percent })) } });
}

describe('model tier: rollouts', () => {
  it('re-pushes a missed notice at the control plane\'s interval', () => {
    assert.equal(noticeRepushIntervalMs, noticeRepushIntervalMsDefault);
  });

  it('ota-brick: pauses on the error threshold in the first wave, nothing beyond it (20 devices, waves of 50 %: exactly one brick)', async () => {
    const scenario = withWaves(await loadScenario(builtinScenarioPath('ota-brick')), 50);
    const result = runModel({ scenario, scenarioRef: 'ota-brick', seed: 1, agents: 20, safetyMs: 40_000 });
    assert.deepEqual(result.otaViolations, []);
    assert.equal(result.checkers.ota_paused_in_first_wave, 'pass');
    assert.equal(result.checkers.ota_first_wave_only, 'pass');
    assert.deepEqual({ ...result.ota, endedAtMs: undefined }, {
      status: 'paused', pauseReason: 'error_threshold', waveIndex: 0, executions: 10, executionsByState: { succeeded: 9, rolled_back: 1 }, endedAtMs: undefined,
    });
    // Published at 10 s; the brick's version report comes after about eight paced steps and the download.
    assert.ok(result.ota!.endedAtMs! > 12_000 && result.ota!.endedAtMs! < 40_000, `${result.ota!.endedAtMs}`);
    assert.equal(result.counts.ota_devices_bricked, 1);
    assert.equal(result.counts.ota_devices_committed, 10, 'the bricked device committed before its health check failed');
    // Its text summary: cli/commands/sim-rollout-summary.test.ts (sim/ does not import cli/).
  });

  it('ota-brick with silent bricks: the control plane\'s step timeout ends the brick (timed_out, a failure) and pauses the rollout', async () => {
    const base = await loadScenario(builtinScenarioPath('ota-brick'));
    const scenario = withWaves(base, 50, { bricks: { ratio: base.ota!.bricks!.ratio, mode: 'silent' } });
    const result = runModel({ scenario, scenarioRef: 'ota-brick', seed: 2, agents: 20, safetyMs: 60_000 });
    assert.deepEqual(result.otaViolations, []);
    assert.equal(result.ota!.status, 'paused');
    assert.equal(result.ota!.pauseReason, 'error_threshold');
    assert.deepEqual(result.ota!.executionsByState, { succeeded: 9, timed_out: 1 });
    // Rebooting at about 20 s; the 30 s step timeout ends it at the next 1 s sweep after that.
    assert.ok(result.ota!.endedAtMs! >= 10_000 + 30_000, `${result.ota!.endedAtMs}`);
  });

  it('ota-cut-download: every device succeeds through cut downloads, the targets route and crashes mid-update', async () => {
    const scenario = await loadScenario(builtinScenarioPath('ota-cut-download'));
    const result = runModel({ scenario, scenarioRef: 'ota-cut-download', seed: 1, agents: 20 });
    assert.deepEqual(result.otaViolations, []);
    assert.deepEqual(result.violations, []);
    assert.equal(result.checkers.ota_rollout_completed, 'pass');
    assert.equal(result.ota!.status, 'completed');
    assert.equal(result.ota!.waveIndex, 1);
    assert.deepEqual(result.ota!.executionsByState, { succeeded: 20 });
    assert.ok(result.counts.ota_download_cuts! > 0, 'some download was cut');
    assert.ok(result.counts.ota_download_attempts! > 18, 'cut downloads were asked again (18 presigned downloads at least)');
    // A tenth of the executions, spread at an exact ratio: 2 of 20.
    assert.equal(result.counts.ota_crashes, 2);
    assert.equal(result.counts.agent_crashes, 2, 'an OTA crash is the agent process\'s');
    assert.equal(result.counts.ota_targets_route, 2);
  });

  it('replays exactly: the same seed gives the same rollout and trace hash, another seed another hash', async () => {
    const scenario = await loadScenario(builtinScenarioPath('ota-cut-download'));
    const options = { scenario, scenarioRef: 'ota-cut-download', agents: 20, safetyMs: 60_000 };
    const { wallMs: _a, peakRssBytes: _b, ...a } = runModel({ ...options, seed: 5 });
    const { wallMs: _c, peakRssBytes: _d, ...b } = runModel({ ...options, seed: 5 });
    assert.deepEqual(a, b);
    assert.notEqual(runModel({ ...options, seed: 6 }).traceHash, a.traceHash);
  });
});
