import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startedWorld, testScenario } from './test-support.js';

describe('model telemetry', () => {
  it('samples every interval from each agent\'s phase and stores every sample sent', () => {
    const world = startedWorld(testScenario({ agents: 5, telemetryIntervalMs: 10_000 }));
    world.runUntil(60_000);
    // Phases are in (0, 10 s]: 6 samples each by 60 s.
    assert.equal(world.counts.telemetry_sampled, 30);
    assert.equal(world.counts.telemetry_sent, 30);
    world.runUntil(60_100);
    assert.equal(world.counts.telemetry_stored, 30);
  });

  it('buffers samples while the agent is away (bounded, oldest dropped) and flushes them at the next AUTH_ACK', () => {
    const world = startedWorld(testScenario({ agents: 1, telemetryIntervalMs: 1_000 }), { params: { telemetryBufferMax: 5 } });
    world.runUntil(3_000);
    const sentBefore = world.counts.telemetry_sent!;
    const sampledBefore = world.counts.telemetry_sampled!;
    world.presence.leave(0, 10_500);
    world.runUntil(13_499);
    const away = world.counts.telemetry_sampled! - sampledBefore;
    assert.ok(away >= 10);
    assert.equal(world.counts.telemetry_sent, sentBefore);
    assert.equal(world.counts.telemetry_buffer_dropped, away - 5);
    // Back at 13.5 s: connect, then AUTH_ACK three 5 ms hops later flushes the five kept.
    world.runUntil(13_500 + 15);
    assert.equal(world.counts.telemetry_sent, sentBefore + 5);
  });

  it('loses samples that meet a bus outage and stores those that meet an SQL outage later', () => {
    const scenario = testScenario({ agents: 4, telemetryIntervalMs: 1_000, faults: { network: { delayMsMin: 5, delayMsMax: 5 }, busOutages: [{ atMs: 10_000, durationMs: 5_000 }], sqlOutages: [{ atMs: 20_000, durationMs: 5_000 }] } });
    const world = startedWorld(scenario);
    world.runUntil(19_999);
    assert.equal(world.counts.telemetry_lost_bus, 4 * 5);
    const storedBefore = world.counts.telemetry_stored!;
    world.runUntil(24_999);
    assert.equal(world.counts.telemetry_stored, storedBefore, 'nothing is stored while SQL is down');
    // A claim retries the blocked partitions 30 to 60 s later; then every sample is stored or lost, but those still in flight.
    world.runUntil(25_000 + 60_000);
    const accounted = world.counts.telemetry_stored! + world.counts.telemetry_lost_bus!;
    assert.ok(accounted <= world.counts.telemetry_sent! && accounted >= world.counts.telemetry_sent! - 4);
  });

  it('a sample lost on the way breaks the chain once: the next one is refused and not stored, the one after anchors again', () => {
    const scenario = testScenario({ agents: 1, telemetryIntervalMs: 1_000, faults: { network: { delayMsMin: 5, delayMsMax: 5 } } });
    const world = startedWorld(scenario);
    world.runUntil(5_000);
    const phaseMs = world.fleet.telemetryPhaseMs[0]!;
    const tickMs = 10_000 + (phaseMs % 1_000);
    world.network.addPartition({ startMs: tickMs - 100, endMs: tickMs + 100, gateways: undefined, agents: undefined });
    world.runUntil(20_000);
    assert.equal(world.counts.telemetry_chain_broken, 1);
    assert.equal(world.counts.telemetry_stored, world.counts.telemetry_sent! - 2, 'the lost one and the refused one');
    assert.equal(world.presence.connected, 1, 'one refusal is within the session budget');
  });
});

describe('model telemetry batches (scenario telemetrySamplesPerFrame)', () => {
  it('sends a full batch at once as one frame and stores its samples, each with its wait in the buffer', () => {
    // One sample a second, 4 per frame, a delay longer than a batch takes to fill: every frame is full.
    const world = startedWorld(testScenario({ agents: 1, telemetryIntervalMs: 1_000, telemetrySamplesPerFrame: 4, telemetryBatchDelayMs: 60_000 }));
    world.runUntil(20_500);
    const sampled = world.counts.telemetry_sampled!;
    assert.ok(sampled >= 19);
    assert.equal(world.counts.telemetry_frames_sent, Math.floor(sampled / 4));
    assert.equal(world.counts.telemetry_batch_frames_sent, world.counts.telemetry_frames_sent);
    assert.equal(world.counts.telemetry_samples_sent, 4 * world.counts.telemetry_frames_sent!);
    assert.equal(world.counts.telemetry_stored, world.counts.telemetry_samples_sent, 'the samples are rows, not the frames');
    assert.equal(world.telemetry.bufferedTotal(), sampled - world.counts.telemetry_samples_sent!, 'the rest waits in the buffer');
    // In each frame the samples waited 3, 2, 1 and 0 intervals, plus one 5 ms link.
    const delay = world.telemetry.storageDelay.summary();
    assert.equal(delay.count, world.counts.telemetry_stored);
    assert.equal(delay.maxMs, 3_005);
  });

  it('sends a partial batch after the batch delay, and flushes the buffer in frames of up to K at the next AUTH_ACK', () => {
    const world = startedWorld(testScenario({ agents: 1, telemetryIntervalMs: 1_000, telemetrySamplesPerFrame: 8, telemetryBatchDelayMs: 2_500 }));
    world.runUntil(10_000);
    // The delay fires before 8 samples gather: frames of 3 samples (or 2 around the first).
    assert.ok(world.counts.telemetry_frames_sent! >= 2);
    assert.ok(world.counts.telemetry_samples_sent! > world.counts.telemetry_frames_sent!);
    assert.ok(world.telemetry.storageDelay.summary().maxMs! <= 2_500 + 5);
    const framesBefore = world.counts.telemetry_frames_sent!;
    const samplesBefore = world.counts.telemetry_samples_sent!;
    world.presence.leave(0, 20_000);
    world.runUntil(31_000);
    // Away 20 s: about 20 samples buffered, flushed at AUTH_ACK as frames of 8, 8 and the rest.
    const flushed = world.counts.telemetry_samples_sent! - samplesBefore;
    assert.ok(flushed >= 18);
    assert.ok(world.counts.telemetry_frames_sent! - framesBefore >= 3 && world.counts.telemetry_frames_sent! - framesBefore <= 4);
    world.runUntil(31_100);
    assert.equal(world.counts.telemetry_stored, world.counts.telemetry_samples_sent);
  });

  it('without telemetrySamplesPerFrame sends one frame per sample (frames = samples) and reports no storage delay', () => {
    const world = startedWorld(testScenario({ agents: 3, telemetryIntervalMs: 1_000 }));
    world.runUntil(10_000);
    assert.equal(world.counts.telemetry_frames_sent, world.counts.telemetry_samples_sent);
    assert.equal(world.counts.telemetry_batch_frames_sent, 0);
    assert.equal(world.telemetry.batching, false);
  });
});
