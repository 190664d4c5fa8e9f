import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinScenarioPath, loadScenario, parseScenario } from '../scenario.js';
import { runModel } from './run-model.js';

describe('model run', () => {
  it('replays exactly: the same seed gives the same result and trace hash, another seed another hash', async () => {
    const scenario = await loadScenario(builtinScenarioPath('churn'));
    const options = { scenario, scenarioRef: 'churn', agents: 200, safetyMs: 60_000 };
    const { wallMs: _a, peakRssBytes: _b, ...a } = runModel({ ...options, seed: 11 });
    const { wallMs: _c, peakRssBytes: _d, ...b } = runModel({ ...options, seed: 11 });
    const c = runModel({ ...options, seed: 12 });
    assert.deepEqual(a, b);
    assert.notEqual(a.traceHash, c.traceHash);
    assert.ok(a.counts.agent_crashes! > 0 && a.counts.churn_leaves! > 0 && a.counts.executions! > 0, 'the run did work');
    assert.equal(a.reproduce, 'sdc sim --tier model --seed 11 --scenario churn --agents 200 --duration 60000ms');
    assert.equal(a.checkers.liveness, 'pass');
  });

  it('runs the standard profile: everyone online, one command per agent-hour, a sample per agent-minute, two-hop round trips', async () => {
    const scenario = await loadScenario(builtinScenarioPath('standard'));
    const result = runModel({ scenario, scenarioRef: 'standard', seed: 1, agents: 600, safetyMs: 600_000 });
    assert.equal(result.tier, 'model');
    assert.equal(result.series.at(-1)!.online_agents, 600);
    assert.ok(result.counts.commands_accepted! > 70 && result.counts.commands_accepted! < 130, `${result.counts.commands_accepted} commands in 10 minutes`);
    assert.ok(Math.abs(result.counts.telemetry_stored! - 6_000) <= 600, `${result.counts.telemetry_stored} samples`);
    assert.equal(result.latencyHistogram[0]!.count + result.latencyHistogram[5]!.count, result.counts.commands_accepted, 'links of 1 ms: 2 ms round trips (or the first second of connecting)');
    assert.deepEqual(result.violations, []);
    assert.equal(result.series[2]!.t_ms - result.series[1]!.t_ms, 4_000, 'about 200 samples over the run');
  });

  it('reports a liveness violation when the system cannot converge within the bound', async () => {
    const scenario = parseScenario({
      ...(await loadScenario(builtinScenarioPath('smoke'))), livenessBoundMs: 1_000, faults: { network: { delayMsMin: 2_000, delayMsMax: 3_000 } },
      commands: { perMinute: 600, ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 1 } },
    });
    const result = runModel({ scenario, scenarioRef: 'x.json', seed: 3, agents: 5, safetyMs: 5_000 });
    assert.equal(result.checkers.liveness, 'fail');
    assert.match(result.violations[0]!.message, /did not converge within 1000 ms/);
    assert.equal(result.convergedAfterMs, null);
  });

  it('runs on after converging when asked to, so its counts cover as much virtual time as a slower run', async () => {
    const scenario = await loadScenario(builtinScenarioPath('smoke'));
    const options = { scenario, scenarioRef: 'smoke', seed: 5, agents: 10, safetyMs: 10_000 };
    const plain = runModel(options);
    const longer = runModel({ ...options, minVirtualMs: 30_000 });
    assert.equal(longer.convergedAfterMs, plain.convergedAfterMs);
    assert.equal(plain.virtualMs, 10_000 + plain.convergedAfterMs!);
    assert.equal(longer.virtualMs, 30_000);
    assert.ok(longer.counts.telemetry_stored! > plain.counts.telemetry_stored!);
  });

  it('refuses a fleet it cannot hold', async () => {
    const scenario = await loadScenario(builtinScenarioPath('smoke'));
    assert.throws(() => runModel({ scenario, scenarioRef: 'smoke', seed: 1, agents: 0 }), RangeError);
    assert.throws(() => runModel({ scenario, scenarioRef: 'smoke', seed: 1, agents: 1_000_001 }), RangeError);
  });
});
