import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSimulation } from '../run.js';
import { builtinScenarioPath, loadScenario, parseScenario, type Scenario } from '../scenario.js';

/**
 * The two OTA scenarios of issue 10 on tiny fleets (docs/simulation.md, "OTA rollouts"): the real
 * control plane's rollout coordinator, gateways and agent cores on virtual time, simulated
 * updaters on the devices. Scaled down for a loaded 2-core machine: 20 agents (10 in the first
 * wave, so a 10 % brick ratio bricks exactly one of them) and short safety phases.
 */
async function brickScenario(mode: 'health_check_fails' | 'silent'): Promise<Scenario> {
  const scenario = await loadScenario(builtinScenarioPath('ota-brick'));
  const ota = scenario.ota!;
  return parseScenario({
    ...scenario,
    ota: { ...ota, bricks: { ...ota.bricks!, mode }, waves: [{ ...ota.waves[0]!, percent: 50 }, { ...ota.waves[1]!, percent: 50 }] },
  });
}

describe('sim OTA scenarios', () => {
  it('ota-brick: the rollout pauses in the first wave and no device beyond it installs; the same seed gives the same trace hash', async () => {
    const scenario = await brickScenario('health_check_fails');
    const options = { scenario, scenarioRef: 'ota-brick', agents: 20, safetyMs: 45_000 };
    const a = await runSimulation({ ...options, seed: 1 });
    const b = await runSimulation({ ...options, seed: 1 });
    assert.deepEqual([...a.violations, ...a.otaViolations], [], `reproduce with: ${a.reproduce}`);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.counts, b.counts);
    assert.equal(a.checkers.ota_first_wave_only, 'pass');
    assert.equal(a.checkers.ota_paused_in_first_wave, 'pass');
    assert.equal(a.counts.ota_executions, 10, 'the first wave only');
    assert.equal(a.counts.ota_devices_bricked, 1, '10 % of the 10 devices reached');
  });

  it('ota-brick with silent bricks: the device that never reports after the reboot times out and the rollout pauses in the first wave', async () => {
    const scenario = await brickScenario('silent');
    const result = await runSimulation({ scenario, scenarioRef: 'ota-brick', agents: 20, safetyMs: 60_000, seed: 2 });
    assert.deepEqual([...result.violations, ...result.otaViolations], [], `reproduce with: ${result.reproduce}`);
    assert.equal(result.checkers.ota_paused_in_first_wave, 'pass');
    assert.equal(result.counts.ota_devices_bricked, 1);
  });

  it('ota-cut-download: downloads cut half way resume from their offset with a matching digest, and the rollout completes', async () => {
    const scenario = await loadScenario(builtinScenarioPath('ota-cut-download'));
    const result = await runSimulation({ scenario, scenarioRef: 'ota-cut-download', agents: 10, safetyMs: 60_000, seed: 1 });
    assert.deepEqual([...result.violations, ...result.otaViolations], [], `reproduce with: ${result.reproduce}`);
    assert.equal(result.checkers.ota_download_resumed, 'pass');
    assert.equal(result.checkers.ota_rollout_completed, 'pass');
    assert.ok(result.counts.ota_download_cuts! > 0, 'some download was cut');
    assert.equal(result.counts.ota_succeeded, 10);
    // A tenth of 10: one device on the TUF targets route, one agent crashed mid-update and recovered; none half applied.
    assert.equal(result.checkers.ota_targets_route, 'pass');
    assert.equal(result.checkers.ota_crash_recovered, 'pass');
    assert.equal(result.counts.ota_targets_route, 1);
    assert.equal(result.counts.ota_crashes, 1);
    // The update's kernel calls go through the run's counting wrapper: at least STAGE, COMMIT and the health check's status read per device.
    assert.ok(result.counts.ota_kernel_calls! >= 30, `ota kernel calls: ${result.counts.ota_kernel_calls}`);
  });
});
