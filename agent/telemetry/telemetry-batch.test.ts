import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { AgentCoreOptions } from '../agent-core.js';
import { AgentTelemetryHarness, settle, telemetryIntervalMs, type GatewayMessage } from './telemetry-test-support.js';

/**
 * The agent's telemetry batches (decision 0004, "Batches") on virtual time: buffered until
 * telemetrySamplesPerFrameMax or telemetryBatchDelayMs, sent as TELEMETRY_BATCH within what the
 * gateway announced, kept across sessions within telemetryBufferMax (the overflow counted).
 */
type Frame = { type: 'TELEMETRY' | 'TELEMETRY_BATCH'; sampledAt: number[]; receivedAtMs: number; session: number };

class Harness extends AgentTelemetryHarness {
  /** When each sample was taken (the source is called at its sampled_at: no skew). */
  readonly sampledAt: number[] = [];
  /** Telemetry frames the gateways accepted, in order, across sessions. */
  readonly frames: Frame[] = [];
  #sessions = 0;

  constructor(readonly gatewaySamplesMax: number) {
    super('dev-batch', 11);
  }

  protected override sampled(sampledAtMs: number): void {
    this.sampledAt.push(sampledAtMs);
  }

  connect(): void {
    this.#sessions += 1;
    this.openSession(this.#sessions, this.gatewaySamplesMax);
  }

  protected override accepted(message: GatewayMessage, session: number): void {
    const { type, body } = message;
    if (type === 'TELEMETRY') this.frames.push({ type, sampledAt: [(body as MessageBody<'TELEMETRY'>).sampled_at], receivedAtMs: this.time.nowMs(), session });
    if (type === 'TELEMETRY_BATCH') {
      this.frames.push({ type, sampledAt: (body as MessageBody<'TELEMETRY_BATCH'>).samples.map((s) => s.sampled_at), receivedAtMs: this.time.nowMs(), session });
    }
  }

  received(): number[] {
    return this.frames.flatMap((f) => f.sampledAt);
  }
}

async function harness(gatewaySamplesMax: number, options: Partial<AgentCoreOptions>): Promise<Harness> {
  const h = new Harness(gatewaySamplesMax);
  h.start(options);
  await settle();
  h.connect();
  await settle();
  assert.equal(h.core.isReady, true);
  return h;
}

describe('agent telemetry batches', () => {
  it('off by default: AUTH does not ask, and each sample is its own TELEMETRY frame', async () => {
    const h = await harness(64, {});
    await h.advance(6 * telemetryIntervalMs);
    assert.equal(h.auths[0]!.telemetry_batch, undefined);
    assert.ok(h.frames.length >= 5 && h.frames.every((f) => f.type === 'TELEMETRY'));
    assert.deepEqual(h.received(), h.sampledAt);
  });

  it('sends a TELEMETRY_BATCH once samplesPerFrameMax samples are buffered, in order and chained, nothing lost', async () => {
    const h = await harness(64, { telemetrySamplesPerFrameMax: 4, telemetryBatchDelayMs: 3_600_000 });
    await h.advance(12 * telemetryIntervalMs);
    assert.equal(h.auths[0]!.telemetry_batch, true);
    assert.ok(h.frames.length >= 2);
    assert.ok(h.frames.every((f) => f.type === 'TELEMETRY_BATCH' && f.sampledAt.length === 4), JSON.stringify(h.frames.map((f) => [f.type, f.sampledAt.length])));
    assert.deepEqual(h.refusals, [], 'every frame MACd, in seq order and chained');
    // Every sample taken is sent or still buffered (fewer than a batch), in the order taken.
    assert.deepEqual([...h.received(), ...h.sampledAt.slice(h.received().length)], h.sampledAt);
    assert.equal(h.core.telemetrySamplesBuffered, h.sampledAt.length - h.received().length);
    assert.ok(h.core.telemetrySamplesBuffered < 4);
    assert.equal(h.core.telemetrySamplesDropped, 0);
  });

  it('a device clock stepping back mid-batch starts a new frame: no batch goes back in time, no sample lost', async () => {
    let stepMs = 0;
    const h = new Harness(64);
    h.start({ telemetrySamplesPerFrameMax: 4, telemetryBatchDelayMs: 3_600_000, clock: { nowMs: () => h.time.nowMs() + stepMs } });
    await settle();
    h.connect();
    await settle();
    assert.equal(h.core.isReady, true);
    await h.advance(2 * telemetryIntervalMs);
    // An NTP correction: the device clock goes 20 s back (four sample intervals) between two samples of a filling batch.
    stepMs = -4 * telemetryIntervalMs;
    await h.advance(12 * telemetryIntervalMs);
    assert.deepEqual(h.refusals, [], 'no batch refused PROTO_TELEMETRY_BATCH_UNORDERED');
    for (const frame of h.frames) {
      assert.ok(frame.sampledAt.every((at, i) => i === 0 || at >= frame.sampledAt[i - 1]!), `a frame going back in time: ${frame.sampledAt.join(',')}`);
    }
    assert.ok(h.frames.some((f) => f.sampledAt.length < 4), 'the step split a batch');
    assert.equal(h.received().length + h.core.telemetrySamplesBuffered, h.sampledAt.length, 'every sample taken is sent or still buffered');
    assert.equal(h.core.telemetrySamplesDropped, 0);
  });

  it('holds itself to what the gateway announced when that is fewer', async () => {
    const h = await harness(3, { telemetrySamplesPerFrameMax: 16, telemetryBatchDelayMs: 3_600_000 });
    await h.advance(10 * telemetryIntervalMs);
    assert.ok(h.frames.length >= 2);
    assert.ok(h.frames.every((f) => f.type === 'TELEMETRY_BATCH' && f.sampledAt.length === 3));
    assert.deepEqual(h.refusals, []);
  });

  it('sends what is buffered telemetryBatchDelayMs after the first sample of a batch, however few', async () => {
    const delayMs = 12_000;
    const h = await harness(64, { telemetrySamplesPerFrameMax: 32, telemetryBatchDelayMs: delayMs });
    await h.advance(20 * telemetryIntervalMs);
    assert.ok(h.frames.length >= 3, `${h.frames.length} frames`);
    for (const frame of h.frames) {
      assert.ok(frame.sampledAt.length < 32);
      assert.ok(frame.receivedAtMs - frame.sampledAt[0]! <= delayMs, `a batch waited ${frame.receivedAtMs - frame.sampledAt[0]!} ms`);
      assert.ok(frame.receivedAtMs - frame.sampledAt[0]! >= delayMs - telemetryIntervalMs, 'it waited for the delay, not less');
    }
    assert.deepEqual(h.refusals, []);
    assert.deepEqual(h.received(), h.sampledAt.slice(0, h.received().length));
  });

  it('to a gateway that announces no batches, sends one TELEMETRY per sample', async () => {
    const h = await harness(0, { telemetrySamplesPerFrameMax: 8, telemetryBatchDelayMs: 3_600_000 });
    await h.advance(6 * telemetryIntervalMs);
    assert.equal(h.auths[0]!.telemetry_batch, true);
    assert.ok(h.frames.length >= 5 && h.frames.every((f) => f.type === 'TELEMETRY'));
    assert.deepEqual(h.received(), h.sampledAt);
    assert.deepEqual(h.refusals, []);
  });

  it('keeps the samples of an unfinished batch and those taken while disconnected for the next session, in batches, chained anew', async () => {
    const h = await harness(64, { telemetrySamplesPerFrameMax: 4, telemetryBatchDelayMs: 3_600_000, telemetryBufferMax: 16 });
    await h.advance(6 * telemetryIntervalMs);
    const beforeDrop = h.sampledAt.length;
    assert.ok(h.core.telemetrySamplesBuffered > 0, 'a batch was filling when the session ended');
    h.disconnect();
    await h.advance(5 * telemetryIntervalMs);
    assert.ok(h.sampledAt.length > beforeDrop);
    h.connect();
    await settle();
    const second = h.frames.filter((f) => f.session === 2);
    assert.ok(second.length >= 2 && second.every((f) => f.type === 'TELEMETRY_BATCH' || f.sampledAt.length === 1));
    assert.ok(second.every((f) => f.sampledAt.length <= 4));
    assert.deepEqual(h.received(), h.sampledAt, 'every sample taken, once, in order, none lost within the bound');
    assert.equal(h.core.telemetrySamplesBuffered, 0);
    assert.equal(h.core.telemetrySamplesDropped, 0);
    assert.deepEqual(h.refusals, []);
  });

  it('past telemetryBufferMax drops the oldest samples and counts them; the rest reach the next session in order', async () => {
    const bufferMax = 6;
    const h = await harness(64, { telemetrySamplesPerFrameMax: 4, telemetryBatchDelayMs: 3_600_000, telemetryBufferMax: bufferMax });
    await h.advance(2 * telemetryIntervalMs);
    h.disconnect();
    await h.advance(15 * telemetryIntervalMs);
    assert.equal(h.core.telemetrySamplesBuffered, bufferMax);
    const sentBefore = h.received().length;
    const dropped = h.sampledAt.length - sentBefore - bufferMax;
    assert.ok(dropped > 0);
    assert.equal(h.core.telemetrySamplesDropped, dropped);
    h.connect();
    await settle();
    assert.deepEqual(h.received().slice(sentBefore), h.sampledAt.slice(-bufferMax), 'the newest bufferMax samples, in order');
    assert.equal(h.core.telemetrySamplesBuffered, 0);
    assert.deepEqual(h.refusals, []);
  });

  it('a clean stop sends the filling batch before the session closes: nothing buffered is dropped with the process', async () => {
    const h = await harness(64, { telemetrySamplesPerFrameMax: 8, telemetryBatchDelayMs: 3_600_000 });
    await h.advance(3 * telemetryIntervalMs);
    const buffered = h.core.telemetrySamplesBuffered;
    assert.ok(buffered > 0 && h.received().length === 0, 'a batch was filling');
    await h.core.stop();
    h.pump();
    assert.equal(h.core.telemetrySamplesBuffered, 0);
    assert.deepEqual(h.received(), h.sampledAt, 'every sample taken reached the gateway, in order');
    assert.deepEqual(h.refusals, []);
  });

  it('refuses options out of range', () => {
    const h = new Harness(64);
    assert.throws(() => h.start({ telemetrySamplesPerFrameMax: 65 }), { code: 'PROTO_INVALID_ARGUMENT' });
    assert.throws(() => h.start({ telemetrySamplesPerFrameMax: 8, telemetryBufferMax: 4 }), { code: 'PROTO_INVALID_ARGUMENT' });
    assert.throws(() => h.start({ telemetrySamplesPerFrameMax: 8, telemetryBatchDelayMs: 0 }), { code: 'PROTO_INVALID_ARGUMENT' });
  });
});
