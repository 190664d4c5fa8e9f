import assert from 'node:assert/strict';
import { test } from 'node:test';
import { builtinScenarioPath, loadScenario, parseScenario } from '../../sim/scenario.js';
import { runModel } from '../../sim/model/run-model.js';
import { describeSimSummary, simSummary } from './sim-report.js';

// `sdc sim`'s text summary of a run with a rollout (moved here from sim/model/rollout.test.ts:
// sim/ does not import cli/): the rollout line and the model tier's OTA checker verdicts. The
// model tier's ota-brick with waves of 50 % over 20 devices (exactly one brick: it pauses).
test('the text summary of a model run with a rollout names its end, executions by state and the OTA checkers', async () => {
  const base = await loadScenario(builtinScenarioPath('ota-brick'));
  const scenario = parseScenario({ ...base, ota: { ...base.ota!, waves: base.ota!.waves.map((wave) => ({ ...wave, percent: 50 })) } });
  const result = runModel({ scenario, scenarioRef: 'ota-brick', seed: 1, agents: 20, safetyMs: 40_000 });
  const text = describeSimSummary(simSummary(result, { scenario, tier: 'model', crypto: 'real' }));
  assert.match(text, /\nrollout: paused \(error_threshold\) at wave 0; 10 executions: succeeded 9, rolled_back 1; record last changed at \d+ ms\n/);
  assert.match(text, /model tier: liveness=pass ota_first_wave_only=pass ota_paused_in_first_wave=pass \(/);
});
