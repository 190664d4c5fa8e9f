import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { AgentCoreOptions } from '../agent-core.js';
import { UnackedTelemetry } from './unacked-telemetry.js';
import { AgentTelemetryHarness, settle, telemetryIntervalMs, type GatewayMessage } from './telemetry-test-support.js';

/**
 * The agent's side of TELEMETRY_ACK (decision 0004, "Acknowledgements") on virtual time: samples
 * sent on a session that agreed acks are kept until acknowledged, the unacknowledged ones are sent
 * again first in the next session (same sampled_at and metrics, in order), within
 * telemetryUnackedMax (the overflow counted).
 */
interface Sample { sampledAt: number; cpu: number }
interface Frame { seq: number; session: number; samples: Sample[] }

class Harness extends AgentTelemetryHarness {
  /** Every sample the source produced, in order. */
  readonly taken: Sample[] = [];
  /** Telemetry frames the gateways accepted, in order, across sessions. */
  readonly frames: Frame[] = [];
  session = 0;

  constructor() {
    super('dev-ack', 23);
  }

  protected override sampled(sampledAt: number, cpu: number): void {
    this.taken.push({ sampledAt, cpu });
  }

  /** A new session with a gateway that sends acks (`gatewayAcks`) or an older one that does not. */
  connect(gatewayAcks = true, samplesMax = 0, failTelemetrySendAt = 0): void {
    this.session += 1;
    let telemetrySends = 0;
    this.openSession(this.session, samplesMax, gatewayAcks ? { telemetryAcks: true } : {}, (envelope, gateway) => {
      // A transport that fails (a socket that broke under the write) on this session's Nth telemetry frame.
      if (envelope.type === 'TELEMETRY' || envelope.type === 'TELEMETRY_BATCH') {
        telemetrySends += 1;
        if (telemetrySends === failTelemetrySendAt) {
          gateway.transportLost(this.time.nowMs());
          throw new Error('socket write failed');
        }
      }
    });
  }

  protected override accepted(message: GatewayMessage, session: number): void {
    const { type, body, envelope } = message;
    if (type === 'TELEMETRY') {
      const t = body as MessageBody<'TELEMETRY'>;
      this.frames.push({ seq: envelope.seq, session, samples: [{ sampledAt: t.sampled_at, cpu: t.metrics.cpu_pct }] });
    }
    if (type === 'TELEMETRY_BATCH') {
      const samples = (body as MessageBody<'TELEMETRY_BATCH'>).samples.map((s) => ({ sampledAt: s.sampled_at, cpu: s.metrics.cpu_pct }));
      this.frames.push({ seq: envelope.seq, session, samples });
    }
  }

  /** The gateway acknowledges the session's frames through `seq` (as it would once their append succeeded). */
  ack(seq: number): void {
    assert.ok(this.gateway.sendTelemetryAck(seq, this.time.nowMs()));
    this.pump();
  }

  framesOf(session: number): Frame[] {
    return this.frames.filter((f) => f.session === session);
  }

  samplesOf(session: number): Sample[] {
    return this.framesOf(session).flatMap((f) => f.samples);
  }
}

async function harness(options: Partial<AgentCoreOptions>, gatewayAcks = true, samplesMax = 0): Promise<Harness> {
  const h = new Harness();
  h.start(options);
  await settle();
  h.connect(gatewayAcks, samplesMax);
  await settle();
  assert.equal(h.core.isReady, true);
  return h;
}

describe('agent telemetry acknowledgements', () => {
  it('are offered at AUTH only when configured: by default AUTH is as before and nothing is kept', async () => {
    const off = await harness({});
    await off.advance(3 * telemetryIntervalMs);
    assert.equal(Object.hasOwn(off.auths[0]!, 'telemetry_ack'), false);
    assert.equal(off.core.telemetrySamplesUnacked, 0);
    const on = await harness({ telemetryAcks: true });
    assert.equal(on.auths[0]!.telemetry_ack, true);
  });

  it('keeps the samples sent until acknowledged, and an ack forgets exactly those it covers', async () => {
    const h = await harness({ telemetryAcks: true });
    await h.advance(5 * telemetryIntervalMs);
    const sent = h.framesOf(1);
    assert.ok(sent.length >= 4, `${sent.length} frames`);
    assert.equal(h.core.telemetrySamplesUnacked, sent.length);
    h.ack(sent[1]!.seq);
    assert.equal(h.core.telemetrySamplesUnacked, sent.length - 2);
    h.ack(sent[sent.length - 1]!.seq);
    assert.equal(h.core.telemetrySamplesUnacked, 0);
    assert.deepEqual(h.refusals, []);
  });

  it('sends the unacknowledged samples again first in the next session, unchanged and in order; the acknowledged ones never', async () => {
    const h = await harness({ telemetryAcks: true });
    await h.advance(5 * telemetryIntervalMs);
    const first = h.framesOf(1);
    h.ack(first[1]!.seq);
    const unacked = first.slice(2).flatMap((f) => f.samples);
    assert.ok(unacked.length >= 2);
    h.disconnect();
    assert.equal(h.core.telemetrySamplesUnacked, 0, 'handed back to the buffer');
    assert.equal(h.core.telemetrySamplesBuffered, unacked.length);
    // Away for two intervals: the samples taken meanwhile are buffered behind the unacknowledged ones.
    await h.advance(2 * telemetryIntervalMs);
    const takenAway = h.taken.slice(h.taken.length - h.core.telemetrySamplesBuffered + unacked.length);
    h.connect();
    await settle();
    const second = h.samplesOf(2);
    assert.deepEqual(second.slice(0, unacked.length), unacked, 'the unacknowledged samples first, as they were sent');
    assert.deepEqual(second.slice(unacked.length), takenAway, 'then those taken while away, in order');
    // Every sample taken reached a gateway; the acknowledged ones once.
    const all = [...h.samplesOf(1), ...second];
    for (const sample of h.taken) assert.ok(all.some((s) => s.sampledAt === sample.sampledAt && s.cpu === sample.cpu));
    for (const sample of first.slice(0, 2).flatMap((f) => f.samples)) assert.equal(second.filter((s) => s.sampledAt === sample.sampledAt).length, 0);
    assert.deepEqual(h.refusals, []);
    assert.equal(h.core.telemetrySamplesDropped, 0);
  });

  it('bounds the unacknowledged samples (telemetryUnackedMax): the oldest are forgotten and counted', async () => {
    const h = await harness({ telemetryAcks: true, telemetryUnackedMax: 3 });
    await h.advance(6 * telemetryIntervalMs);
    const sent = h.samplesOf(1);
    assert.ok(sent.length >= 5);
    assert.equal(h.core.telemetrySamplesUnacked, 3);
    assert.equal(h.core.telemetrySamplesUnackedDropped, sent.length - 3);
    h.disconnect();
    h.connect();
    await settle();
    assert.deepEqual(h.samplesOf(2).slice(0, 3), sent.slice(-3), 'the newest three sent again');
  });

  it('with an older gateway (no telemetry_ack in AUTH_ACK) keeps nothing and sends nothing again', async () => {
    const h = await harness({ telemetryAcks: true }, false);
    await h.advance(4 * telemetryIntervalMs);
    assert.ok(h.samplesOf(1).length >= 3);
    assert.equal(h.core.telemetrySamplesUnacked, 0);
    h.disconnect();
    h.connect(false);
    await settle();
    assert.deepEqual(h.samplesOf(2), []);
  });

  it('a send failing within the resend burst leaves the rest of the burst buffered for the next session, none dropped', async () => {
    // Not batching: after AUTH_ACK the buffer goes one TELEMETRY frame per sample. The second send
    // throws: the session closes; the one sent (unacked) and the one that failed come back, and the
    // four not yet sent must still be in the buffer, not sent on the closed connection and lost.
    const h = await harness({ telemetryAcks: true });
    await h.advance(6 * telemetryIntervalMs);
    const first = h.samplesOf(1);
    assert.ok(first.length >= 6, `${first.length} samples`);
    h.disconnect();
    assert.equal(h.core.telemetrySamplesBuffered, first.length);
    h.connect(true, 0, 2);
    await settle();
    assert.equal(h.core.isReady, false, 'the failed send closed the session');
    assert.deepEqual(h.samplesOf(2), first.slice(0, 1), 'one sent before the failure');
    assert.equal(h.core.telemetrySamplesDropped, 0);
    assert.equal(h.core.telemetrySamplesBuffered, first.length, 'the whole burst kept for the next session');
    h.connect();
    await settle();
    assert.deepEqual(h.samplesOf(3), first, 'all of them, in order, in the next session');
    assert.deepEqual(h.refusals, []);
  });

  it('a send failing within a batched resend keeps the later batches buffered', async () => {
    const h = await harness({ telemetryAcks: true, telemetrySamplesPerFrameMax: 2, telemetryBatchDelayMs: 3_600_000 }, true, 8);
    await h.advance(6 * telemetryIntervalMs);
    const first = h.samplesOf(1);
    assert.ok(first.length >= 6, `${first.length} samples`);
    h.disconnect();
    h.connect(true, 8, 2);
    await settle();
    assert.equal(h.core.isReady, false);
    assert.deepEqual(h.samplesOf(2), first.slice(0, 2));
    assert.equal(h.core.telemetrySamplesDropped, 0);
    assert.equal(h.core.telemetrySamplesBuffered, first.length);
    h.connect(true, 8);
    await settle();
    assert.deepEqual(h.samplesOf(3), first);
  });

  it('keeps a batch under its frame seq: acknowledged whole, and sent again whole', async () => {
    const h = await harness({ telemetryAcks: true, telemetrySamplesPerFrameMax: 3, telemetryBatchDelayMs: 3_600_000 }, true, 8);
    await h.advance(7 * telemetryIntervalMs);
    const batches = h.framesOf(1);
    assert.ok(batches.length >= 2 && batches.every((f) => f.samples.length === 3), JSON.stringify(batches.map((f) => f.samples.length)));
    h.ack(batches[0]!.seq);
    assert.equal(h.core.telemetrySamplesUnacked, (batches.length - 1) * 3);
    const unacked = batches.slice(1).flatMap((f) => f.samples);
    h.disconnect();
    h.connect(true, 8);
    await settle();
    assert.deepEqual(h.samplesOf(2).slice(0, unacked.length), unacked);
    assert.deepEqual(h.refusals, []);
  });
});

describe('UnackedTelemetry', () => {
  const s = (at: number) => ({ sampledAtMs: at, metrics: at });
  it('forgets on a cumulative ack, keeps order, and trims the oldest (part of a batch too) past its bound', () => {
    const u = new UnackedTelemetry<number>(4);
    assert.equal(u.sent(3, [s(1)]), 0);
    assert.equal(u.sent(5, [s(2), s(3)]), 0);
    assert.equal(u.sent(6, [s(4), s(5)]), 1, 'one over: the oldest frame goes');
    assert.equal(u.size, 4);
    assert.equal(u.sent(9, [s(6)]), 1, 'one over: the oldest sample of the batch goes, the rest stay');
    assert.equal(u.acked(4), 0, 'no frame numbered 4 or below is left');
    assert.equal(u.acked(5), 1);
    assert.deepEqual(u.takeAll().map((x) => x.sampledAtMs), [4, 5, 6]);
    assert.equal(u.size, 0);
    assert.throws(() => new UnackedTelemetry(0), { code: 'PROTO_INVALID_ARGUMENT' });
  });
});
