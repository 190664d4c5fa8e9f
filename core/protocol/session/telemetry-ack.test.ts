import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createNobleEd25519Provider } from '../../crypto/ed25519-noble.js';
import { createNobleSessionKeyCrypto } from '../../crypto/session-crypto-noble.js';
import { SeededRandom } from '../../random/prng.js';
import { decodeEnvelope, encodeEnvelope, envelopeMacAlg, signEnvelope } from '../envelope.js';
import type { JsonObject } from '../json-value.js';
import type { MessageBody } from '../messages/catalog.js';
import { validateMessageBody } from '../messages/validate.js';
import { AgentConnection, type AgentEvent } from './agent-connection.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from './gateway-connection.js';
import type { SessionMacOptions } from './session-mac.js';
import { pumpFrames } from './test-support.js';

/** TELEMETRY_ACK (decision 0004, "Acknowledgements"): negotiated at AUTH, cumulative, authenticated like the gateway's other session frames. */
const provider = createNobleEd25519Provider();
const crypto = createNobleSessionKeyCrypto();
const random = new SeededRandom(4242);
const deviceSeed = random.bytes(32);
const gatewaySeed = random.bytes(32);
const t0 = 1_764_000_000_000;
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const metrics = (cpu: number) => ({ cpu_pct: cpu, mem_pct: 20, disk_pct: 30, net_rx_bytes_per_sec: 1, net_tx_bytes_per_sec: 2 });

interface PairOptions { agentAck?: boolean; gatewayAcks?: boolean; mac?: boolean }

function newGateway(options: PairOptions) {
  const mac: SessionMacOptions = { crypto, random };
  return new GatewayConnection({
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
    telemetrySha256Hex: sha256Hex, ...(options.gatewayAcks === false ? {} : { telemetryAcks: true }), ...(options.mac === false ? {} : { sessionMac: mac }),
  });
}

function newAgent(options: PairOptions) {
  return new AgentConnection({
    deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: deviceSeed, provider },
    resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
    agentVersion: '0.1.0', lastCommandSeq: 0, ...(options.agentAck === false ? {} : { telemetryAck: true }),
    ...(options.mac === false ? {} : { sessionMac: { crypto, random } }),
  });
}

function pair(options: PairOptions = {}) {
  const gateway = newGateway(options);
  const agent = newAgent(options);
  gateway.start(t0);
  const { agentEvents, gatewayEvents } = pumpFrames(gateway, agent, t0);
  const ready = agentEvents.find((e) => e.kind === 'ready');
  const authenticated = gatewayEvents.find((e) => e.kind === 'authenticated');
  return {
    gateway, agent, ready: ready?.kind === 'ready' ? ready : undefined, authenticated: authenticated?.kind === 'authenticated' ? authenticated : undefined,
  };
}

const refusedCodes = (events: readonly (GatewayEvent | AgentEvent)[]) => events.flatMap((e) => (e.kind === 'refused' ? [e.error.code] : []));
const acks = (events: readonly AgentEvent[]) => events.flatMap((e) => (e.kind === 'telemetry_ack' ? [e.throughSeq] : []));

/** Sends `count` TELEMETRY frames from the agent and hands them to the gateway; returns their seqs. */
function sendSamples(gateway: GatewayConnection, agent: AgentConnection, count: number, atMs = t0 + 1): number[] {
  const seqs: number[] = [];
  let prevHash: string | undefined;
  for (let i = 0; i < count; i++) {
    seqs.push(agent.sendTelemetry({ sampled_at: atMs + i, metrics: metrics(i), ...(prevHash === undefined ? {} : { prev_hash: prevHash }) }, atMs + i));
    for (const frame of agent.takeOutgoing()) {
      prevHash = sha256Hex(frame);
      assert.deepEqual(refusedCodes(gateway.receive(frame, atMs + i)), []);
    }
  }
  assert.equal(gateway.takeOutgoing().length, 0);
  return seqs;
}

/** The gateway's next frame (an ack), taken off its queue. */
function gatewayFrame(gateway: GatewayConnection): Uint8Array {
  const frames = gateway.takeOutgoing();
  assert.equal(frames.length, 1);
  return frames[0]!;
}

describe('TELEMETRY_ACK', () => {
  it('has a strict schema: through_seq a safe non-negative integer, nothing else', () => {
    assert.doesNotThrow(() => validateMessageBody('TELEMETRY_ACK', { through_seq: 0 }));
    assert.doesNotThrow(() => validateMessageBody('TELEMETRY_ACK', { through_seq: Number.MAX_SAFE_INTEGER }));
    for (const body of [{}, { through_seq: -1 }, { through_seq: 1.5 }, { through_seq: '3' }, { through_seq: Number.MAX_SAFE_INTEGER + 1 }, { through_seq: 3, samples: 1 }]) {
      assert.throws(() => validateMessageBody('TELEMETRY_ACK', body), { code: 'PROTO_SCHEMA_INVALID' }, JSON.stringify(body));
    }
    assert.throws(() => validateMessageBody('AUTH_ACK', {
      session_id: 'sess_1', session_token: 't', heartbeat_interval_ms: 1000, seq_start: 1, server_time_ms: t0, clock_offset_ms: 0, telemetry_ack: false,
    }), { code: 'PROTO_SCHEMA_INVALID' }, 'AUTH_ACK announces acks with true only');
  });

  it('is negotiated at AUTH: offered by the agent, announced in AUTH_ACK, and a cumulative ack reaches the agent under the session MAC', () => {
    const { gateway, agent, ready, authenticated } = pair();
    assert.equal(ready?.telemetryAck, true);
    assert.equal(authenticated?.telemetryAck, true);
    assert.equal(agent.telemetryAckAgreed, true);
    assert.equal(gateway.telemetryAckAgreed, true);
    const seqs = sendSamples(gateway, agent, 3);
    assert.ok(gateway.sendTelemetryAck(seqs[1]!, t0 + 10));
    const frame = gatewayFrame(gateway);
    assert.equal(decodeEnvelope(frame).sig.alg, envelopeMacAlg, 'MACd like the HEARTBEAT echo');
    assert.deepEqual(acks(agent.receive(frame, t0 + 11)), [seqs[1]]);
    assert.equal(gateway.sendTelemetryAck(seqs[1]!, t0 + 12), false, 'nothing new to acknowledge: nothing sent');
    assert.equal(gateway.takeOutgoing().length, 0);
    assert.ok(gateway.sendTelemetryAck(seqs[2]!, t0 + 13));
    assert.deepEqual(acks(agent.receive(gatewayFrame(gateway), t0 + 14)), [seqs[2]]);
  });

  it('is signed by the gateway key on a session without the MAC, and still taken', () => {
    const { gateway, agent, ready } = pair({ mac: false });
    assert.equal(ready?.telemetryAck, true);
    const seqs = sendSamples(gateway, agent, 1);
    assert.ok(gateway.sendTelemetryAck(seqs[0]!, t0 + 10));
    const frame = gatewayFrame(gateway);
    assert.notEqual(decodeEnvelope(frame).sig.alg, envelopeMacAlg);
    assert.deepEqual(acks(agent.receive(frame, t0 + 11)), [seqs[0]]);
  });

  it('interoperates with an older peer: an agent that does not offer it sends AUTH without the member, and gets no announcement and no ack', () => {
    const { gateway, agent, ready, authenticated } = pair({ agentAck: false });
    assert.equal(ready?.telemetryAck, undefined);
    assert.equal(authenticated?.telemetryAck, undefined);
    assert.equal(gateway.telemetryAckAgreed, false);
    const seqs = sendSamples(gateway, agent, 1);
    assert.equal(gateway.sendTelemetryAck(seqs[0]!, t0 + 10), false);
    assert.equal(gateway.takeOutgoing().length, 0);
    // AUTH byte for byte as before: no telemetry_ack member unless offered.
    for (const telemetryAck of [false, true]) {
      const agentAlone = newAgent({ agentAck: telemetryAck });
      const challenger = newGateway({});
      challenger.start(t0);
      agentAlone.receive(challenger.takeOutgoing()[0]!, t0);
      const auth = decodeEnvelope(agentAlone.takeOutgoing()[0]!).body as MessageBody<'AUTH'>;
      assert.equal(auth.telemetry_ack, telemetryAck ? true : undefined);
      assert.equal(Object.hasOwn(auth, 'telemetry_ack'), telemetryAck);
    }
  });

  it('interoperates with an older gateway: an offer it does not answer leaves the session as before, no acks expected', () => {
    const { gateway, agent, ready } = pair({ gatewayAcks: false });
    assert.equal(gateway.state, 'ready');
    assert.equal(ready?.telemetryAck, undefined);
    assert.equal(agent.telemetryAckAgreed, false);
  });

  it('refuses an AUTH_ACK that announces acks the agent did not offer (PROTO_TELEMETRY_ACK_UNEXPECTED)', () => {
    const gateway = newGateway({ mac: false });
    const agent = newAgent({ agentAck: false, mac: false });
    gateway.start(t0);
    agent.receive(gateway.takeOutgoing()[0]!, t0);
    const authFrame = agent.takeOutgoing()[0]!;
    // The gateway is made to believe the agent offered (a buggy gateway): its AUTH_ACK carries telemetry_ack.
    const auth = decodeEnvelope(authFrame);
    const { sig: _authSig, ...authFields } = auth;
    const forgedAuth = signEnvelope({ fields: { ...authFields, body: { ...auth.body, telemetry_ack: true } as JsonObject }, kid: deviceKid('dev-1'), seed: deviceSeed, provider });
    gateway.receive(encodeEnvelope(forgedAuth), t0);
    const events = agent.receive(gateway.takeOutgoing()[0]!, t0);
    assert.deepEqual(refusedCodes(events), ['PROTO_TELEMETRY_ACK_UNEXPECTED']);
    assert.equal(agent.isOpen, false);
  });

  it('refuses a TELEMETRY_ACK on a session that did not agree acks (PROTO_TELEMETRY_ACK_UNEXPECTED)', () => {
    const { gateway, agent } = pair({ agentAck: false, mac: false });
    const seqs = sendSamples(gateway, agent, 1);
    (gateway as unknown as { sendFrame(type: string, body: unknown, nowMs: number): void }).sendFrame('TELEMETRY_ACK', { through_seq: seqs[0] }, t0 + 10);
    assert.deepEqual(refusedCodes(agent.receive(gatewayFrame(gateway), t0 + 11)), ['PROTO_TELEMETRY_ACK_UNEXPECTED']);
    assert.equal(agent.state, 'ready', 'one refusal does not end the session');
  });

  it('refuses forged, replayed, stale and ahead acks with typed codes; none of them is taken', () => {
    const { gateway, agent } = pair();
    const seqs = sendSamples(gateway, agent, 3);
    const send = (throughSeq: number) => {
      (gateway as unknown as { sendFrame(type: string, body: unknown, nowMs: number): void }).sendFrame('TELEMETRY_ACK', { through_seq: throughSeq }, t0 + 10);
      return gatewayFrame(gateway);
    };
    // Forged: through_seq changed after the MAC was made.
    const good = send(seqs[0]!);
    const envelope = decodeEnvelope(good);
    const forged = encodeEnvelope({ ...envelope, body: { through_seq: seqs[2]! } });
    let events = agent.receive(forged, t0 + 11);
    assert.deepEqual(refusedCodes(events), ['CRYPTO_SIGNATURE_INVALID']);
    assert.deepEqual(acks(events), []);
    // Signed by the device's own key (a reflected or made-up frame): a MAC type must carry the MAC.
    const { sig: _ackSig, ...ackFields } = envelope;
    const signedByOther = signEnvelope({ fields: { ...ackFields, id: 'g90', seq: 90, body: { through_seq: seqs[2]! } }, kid: deviceKid('dev-1'), seed: deviceSeed, provider });
    assert.deepEqual(refusedCodes(agent.receive(encodeEnvelope(signedByOther), t0 + 11)), ['CRYPTO_UNSUPPORTED_ALG']);
    // The good one is taken; the same frame again is a replay.
    assert.deepEqual(acks(agent.receive(good, t0 + 12)), [seqs[0]]);
    assert.deepEqual(refusedCodes(agent.receive(good, t0 + 12)), ['PROTO_REPLAY']);
    // A fresh frame that acknowledges nothing new, and one past the last telemetry frame sent.
    assert.deepEqual(refusedCodes(agent.receive(send(seqs[0]!), t0 + 13)), ['PROTO_TELEMETRY_ACK_STALE']);
    assert.deepEqual(refusedCodes(agent.receive(send(seqs[2]! + 1), t0 + 14)), ['PROTO_TELEMETRY_ACK_AHEAD']);
    // Still good after the refusals: the next real ack is taken.
    assert.deepEqual(acks(agent.receive(send(seqs[2]!), t0 + 15)), [seqs[2]]);
  });

  it('is refused by the gateway when an agent sends one (gateway to agent only)', () => {
    const { gateway, agent } = pair();
    (agent as unknown as { sendFrame(type: string, body: unknown, nowMs: number): void }).sendFrame('TELEMETRY_ACK', { through_seq: 0 }, t0 + 1);
    assert.deepEqual(refusedCodes(gateway.receive(agent.takeOutgoing()[0]!, t0 + 2)), ['PROTO_ILLEGAL_TRANSITION']);
  });
});
