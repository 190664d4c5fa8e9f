import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideRollout } from '../core/ota/rollout-decisions.js';
import { runModel } from './model/run-model.js';
import { builtinScenarioPath, loadScenario, parseScenario } from './scenario.js';
import { compareTiers, describeValidation, faultWindows, histogramPercentile, meanRecoveryMs, validateModel } from './validate-model.js';

// CI's guard against a model that drifts from the real code: both tiers on small fleets and short
// phases (a 2-core machine runs the full tier at about 1,500 agent-seconds per second).
describe('validate the model tier against the full tier', () => {
  const smoke = loadScenario(builtinScenarioPath('smoke'));
  const smokeSeed1 = smoke.then((scenario) => validateModel({ scenario, scenarioRef: 'smoke', seed: 1, agents: 8, safetyMs: 10_000 }));

  it('agrees with the real code on a clean network, for two seeds', async () => {
    const scenario = await smoke;
    for (const report of [await smokeSeed1, await validateModel({ scenario, scenarioRef: 'smoke', seed: 2, agents: 8, safetyMs: 10_000 })]) {
      assert.ok(report.ok, describeValidation(report));
      assert.deepEqual(report.model.latencyHistogram.map((b) => b.le_ms), report.full.latencyHistogram.map((b) => b.le_ms), 'the same histogram buckets');
      assert.deepEqual(Object.keys(report.model.commandsByState).sort(), Object.keys(report.full.commandsByState).sort(), 'the same command states');
      assert.ok(report.full.counts.commands_accepted! > 0);
    }
  });

  it('agrees with the real code under crashes, churn and kernel errors', async () => {
    const scenario = await loadScenario(builtinScenarioPath('churn'));
    const report = await validateModel({ scenario, scenarioRef: 'churn', seed: 3, agents: 10, safetyMs: 15_000 });
    assert.ok(report.ok, describeValidation(report));
    assert.ok(report.full.counts.agent_crashes! + report.full.counts.churn_leaves! > 0, 'faults happened');
  });

  it('fails a model that drifted: a 300 ms execution cost the real code does not have', async () => {
    const scenario = await smoke;
    const { full } = await smokeSeed1;
    const drifted = runModel({ scenario, scenarioRef: 'smoke', seed: 1, agents: 8, safetyMs: 10_000, params: { executionServiceMs: 300 } });
    const failed = compareTiers(scenario, 10_000, full, drifted).filter((c) => !c.ok).map((c) => c.metric);
    assert.ok(failed.includes('latency p50 ms'), failed.join(', '));
  });
});

describe('validate the model tier\'s rollout against the full tier', () => {
  // 20 devices in waves of 50 % (10 % of 20 holds no brick for sure; 50 % holds exactly one), 30 s: the rollout pauses at about 20 s.
  const options = loadScenario(builtinScenarioPath('ota-brick')).then((base) => ({
    scenario: parseScenario({ ...base, ota: { ...base.ota!, waves: base.ota!.waves.map((wave) => ({ ...wave, percent: 50 })) } }),
    scenarioRef: 'ota-brick', seed: 1, agents: 20, safetyMs: 30_000,
  }));
  const report = options.then((o) => validateModel(o));

  it('agrees with the real coordinator and update runner on ota-brick: the same end, executions and bricks', async () => {
    const { full, model, comparisons, ok } = await report;
    assert.ok(ok, describeValidation(await report));
    assert.deepEqual(full.otaViolations, []);
    assert.equal(full.ota?.status, 'paused');
    assert.equal(model.ota?.status, 'paused');
    const metrics = comparisons.map((c) => c.metric);
    for (const metric of ['ota wave reached', 'ota executions', 'ota_devices_bricked', 'ota rollout end ms']) assert.ok(metrics.includes(metric), metric);
  });

  it('fails a model with a wrong rule: a coordinator that ignores the error threshold', async () => {
    const o = await options;
    const { full } = await report;
    const ignoringErrors: typeof decideRollout = (record, executions, nowMs) => {
      const lenient = { ...record, plan: { ...record.plan, waves: record.plan.waves.map((wave) => ({ ...wave, errorThreshold: { ...wave.errorThreshold, failedPercentMax: 100 } })) } };
      const decision = decideRollout(lenient, executions, nowMs);
      return { ...decision, next: decision.next === lenient ? record : { ...decision.next, plan: record.plan } };
    };
    const drifted = runModel({ ...o, minVirtualMs: full.virtualMs, decideRollout: ignoringErrors });
    const failed = compareTiers(o.scenario, o.safetyMs, full, drifted).filter((c) => !c.ok).map((c) => c.metric);
    assert.ok(failed.some((metric) => metric.startsWith('ota rollout status')), failed.join(', '));
    assert.ok(failed.includes('ota wave reached'), failed.join(', '));
  });
});

describe('validation helpers', () => {
  it('reads percentiles off a histogram, linearly inside a bucket', () => {
    const histogram = [{ le_ms: 10, count: 0 }, { le_ms: 50, count: 4 }, { le_ms: 100, count: 4 }, { le_ms: null, count: 0 }];
    assert.equal(histogramPercentile(histogram, 0.5), 50);
    assert.equal(histogramPercentile(histogram, 0.25), 30);
    assert.equal(histogramPercentile(histogram, 1), 100);
    assert.equal(histogramPercentile([{ le_ms: 10, count: 0 }], 0.5), null);
  });

  it('measures recovery as the area of the excess over the pre-fault level divided by its peak', () => {
    const online = [10, 10, 6, 6, 8, 10, 10];
    const series = online.map((n, s) => ({ t_ms: s * 1_000, online_agents: n, commands: { queued: 10 - n } as never }));
    const missing = (s: { online_agents: number }, before: { online_agents: number }) => before.online_agents - s.online_agents;
    // From 3 s: 4 agents missing, 4, then 2, none at 5 s: (4 + 2) agent-seconds over a peak of 4.
    assert.equal(meanRecoveryMs(series, { startMs: 1_500, fromMs: 3_000, endMs: 3_000 }, missing), 1_500);
    // From the start: (4 + 4 + 2) agent-seconds over 4.
    assert.equal(meanRecoveryMs(series, { startMs: 1_500, fromMs: 1_500, endMs: 3_000 }, missing), 2_500);
    assert.equal(meanRecoveryMs(series, { startMs: 1_500, fromMs: 5_000, endMs: 5_000 }, missing), 0, 'nothing missing');
    assert.equal(meanRecoveryMs(series, { startMs: -1, fromMs: 0, endMs: 3_000 }, missing), null, 'no sample before the fault');
  });

  it('lists the fault windows that end within the safety phase', async () => {
    const scenario = await loadScenario(builtinScenarioPath('gateway-restart'));
    assert.deepEqual(faultWindows(scenario, 90_000).map((w) => w.name), ['restart gw-1', 'restart gw-2', 'bus outage 1']);
  });
});
