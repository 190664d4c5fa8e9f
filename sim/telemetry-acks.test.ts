import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation, type RunResult } from './run.js';
import type { Scenario } from './scenario.js';
import { testScenario } from './model/test-support.js';

/**
 * Telemetry acknowledgements in the full tier (decision 0004, "Acknowledgements"): the scenario's
 * telemetryAcks reaches the real agent, and with lossy links, churn and a bus outage every checker
 * still passes and nothing is dropped; without the field the run is as before.
 */
function scenarioWith(overrides: Partial<Scenario>): Scenario {
  return testScenario({
    name: 'acks-test', description: 'telemetry acknowledgements', agents: 6, safetyMs: 30_000, telemetryIntervalMs: 1_000,
    commands: { perMinute: 12, ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 1 } },
    churn: { perAgentHour: 120, offlineMsMin: 500, offlineMsMax: 3_000 },
    faults: {
      network: { delayMsMin: 1, delayMsMax: 30, loss: { numerator: 1, denominator: 50 }, duplicate: { numerator: 1, denominator: 100 }, reorder: { numerator: 1, denominator: 100 }, reorderDelayMsMax: 100 },
      busOutages: [{ atMs: 8_000, durationMs: 3_000 }],
    },
    ...overrides,
  });
}

function everyCheckerPasses(result: RunResult): void {
  assert.deepEqual(result.violations, []);
  for (const [name, verdict] of Object.entries(result.checkers)) assert.equal(verdict, 'pass', name);
}

const count = (result: RunResult, name: string) => result.counts[name] ?? 0;

describe('sim telemetry acknowledgements, full tier', () => {
  it('with the field, through lossy links, churn and a bus outage: every checker passes, no sample dropped, at least as many stored as without', async () => {
    const withAcks = await runSimulation({ scenario: scenarioWith({ telemetryAcks: true }), scenarioRef: 'acks-test', seed: 9 });
    const without = await runSimulation({ scenario: scenarioWith({}), scenarioRef: 'acks-test', seed: 9 });
    everyCheckerPasses(withAcks);
    everyCheckerPasses(without);
    assert.notEqual(withAcks.traceHash, without.traceHash, 'the field changes the run');
    assert.equal(count(withAcks, 'telemetry_samples_dropped'), 0);
    assert.ok(count(withAcks, 'telemetry_stored') > 0);
    // Resends add frames: at least as many samples sent with acks as without (same seed, same sampling).
    assert.ok(count(withAcks, 'telemetry_samples_sent') >= count(without, 'telemetry_samples_sent'),
      `${count(withAcks, 'telemetry_samples_sent')} sent with acks, ${count(without, 'telemetry_samples_sent')} without`);
  });
});
