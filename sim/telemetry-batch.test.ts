import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation, type RunResult } from './run.js';
import { runModel } from './model/run-model.js';
import type { Scenario } from './scenario.js';
import { testScenario } from './model/test-support.js';
import { telemetryBatchComparisons } from './validate-model.js';
import { swarmScenario, swarmScenarioRef } from './swarm.js';
import { telemetryFrameOf } from './telemetry-tally.js';

/** Telemetry batches in the simulator (issue 17): the scenario's telemetrySamplesPerFrame reaches the real agent; frames and samples are counted apart. */
function scenarioWith(overrides: Partial<Scenario>): Scenario {
  return testScenario({ name: 'batch-test', description: 'telemetry batches', safetyMs: 20_000, telemetryIntervalMs: 1_000, commands: { perMinute: 12, ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 1 } }, ...overrides });
}

function everyCheckerPasses(result: RunResult): void {
  assert.deepEqual(result.violations, []);
  for (const [name, verdict] of Object.entries(result.checkers)) assert.equal(verdict, 'pass', name);
}

const count = (result: RunResult, name: string) => result.counts[name] ?? 0;

describe('sim telemetry batches, full tier', () => {
  it('sends TELEMETRY_BATCH frames through the real gateway and writer: samples stored as rows, frames counted apart, the buffer\'s wait in the storage delay', async () => {
    const scenario = scenarioWith({ telemetrySamplesPerFrame: 4, telemetryBatchDelayMs: 60_000 });
    const result = await runSimulation({ scenario, scenarioRef: 'batch-test', seed: 5 });
    everyCheckerPasses(result);
    const frames = count(result, 'telemetry_frames_sent');
    assert.ok(frames > 0);
    // Every frame a full batch but the flush at each agent's first AUTH_ACK (the samples taken while it connected).
    assert.ok(count(result, 'telemetry_batch_frames_sent') >= frames - 4);
    assert.ok(count(result, 'telemetry_samples_sent') > 4 * (frames - 4) && count(result, 'telemetry_samples_sent') <= 4 * frames);
    assert.equal(count(result, 'telemetry_stored'), count(result, 'telemetry_samples_sent'), 'rows are samples');
    // What is not sent yet is still in the agents' buffers (fewer than a batch each), none dropped.
    assert.ok(count(result, 'telemetry_samples_buffered_end') > 0 && count(result, 'telemetry_samples_buffered_end') < 4 * 4);
    assert.equal(count(result, 'telemetry_samples_dropped'), 0);
    // Each frame's samples waited 3, 2, 1 and 0 intervals, plus a 5 ms link.
    assert.equal(result.telemetryStorageDelayMs?.count, count(result, 'telemetry_stored'));
    assert.equal(result.telemetryStorageDelayMs?.maxMs, 3_005);
  });

  it('without the field: one TELEMETRY frame per sample, no batch frames, stored at once', async () => {
    const result = await runSimulation({ scenario: scenarioWith({}), scenarioRef: 'batch-test', seed: 5 });
    everyCheckerPasses(result);
    assert.equal(count(result, 'telemetry_batch_frames_sent'), 0);
    assert.equal(count(result, 'telemetry_frames_sent'), count(result, 'telemetry_samples_sent'));
    assert.equal(count(result, 'telemetry_stored'), count(result, 'telemetry_samples_sent'));
    // Sent as sampled, 5 ms on the link; only those taken before the first AUTH_ACK waited for it.
    assert.equal(result.telemetryStorageDelayMs?.p50Ms, 5);
    assert.ok(result.telemetryStorageDelayMs!.maxMs! < 1_000);
  });

  it('with lossy links, bus and SQL outages, agent crashes and churn, batches keep every checker and the samples add up', async () => {
    const scenario = scenarioWith({
      agents: 6, safetyMs: 40_000, telemetrySamplesPerFrame: 3, telemetryBatchDelayMs: 5_000,
      churn: { perAgentHour: 120, offlineMsMin: 500, offlineMsMax: 5_000 },
      faults: {
        network: { delayMsMin: 1, delayMsMax: 50, loss: { numerator: 1, denominator: 50 }, duplicate: { numerator: 1, denominator: 50 }, reorder: { numerator: 1, denominator: 50 }, reorderDelayMsMax: 200 },
        busOutages: [{ atMs: 8_000, durationMs: 3_000 }], sqlOutages: [{ atMs: 20_000, durationMs: 4_000 }],
        agentCrashes: { perAgentHour: 120, downMsMin: 100, downMsMax: 3_000 },
      },
    });
    for (const seed of [1, 2, 3]) {
      const result = await runSimulation({ scenario, scenarioRef: 'batch-test', seed });
      everyCheckerPasses(result);
      assert.ok(count(result, 'telemetry_batch_frames_sent') > 0, `seed ${seed}: batches sent`);
      // Stored rows are samples sent, never more (a duplicated or replayed frame is refused); the rest was lost on the way.
      assert.ok(count(result, 'telemetry_stored') <= count(result, 'telemetry_samples_sent'), `seed ${seed}`);
      assert.ok(count(result, 'telemetry_stored') > 0);
    }
  });

  it('the model tier agrees: frames, samples and storage delay within the validation\'s tolerances', async () => {
    const scenario = scenarioWith({ agents: 8, safetyMs: 60_000, telemetrySamplesPerFrame: 4, telemetryBatchDelayMs: 60_000 });
    const full = await runSimulation({ scenario, scenarioRef: 'batch-test', seed: 7 });
    const model = runModel({ scenario, scenarioRef: 'batch-test', seed: 7, minVirtualMs: full.virtualMs });
    const comparisons = telemetryBatchComparisons(scenario, full, model);
    assert.equal(comparisons.length, 6);
    for (const c of comparisons) assert.ok(c.ok, `${c.metric}: full ${c.full}, model ${c.model}`);
    assert.equal(count(model, 'telemetry_batch_frames_sent'), count(full, 'telemetry_batch_frames_sent'));
    assert.deepEqual(telemetryBatchComparisons(scenarioWith({}), full, model), [], 'scenarios without batches compare as before');
  });
});

describe('telemetry frames as the tally reads them', () => {
  const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  it('counts one sample in TELEMETRY, each sample in TELEMETRY_BATCH, nothing in other frames', () => {
    assert.deepEqual(telemetryFrameOf(bytes({ body: { metrics: {}, sampled_at: 1 }, seq: 3, type: 'TELEMETRY' })), { batch: false, samples: 1 });
    assert.deepEqual(telemetryFrameOf(bytes({ body: { samples: [{}, {}, {}] }, seq: 4, type: 'TELEMETRY_BATCH' })), { batch: true, samples: 3 });
    assert.equal(telemetryFrameOf(bytes({ body: {}, seq: 5, type: 'HEARTBEAT' })), undefined);
    assert.equal(telemetryFrameOf(bytes({ body: { output: '"type":"TELEMETRY"' }, type: 'COMMAND_RESULT' })), undefined);
  });
});

describe('swarm with telemetry batches', () => {
  it('sets the field without a draw: a seed keeps its fault mix, and the reference reproduces it', () => {
    const plain = swarmScenario(42, { agents: 10, safetyMs: 60_000, lossy: true, outages: true });
    const batched = swarmScenario(42, { agents: 10, safetyMs: 60_000, lossy: true, outages: true, telemetrySamplesPerFrame: 8 });
    assert.deepEqual({ ...batched, telemetrySamplesPerFrame: undefined }, { ...plain, telemetrySamplesPerFrame: undefined });
    assert.equal(batched.telemetrySamplesPerFrame, 8);
    assert.equal(plain.telemetrySamplesPerFrame, undefined);
    assert.equal(swarmScenarioRef(42, { lossy: true, outages: true, telemetrySamplesPerFrame: 8 }), 'swarm:42:lossy:outages:batch8');
  });
});
