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

describe('scenario telemetry batches (issue 17)', () => {
  const commands = { perAgentHour: 1, ttlMs: 60_000, mix };

  it('takes telemetrySamplesPerFrame 1 to 64 (the protocol\'s bound) and a batch delay with it; absent means one frame per sample', async () => {
    assert.equal(parseScenario({ ...base, commands }).telemetrySamplesPerFrame, undefined);
    for (const k of [1, 16, 64]) assert.equal(parseScenario({ ...base, commands, telemetrySamplesPerFrame: k }).telemetrySamplesPerFrame, k);
    const batched = parseScenario({ ...base, commands, telemetrySamplesPerFrame: 16, telemetryBatchDelayMs: 120_000 });
    assert.equal(batched.telemetryBatchDelayMs, 120_000);
    const shipped = await loadScenario(builtinScenarioPath('fast-telemetry-batched'));
    assert.equal(shipped.telemetrySamplesPerFrame, 16);
    assert.equal((await loadScenario(builtinScenarioPath('fast-telemetry'))).telemetrySamplesPerFrame, undefined);
  });

  it('refuses samples per frame outside 1..64 or not an integer, a delay below 1 ms, and a delay without samples per frame, with CLI_INPUT', () => {
    for (const k of [0, 65, 1.5, -1, '16']) {
      const error = assertRefused(() => parseScenario({ ...base, commands, telemetrySamplesPerFrame: k }), 'CLI_INPUT');
      assert.match(error.message, /telemetrySamplesPerFrame/);
    }
    assertRefused(() => parseScenario({ ...base, commands, telemetrySamplesPerFrame: 4, telemetryBatchDelayMs: 0 }), 'CLI_INPUT');
    const alone = assertRefused(() => parseScenario({ ...base, commands, telemetryBatchDelayMs: 1_000 }), 'CLI_INPUT');
    assert.match(alone.message, /telemetryBatchDelayMs needs telemetrySamplesPerFrame/);
  });
});
