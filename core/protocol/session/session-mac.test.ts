import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNobleEd25519Provider } from '../../crypto/ed25519-noble.js';
import { createNobleSessionKeyCrypto } from '../../crypto/session-crypto-noble.js';
import { base64urlFromBytes, bytesFromBase64url } from '../../crypto/bytes.js';
import { SeededRandom } from '../../random/prng.js';
import { decodeEnvelope, encodeEnvelope, envelopeMacAlg, signEnvelope } from '../envelope.js';
import type { MessageBody } from '../messages/catalog.js';
import { AgentConnection, type AgentEvent } from './agent-connection.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from './gateway-connection.js';
import type { SessionMacOptions } from './session-mac.js';
import { pumpFrames } from './test-support.js';

const provider = createNobleEd25519Provider();
const crypto = createNobleSessionKeyCrypto();
const random = new SeededRandom(4004);
const deviceSeed = random.bytes(32);
const gatewaySeed = random.bytes(32);
const t0 = 1_764_000_000_000;
const sample: MessageBody<'TELEMETRY'> = { sampled_at: t0, metrics: { cpu_pct: 10, mem_pct: 20, disk_pct: 30, net_rx_bytes_per_sec: 1, net_tx_bytes_per_sec: 2 } };

function pair(options: { agentMac?: boolean; gatewayMac?: boolean } = {}) {
  const mac: SessionMacOptions = { crypto, random };
  const gateway = new GatewayConnection({
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
    ...(options.gatewayMac === false ? {} : { sessionMac: mac }),
  });
  const agent = new AgentConnection({
    deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: deviceSeed, provider },
    resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
    agentVersion: '0.1.0', lastCommandSeq: 0, ...(options.agentMac === false ? {} : { sessionMac: mac }),
  });
  gateway.start(t0);
  const events = pump(gateway, agent);
  return { gateway, agent, ...events };
}

const pump = (gateway: GatewayConnection, agent: AgentConnection) => pumpFrames(gateway, agent, t0);

const algOf = (frame: Uint8Array) => decodeEnvelope(frame).sig.alg;
const refusedCodes = (events: readonly (GatewayEvent | AgentEvent)[]) => events.flatMap((e) => (e.kind === 'refused' ? [e.error.code] : []));

/** The frame with its MAC tag's first byte flipped. */
function tampered(frame: Uint8Array): Uint8Array {
  const envelope = decodeEnvelope(frame);
  const tag = bytesFromBase64url(envelope.sig.value, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'tag' });
  tag[0] = tag[0]! ^ 1;
  return encodeEnvelope({ ...envelope, sig: { ...envelope.sig, value: base64urlFromBytes(tag) } });
}

describe('session MAC (ADR 0004)', () => {
  it('is agreed at AUTH when both sides offer it: HEARTBEAT and TELEMETRY carry HMAC-SHA256 both ways, the other frames stay Ed25519-signed', () => {
    const { gateway, agent, gatewayEvents } = pair();
    assert.equal(gateway.state, 'ready');
    assert.ok(agent.sessionMacAgreed && gateway.sessionMacAgreed);
    assert.equal(gatewayEvents.find((e) => e.kind === 'authenticated')?.kind === 'authenticated' && (gatewayEvents[0] as { sessionMac: boolean }).sessionMac, true);
    agent.sendTelemetry(sample, t0 + 1);
    agent.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, t0 + 1);
    agent.sendAlert({ severity: 'info', kind: 'test', message: 'm' }, t0 + 1);
    const frames = agent.takeOutgoing();
    assert.deepEqual(frames.map(algOf), [envelopeMacAlg, envelopeMacAlg, 'Ed25519']);
    const received = frames.flatMap((frame) => gateway.receive(frame, t0 + 2));
    assert.deepEqual(received.map((e) => (e.kind === 'message' ? e.message.type : e.kind)), ['TELEMETRY', 'HEARTBEAT', 'ALERT']);
    const echo = gateway.takeOutgoing();
    assert.deepEqual(echo.map(algOf), [envelopeMacAlg], 'the heartbeat echo is MACd too');
    assert.deepEqual(echo.flatMap((frame) => agent.receive(frame, t0 + 3)).map((e) => e.kind), ['message']);
  });

  it('refuses a forged MAC, a replayed frame and a frame reflected back to its sender', () => {
    const { gateway, agent } = pair();
    agent.sendTelemetry(sample, t0 + 1);
    const [frame] = agent.takeOutgoing();
    assert.deepEqual(refusedCodes(gateway.receive(tampered(frame!), t0 + 2)), ['CRYPTO_SIGNATURE_INVALID']);
    assert.deepEqual(gateway.receive(frame!, t0 + 2).map((e) => e.kind), ['message']);
    assert.deepEqual(refusedCodes(gateway.receive(frame!, t0 + 2)), ['PROTO_REPLAY'], 'the same frame again');
    // The agent's own heartbeat handed back to it: the directions have different keys.
    agent.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, t0 + 3);
    const [heartbeat] = agent.takeOutgoing();
    assert.deepEqual(refusedCodes(agent.receive(heartbeat!, t0 + 4)), ['CRYPTO_SIGNATURE_INVALID']);
  });

  it('once agreed, a signed HEARTBEAT or TELEMETRY is refused (one form per type), and a MAC is never accepted on a frame that must be signed', () => {
    const { gateway, agent } = pair();
    agent.sendTelemetry(sample, t0 + 1);
    const macd = decodeEnvelope(agent.takeOutgoing()[0]!);
    const { sig: _mac, ...fields } = macd;
    const signed = signEnvelope({ fields, kid: deviceKid('dev-1'), seed: deviceSeed, provider });
    assert.deepEqual(refusedCodes(gateway.receive(encodeEnvelope(signed), t0 + 2)), ['CRYPTO_UNSUPPORTED_ALG']);
    // An ALERT carrying a MAC (computable by anyone holding the session key, not proof from the device key).
    agent.sendAlert({ severity: 'info', kind: 'test', message: 'm' }, t0 + 3);
    const alert = decodeEnvelope(agent.takeOutgoing()[0]!);
    const forgedAlert = encodeEnvelope({ ...alert, sig: { ...macd.sig } });
    assert.deepEqual(refusedCodes(gateway.receive(forgedAlert, t0 + 4)), ['CRYPTO_UNSUPPORTED_ALG']);
  });

  it('an agent that does not offer it (older agents) keeps signing every frame, and the gateway verifies them as before', () => {
    const { gateway, agent } = pair({ agentMac: false });
    assert.equal(gateway.state, 'ready');
    assert.ok(!agent.sessionMacAgreed && !gateway.sessionMacAgreed);
    agent.sendTelemetry(sample, t0 + 1);
    const [frame] = agent.takeOutgoing();
    assert.equal(algOf(frame!), 'Ed25519');
    assert.deepEqual(gateway.receive(frame!, t0 + 2).map((e) => e.kind), ['message']);
  });

  it('a gateway without it answers without a key, and the agent keeps signing', () => {
    const { gateway, agent } = pair({ gatewayMac: false });
    assert.equal(agent.state, 'ready');
    assert.ok(!agent.sessionMacAgreed && !gateway.sessionMacAgreed);
    agent.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, t0 + 1);
    assert.equal(algOf(agent.takeOutgoing()[0]!), 'Ed25519');
  });

  it('a MACd frame on a session without an agreed key is refused, not verified as a signature', () => {
    const macSession = pair();
    const plain = pair({ agentMac: false });
    macSession.agent.sendTelemetry(sample, t0 + 1);
    const frame = macSession.agent.takeOutgoing()[0]!;
    assert.deepEqual(refusedCodes(plain.gateway.receive(frame, t0 + 2)), ['CRYPTO_UNSUPPORTED_ALG']);
  });

  it('a low-order X25519 key in AUTH is refused before the session is ready (CRYPTO_BAD_KEY)', () => {
    const gateway = new GatewayConnection({
      gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
      signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 't',
      sessionMac: { crypto, random },
    });
    gateway.start(t0);
    const challenge = decodeEnvelope(gateway.takeOutgoing()[0]!);
    const auth = signEnvelope({
      fields: {
        v: 1, type: 'AUTH', id: 'a0', device_id: 'dev-1', session_id: 'sess_1', seq: 0, ts: t0,
        body: { nonce: (challenge.body as { nonce: string }).nonce, agent_version: 'x', last_command_seq: 0, x25519_pub: base64urlFromBytes(new Uint8Array(32)) },
      },
      kid: deviceKid('dev-1'), seed: deviceSeed, provider,
    });
    const events = gateway.receive(encodeEnvelope(auth), t0 + 1);
    assert.deepEqual(refusedCodes(events), ['CRYPTO_BAD_KEY']);
    assert.notEqual(gateway.state, 'ready');
  });
});
