import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertRefused } from '../core/errors/assert-refused.js';
import { builtinScenarioPath, commandMeanGapMs, fullTierAgentsMax, loadScenario, parseScenario } from './scenario.js';
import { runSimulation } from './run.js';

const base = {
  name: 't', description: '', agents: 10, gateways: 1, safetyMs: 10_000, livenessBoundMs: 10_000,
  heartbeatIntervalMs: 10_000, telemetryIntervalMs: 30_000, faults: {},
};
const mix = { EXEC_PING_KERNEL: 1 };

describe('scenario command rates', () => {
  it('takes a per-agent rate that scales with the fleet, or a fleet-wide one', () => {
    const perAgent = parseScenario({ ...base, commands: { perAgentHour: 2, ttlMs: 60_000, mix } });
    assert.equal(commandMeanGapMs(perAgent.commands, 1_000), 1_800);
    assert.equal(commandMeanGapMs(perAgent.commands, 10_000), 180);
    const fleetWide = parseScenario({ ...base, commands: { perMinute: 120, ttlMs: 60_000, mix } });
    assert.equal(commandMeanGapMs(fleetWide.commands, 1_000), 500);
    assert.equal(commandMeanGapMs(fleetWide.commands, 10_000), 500);
    assert.equal(commandMeanGapMs(parseScenario({ ...base, commands: { perAgentHour: 0, ttlMs: 60_000, mix } }).commands, 10), 0);
  });

  it('refuses both rates at once, and neither', () => {
    const both = assertRefused(() => parseScenario({ ...base, commands: { perMinute: 1, perAgentHour: 1, ttlMs: 60_000, mix } }), 'CLI_INPUT');
    assert.match(both.message, /exactly one of perMinute and perAgentHour/);
    assertRefused(() => parseScenario({ ...base, commands: { ttlMs: 60_000, mix } }), 'CLI_INPUT');
    assertRefused(() => parseScenario({ ...base, commands: { perAgentHour: -1, ttlMs: 60_000, mix } }), 'CLI_INPUT');
  });

  it('ships the standard profile: 30 s heartbeats, 60 s telemetry, one command per agent per hour, no faults', async () => {
    const standard = await loadScenario(builtinScenarioPath('standard'));
    assert.equal(standard.heartbeatIntervalMs, 30_000);
    assert.equal(standard.telemetryIntervalMs, 60_000);
    assert.equal(standard.commands.perAgentHour, 1);
    assert.equal(standard.commands.perMinute, undefined);
    assert.deepEqual(standard.faults, {});
    assert.equal(standard.churn, undefined);
    assert.equal(commandMeanGapMs(standard.commands, 10_000), 360);
  });

  it('takes fleets up to 100,000 agents (issue 17) and refuses larger ones, in the file and from --agents', async () => {
    assert.equal(fullTierAgentsMax, 100_000);
    const commands = { perAgentHour: 1, ttlMs: 60_000, mix };
    assert.equal(parseScenario({ ...base, agents: 100_000, commands }).agents, 100_000);
    assertRefused(() => parseScenario({ ...base, agents: 100_001, commands }), 'CLI_INPUT');
    const scenario = parseScenario({ ...base, commands });
    for (const agents of [0, 100_001, 1.5]) {
      await assert.rejects(runSimulation({ scenario, scenarioRef: 't', seed: 1, agents }), { name: 'RangeError', message: /the full tier runs 1 to 100000 agents/ });
    }
  });
});
