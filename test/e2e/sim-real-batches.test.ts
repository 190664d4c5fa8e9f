import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import { builtinScenarioPath, loadScenario } from '../../sim/scenario.js';
import { runRealSimulation } from '../../sim/real/run-real.js';
import { realWaitMs, withSimRealDeployment } from './support/sim-real-deployment.js';

/**
 * `sdc sim --real` with a scenario that batches telemetry (issue 17): the worker agents ask for
 * batches at AUTH, the real gateway forwards each TELEMETRY_BATCH as one frame (alone or in a telemetry_frames entry) and the real
 * writer stores its samples as rows. The run counts telemetry as the in-process full tier does
 * (frames and samples as they leave the agents, rows stored, buffered at the end), and those
 * counts agree with what the deployment's bus and SQL hold for the run's devices.
 */
test('--real with telemetry batches: TELEMETRY_BATCH frames reach the real gateway and writer, counted as the full tier counts them; checkers pass', async () => {
  await withSimRealDeployment('sdc-sim-real-batches-test-', async ({ deployment, materials, password }) => {
    const smoke = await loadScenario(builtinScenarioPath('smoke'));
    // A sample a second in batches of 3 (a batch fills in 3 s, well within the 10 s delay), so the
    // few seconds agents are online hold several batches each; commands at smoke's rate x 5.
    const scenario = {
      ...smoke, telemetryIntervalMs: 1_000, telemetrySamplesPerFrame: 3, telemetryBatchDelayMs: 10_000,
      livenessBoundMs: realWaitMs, commands: { ...smoke.commands, perMinute: 200 },
    };
    const result = await runRealSimulation({
      url: deployment.apiUrl!, caPem: materials.rootCaPem, admin: 'sim-admin', password,
      scenario, scenarioRef: 'smoke', seed: 17, agents: 4, processes: 1, durationMs: 6_000, onlineTimeoutMs: realWaitMs,
    });
    assert.deepEqual(result.violations, []);
    for (const [name, verdict] of Object.entries(result.checkers)) assert.equal(verdict, 'pass', name);
    assert.deepEqual(result.online, { agents: 4, controlPlane: 4 });

    const { counts } = result;
    const frames = counts.telemetry_frames_sent!;
    const batches = counts.telemetry_batch_frames_sent!;
    const samples = counts.telemetry_samples_sent!;
    assert.ok(batches >= 4, `only ${batches} TELEMETRY_BATCH frames: ${JSON.stringify(counts)}`);
    // A batch carries 2 or 3 samples, a lone TELEMETRY one.
    assert.ok(samples >= frames + batches && samples <= frames + 2 * batches, JSON.stringify(counts));
    assert.equal(counts.telemetry_samples_dropped, 0);
    assert.equal(counts.telemetry_samples_lost_in_crashes, 0);
    // Batches fill as samples come: at the end each agent holds fewer than a batch.
    assert.ok(counts.telemetry_samples_buffered_end! >= 0 && counts.telemetry_samples_buffered_end! <= 4 * 2, JSON.stringify(counts));

    // The real gateway forwarded every frame, batches as TELEMETRY_BATCH: alone as a `telemetry`
    // entry, or with other devices' frames in a `telemetry_frames` entry (decision 0023).
    const entries = await deployment.stores.bus.range(streamNames.telemetry, { count: 10_000 });
    const forwarded = entries.flatMap((e) => {
      const entry = decodeBusEntry(e.fields);
      if (entry.kind === 'telemetry') return [entry.data];
      if (entry.kind === 'telemetry_frames') return entry.data.frames;
      return [];
    });
    const ours = forwarded.filter((f) => f.device_id.startsWith('simr-17-'));
    const types = ours.map((f) => (JSON.parse(f.frame) as { type: string }).type);
    assert.equal(types.length, frames);
    assert.equal(types.filter((t) => t === 'TELEMETRY_BATCH').length, batches);
    assert.equal(types.filter((t) => t === 'TELEMETRY').length, frames - batches);
    // The real writer stored every sample as its own row, as the run read them back through the API.
    const [rows] = await deployment.stores.sql!.query<{ n: number }>("SELECT COUNT(*) AS n FROM telemetry WHERE device_id LIKE 'simr-17-%'");
    assert.equal(Number(rows!.n), samples);
    assert.equal(counts.telemetry_stored, samples);
    assert.equal(counts.telemetry_stored_duplicates, 0, 'no sample stored twice');
  });
});
