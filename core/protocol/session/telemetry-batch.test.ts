import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createNobleEd25519Provider } from '../../crypto/ed25519-noble.js';
import { createNobleSessionKeyCrypto } from '../../crypto/session-crypto-noble.js';
import { SeededRandom } from '../../random/prng.js';
import { decodeEnvelope, encodeEnvelope, envelopeMacAlg, signEnvelope } from '../envelope.js';
import type { JsonObject } from '../json-value.js';
import { telemetryBatchLimits } from '../limits.js';
import type { MessageBody } from '../messages/catalog.js';
import { validateMessageBody } from '../messages/validate.js';
import { AgentConnection, type AgentEvent } from './agent-connection.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from './gateway-connection.js';
import type { SessionMacOptions } from './session-mac.js';
import { pumpFrames } from './test-support.js';

/** TELEMETRY_BATCH (decision 0004, "Batches"): only under the session MAC, bounded by what the gateway announced, chained per frame. */
const provider = createNobleEd25519Provider();
const crypto = createNobleSessionKeyCrypto();
const random = new SeededRandom(1717);
const deviceSeed = random.bytes(32);
const gatewaySeed = random.bytes(32);
const t0 = 1_764_000_000_000;
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const metrics = (cpu: number) => ({ cpu_pct: cpu, mem_pct: 20, disk_pct: 30, net_rx_bytes_per_sec: 1, net_tx_bytes_per_sec: 2 });
const samples = (count: number, fromMs = t0) => Array.from({ length: count }, (_, i) => ({ sampled_at: fromMs + i * 10, metrics: metrics(i % 100) }));

interface PairOptions { agentMac?: boolean; gatewayMac?: boolean; agentBatch?: boolean; gatewaySamplesMax?: number }

function pair(options: PairOptions = {}) {
  const mac: SessionMacOptions = { crypto, random };
  const gateway = new GatewayConnection({
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
    telemetrySha256Hex: sha256Hex, telemetrySamplesPerFrameMax: options.gatewaySamplesMax ?? 8,
    ...(options.gatewayMac === false ? {} : { sessionMac: mac }),
  });
  const agent = new AgentConnection({
    deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: deviceSeed, provider },
    resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
    agentVersion: '0.1.0', lastCommandSeq: 0, telemetryBatch: options.agentBatch ?? true, ...(options.agentMac === false ? {} : { sessionMac: mac }),
  });
  gateway.start(t0);
  const { agentEvents } = pumpFrames(gateway, agent, t0);
  const ready = agentEvents.find((e) => e.kind === 'ready');
  return { gateway, agent, ready: ready?.kind === 'ready' ? ready : undefined };
}

const refusedCodes = (events: readonly (GatewayEvent | AgentEvent)[]) => events.flatMap((e) => (e.kind === 'refused' ? [e.error.code] : []));
const messageTypes = (events: readonly GatewayEvent[]) => events.flatMap((e) => (e.kind === 'message' ? [e.message.type] : []));

/** A batch frame sent by the agent, taken off its queue. */
function batchFrame(agent: AgentConnection, body: MessageBody<'TELEMETRY_BATCH'>, nowMs = t0 + 1): Uint8Array {
  agent.sendTelemetryBatch(body, nowMs);
  const frames = agent.takeOutgoing();
  assert.equal(frames.length, 1);
  return frames[0]!;
}

/** The frame with `edit` applied to its body and its MAC or signature left as it was. */
function withBody(frame: Uint8Array, edit: (body: JsonObject) => void): Uint8Array {
  const envelope = decodeEnvelope(frame);
  const body = structuredClone(envelope.body) as JsonObject;
  edit(body);
  return encodeEnvelope({ ...envelope, body });
}

describe('TELEMETRY_BATCH', () => {
  it('is negotiated at AUTH: announced in AUTH_ACK to an agent that asks on a MACd session, and accepted under the MAC with every sample', () => {
    const { gateway, agent, ready } = pair({ gatewaySamplesMax: 8 });
    assert.equal(ready?.telemetrySamplesMax, 8);
    assert.equal(agent.telemetrySamplesMax, 8);
    const body = { samples: samples(8) };
    const frame = batchFrame(agent, body);
    assert.equal(decodeEnvelope(frame).sig.alg, envelopeMacAlg);
    const events = gateway.receive(frame, t0 + 2);
    assert.deepEqual(messageTypes(events), ['TELEMETRY_BATCH']);
    const message = events.find((e) => e.kind === 'message');
    assert.deepEqual(message?.kind === 'message' ? message.message.body : undefined, body);
  });

  it('is not announced to an agent that did not ask, nor without the MAC, nor by a gateway that accepts none; the agent then cannot send one', () => {
    for (const options of [{ agentBatch: false }, { agentMac: false }, { gatewayMac: false }, { gatewaySamplesMax: 0 }] satisfies PairOptions[]) {
      const { gateway, agent, ready } = pair(options);
      assert.equal(gateway.state, 'ready', JSON.stringify(options));
      assert.equal(ready?.telemetrySamplesMax, undefined, JSON.stringify(options));
      assert.throws(() => agent.sendTelemetryBatch({ samples: samples(1) }, t0 + 1), { code: 'PROTO_TELEMETRY_BATCH_TOO_LARGE' });
    }
  });

  it('keeps AUTH as an older gateway knows it unless the agent batches (no telemetry_batch member)', () => {
    const gateway = new GatewayConnection({
      gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
      signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
      sessionMac: { crypto, random },
    });
    for (const telemetryBatch of [false, true]) {
      const agent = new AgentConnection({
        deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: deviceSeed, provider }, resolveGatewayKey: () => provider.publicKeyFromSeed(gatewaySeed),
        agentVersion: '0.1.0', lastCommandSeq: 0, telemetryBatch, sessionMac: { crypto, random },
      });
      const challenge = new GatewayConnection({
        gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
        signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
      });
      challenge.start(t0);
      agent.receive(challenge.takeOutgoing()[0]!, t0);
      const auth = decodeEnvelope(agent.takeOutgoing()[0]!).body as MessageBody<'AUTH'>;
      assert.equal(auth.telemetry_batch, telemetryBatch ? true : undefined);
    }
    assert.equal(gateway.state, 'connecting');
  });

  it('is refused on a session without the MAC, even when signed by the device key', () => {
    const { gateway } = pair({ agentMac: false });
    assert.equal(gateway.sessionMacAgreed, false);
    const envelope = signEnvelope({
      fields: { v: 1, type: 'TELEMETRY_BATCH', id: 'a5', device_id: 'dev-1', session_id: 'sess_1', seq: 5, ts: t0 + 1, body: { samples: samples(2) } as unknown as JsonObject },
      kid: deviceKid('dev-1'), seed: deviceSeed, provider,
    });
    assert.deepEqual(refusedCodes(gateway.receive(encodeEnvelope(envelope), t0 + 2)), ['PROTO_TELEMETRY_BATCH_WITHOUT_MAC']);
  });

  it('refuses a batch over what the gateway announced, and one whose sampled_at goes back, with typed errors; the session goes on', () => {
    const { gateway, agent } = pair({ gatewaySamplesMax: 4 });
    // The agent holds itself to the bound (nothing sent); a modified agent that does not is refused by the gateway.
    assert.throws(() => agent.sendTelemetryBatch({ samples: samples(5) }, t0 + 1), { code: 'PROTO_TELEMETRY_BATCH_TOO_LARGE' });
    assert.equal(agent.takeOutgoing().length, 0);
    (agent as unknown as { sendFrame(type: string, body: unknown, nowMs: number): void }).sendFrame('TELEMETRY_BATCH', { samples: samples(5) }, t0 + 1);
    const over = agent.takeOutgoing()[0]!;
    assert.deepEqual(refusedCodes(gateway.receive(over, t0 + 2)), ['PROTO_TELEMETRY_BATCH_TOO_LARGE']);
    const unordered = samples(3);
    unordered[2]!.sampled_at = unordered[0]!.sampled_at - 1;
    const backwards = batchFrame(agent, { samples: unordered, prev_hash: sha256Hex(over) }, t0 + 3);
    assert.deepEqual(refusedCodes(gateway.receive(backwards, t0 + 4)), ['PROTO_TELEMETRY_BATCH_UNORDERED']);
    // Equal times are in order (a sensor read twice in one millisecond); the refused frames were links the agent chained on.
    const same = samples(3).map((s) => ({ ...s, sampled_at: t0 }));
    const next = batchFrame(agent, { samples: same, prev_hash: sha256Hex(backwards) }, t0 + 5);
    const events = gateway.receive(next, t0 + 6);
    assert.deepEqual(refusedCodes(events), []);
    assert.deepEqual(messageTypes(events), ['TELEMETRY_BATCH']);
    assert.equal(gateway.state, 'ready');
  });

  it('is refused by the schema past the protocol bound, whatever was announced', () => {
    assert.throws(() => validateMessageBody('TELEMETRY_BATCH', { samples: samples(telemetryBatchLimits.samplesPerFrameMax + 1) }), { code: 'PROTO_SCHEMA_INVALID' });
    assert.throws(() => validateMessageBody('TELEMETRY_BATCH', { samples: [] }), { code: 'PROTO_SCHEMA_INVALID' });
    assert.doesNotThrow(() => validateMessageBody('TELEMETRY_BATCH', { samples: samples(telemetryBatchLimits.samplesPerFrameMax) }));
  });

  it('detects a replayed, a reordered and a dropped batch as it does a single frame', () => {
    const { gateway, agent } = pair();
    const first = batchFrame(agent, { samples: samples(3) }, t0 + 1);
    const second = batchFrame(agent, { samples: samples(3, t0 + 100), prev_hash: sha256Hex(first) }, t0 + 2);
    const third = batchFrame(agent, { samples: samples(3, t0 + 200), prev_hash: sha256Hex(second) }, t0 + 3);
    const fourth = batchFrame(agent, { samples: samples(3, t0 + 300), prev_hash: sha256Hex(third) }, t0 + 4);
    // Reordered: the second arrives before the first; the first is then below the window's highest seq.
    assert.deepEqual(messageTypes(gateway.receive(second, t0 + 5)), ['TELEMETRY_BATCH'], 'the first of the session anchors the chain');
    assert.deepEqual(refusedCodes(gateway.receive(first, t0 + 5)), ['PROTO_SEQ_OUT_OF_ORDER']);
    // Replayed.
    assert.deepEqual(refusedCodes(gateway.receive(second, t0 + 5)), ['PROTO_REPLAY']);
    // Dropped: the third never arrives, the fourth names it.
    assert.deepEqual(refusedCodes(gateway.receive(fourth, t0 + 6)), ['PROTO_TELEMETRY_CHAIN_BROKEN']);
  });

  it('chains TELEMETRY and TELEMETRY_BATCH frames in one chain', () => {
    const { gateway, agent } = pair();
    agent.sendTelemetry({ sampled_at: t0, metrics: metrics(1) }, t0 + 1);
    const single = agent.takeOutgoing()[0]!;
    const batch = batchFrame(agent, { samples: samples(2), prev_hash: sha256Hex(single) }, t0 + 2);
    agent.sendTelemetry({ sampled_at: t0 + 50, metrics: metrics(1), prev_hash: sha256Hex(batch) }, t0 + 3);
    const after = agent.takeOutgoing()[0]!;
    const events = [single, batch, after].flatMap((frame) => gateway.receive(frame, t0 + 4));
    assert.deepEqual(messageTypes(events), ['TELEMETRY', 'TELEMETRY_BATCH', 'TELEMETRY']);
    assert.deepEqual(refusedCodes(events), []);
  });

  it('has the MAC cover every sample: a byte changed in the second sample, or a sample added or removed, is refused', () => {
    const { gateway, agent } = pair();
    const frame = batchFrame(agent, { samples: samples(3) });
    const forgeries = [
      withBody(frame, (body) => { ((body.samples as JsonObject[])[1]!.metrics as JsonObject).cpu_pct = 99; }),
      withBody(frame, (body) => { (body.samples as JsonObject[])[1]!.sampled_at = t0 + 11; }),
      withBody(frame, (body) => { (body.samples as JsonObject[]).pop(); }),
      withBody(frame, (body) => { (body.samples as JsonObject[]).push({ sampled_at: t0 + 90, metrics: metrics(5) }); }),
    ];
    for (const forged of forgeries) assert.deepEqual(refusedCodes(gateway.receive(forged, t0 + 2)), ['CRYPTO_SIGNATURE_INVALID']);
    assert.deepEqual(messageTypes(gateway.receive(frame, t0 + 2)), ['TELEMETRY_BATCH'], 'the frame as sent');
  });
});
