import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { SdcError } from '../../errors/index.js';
import { createNobleEd25519Provider } from '../../crypto/ed25519-noble.js';
import { SeededRandom } from '../../random/prng.js';
import { signCommand } from '../signed-command.js';
import { AgentConnection } from './agent-connection.js';
import { GatewayConnection, deviceKid, gatewayKid } from './gateway-connection.js';
import { pumpFrames } from './test-support.js';
import type { ProtocolLimits } from '../limits.js';

const provider = createNobleEd25519Provider();
const seededRandom = new SeededRandom(20261202);
const seed = () => new Uint8Array(randomBytes(32));
const deviceSeed = seed();
const gatewaySeed = seed();
const cpSeed = seed();
const t0 = 1_764_000_000_000;

function pair(options: { devicePublicKey?: Uint8Array; agentSeed?: Uint8Array; traceContext?: boolean; gatewayLimits?: Partial<ProtocolLimits> } = {}) {
  const gateway = new GatewayConnection({
    ...(options.gatewayLimits === undefined ? {} : { limits: options.gatewayLimits }),
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: options.devicePublicKey ?? provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, random: seededRandom,
    heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 'token-1',
  });
  const agent = new AgentConnection({
    deviceId: 'dev-1', signer: { kid: deviceKid('dev-1'), seed: options.agentSeed ?? deviceSeed, provider },
    resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
    agentVersion: '0.1.0', lastCommandSeq: 0, ...(options.traceContext === undefined ? {} : { traceContext: options.traceContext }),
  });
  return { gateway, agent };
}

const pump = pumpFrames;

function connected() {
  const { gateway, agent } = pair();
  gateway.start(t0);
  const events = pump(gateway, agent, t0);
  return { gateway, agent, ...events };
}

test('challenge, AUTH and AUTH_ACK make both ends ready', () => {
  const { gateway, agent, gatewayEvents, agentEvents } = connected();
  assert.equal(gateway.state, 'ready');
  assert.equal(agent.state, 'ready');
  assert.deepEqual(gatewayEvents.map((e) => e.kind), ['authenticated']);
  assert.deepEqual(agentEvents.map((e) => e.kind), ['ready']);
  assert.equal(agent.id, 'sess_1');
});

test('a device key other than the certificate key gets AUTH_ERROR and both ends close', () => {
  const { gateway, agent } = pair({ agentSeed: seed() });
  gateway.start(t0);
  const { gatewayEvents, agentEvents } = pump(gateway, agent, t0);
  assert.ok(gatewayEvents.some((e) => e.kind === 'refused' && e.error.code === 'CRYPTO_SIGNATURE_INVALID'));
  assert.equal(gateway.state, 'closed');
  assert.deepEqual(agentEvents.filter((e) => e.kind === 'auth_error').map((e) => (e as { code: string }).code), ['CRYPTO_SIGNATURE_INVALID']);
  assert.equal(agent.state, 'closed');
});

test('a challenge signed by an unpinned gateway key is refused by the agent', () => {
  const { agent } = pair();
  const rogue = new GatewayConnection({
    gatewayId: 'gw-1', sessionId: 'sess_1', deviceId: 'dev-1', devicePublicKey: provider.publicKeyFromSeed(deviceSeed),
    signer: { kid: gatewayKid('gw-1'), seed: seed(), provider }, random: seededRandom,
    heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 'x',
  });
  rogue.start(t0);
  const events = agent.receive(rogue.takeOutgoing()[0]!, t0);
  assert.ok(events.some((e) => e.kind === 'refused' && e.error.code === 'CRYPTO_SIGNATURE_INVALID'));
  assert.equal(agent.state, 'closed');
  assert.deepEqual(agent.takeOutgoing(), [], 'the agent answers a bad challenge with nothing');
});

test('commands, ACKs, results, telemetry and heartbeats flow once ready', () => {
  const { gateway, agent } = connected();
  const command = signCommand({
    command: { id: 'cmd_1', device_id: 'dev-1', opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: t0, expires_at: t0 + 60_000, device_seq: 1, issuer: 'cp' },
    kid: 'cp-1', seed: cpSeed, provider,
  });
  gateway.deliverCommand(command, 1, t0 + 1);
  let { agentEvents } = pump(gateway, agent, t0 + 1);
  const delivered = agentEvents.find((e) => e.kind === 'message');
  assert.ok(delivered && delivered.kind === 'message' && delivered.message.type === 'COMMAND_DELIVERY');
  agent.sendCommandAck({ command_id: 'cmd_1', device_seq: 1, stage: 'received' }, t0 + 2);
  agent.sendCommandResult({ command_id: 'cmd_1', device_seq: 1, status: 'succeeded', output: { pong: true }, finished_at: t0 + 3 }, t0 + 3);
  agent.sendTelemetry({ sampled_at: t0 + 3, metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } }, t0 + 3);
  agent.sendHeartbeat({ uptime_ms: 1000, queue_depth: 0 }, t0 + 4);
  const { gatewayEvents } = pump(gateway, agent, t0 + 4);
  assert.deepEqual(gatewayEvents.map((e) => (e.kind === 'message' ? e.message.type : e.kind)), ['COMMAND_ACK', 'COMMAND_RESULT', 'TELEMETRY', 'HEARTBEAT']);
  ({ agentEvents } = pump(gateway, agent, t0 + 4));
  assert.equal(gateway.state, 'ready');
});

test('a replayed agent frame gets an ERROR frame with PROTO_REPLAY and the session survives', () => {
  const { gateway, agent } = connected();
  agent.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, t0 + 10);
  const [frame] = agent.takeOutgoing();
  assert.equal(gateway.receive(frame!, t0 + 10)[0]!.kind, 'message');
  const events = gateway.receive(frame!, t0 + 11);
  assert.ok(events[0]!.kind === 'refused' && events[0]!.error.code === 'PROTO_REPLAY');
  assert.equal(gateway.state, 'ready');
  const errors = gateway.takeOutgoing().map((b) => JSON.parse(new TextDecoder().decode(b))).filter((f) => f.type === 'ERROR');
  assert.equal(errors[0].body.code, 'PROTO_REPLAY');
});

test('arbitrary bytes never throw from receive, and enough junk closes the session', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 12 }), (frames) => {
    const { gateway } = connected();
    gateway.takeOutgoing();
    for (const frame of frames) {
      for (const event of gateway.receive(frame, t0 + 1)) {
        if (event.kind === 'refused') assert.ok(SdcError.is(event.error));
      }
    }
    assert.equal(gateway.state, frames.length > 8 ? 'closed' : 'ready');
  }), { numRuns: 200 });
});

test('silence past 1.5 heartbeat intervals closes the gateway session; no AUTH within the timeout too', () => {
  const { gateway } = connected();
  assert.equal(gateway.pollTimeoutMs(), t0 + 15_000);
  assert.deepEqual(gateway.handleTimeout(t0 + 14_999), []);
  assert.equal(gateway.handleTimeout(t0 + 15_000)[0]!.kind, 'closed');
  assert.equal(gateway.state, 'closed');

  const { gateway: waiting } = pair();
  waiting.start(t0);
  waiting.takeOutgoing();
  assert.equal(waiting.handleTimeout(t0 + 5_000)[0]!.kind, 'closed');
  const sent = waiting.takeOutgoing().map((b) => JSON.parse(new TextDecoder().decode(b)).type);
  assert.deepEqual(sent, ['AUTH_ERROR']);
});

test('a frame type that only gateways send is refused when an agent sends it', () => {
  const { gateway, agent } = connected();
  // Reach the protected sender: an agent that misbehaves on purpose.
  (agent as unknown as { sendFrame: (t: string, b: unknown, n: number) => void }).sendFrame('AUTH_ACK', {
    session_id: 'sess_1', session_token: 'x', heartbeat_interval_ms: 1, seq_start: 0, server_time_ms: t0, clock_offset_ms: 0,
  }, t0 + 1);
  const events = gateway.receive(agent.takeOutgoing()[0]!, t0 + 1);
  assert.ok(events[0]!.kind === 'refused');
  assert.equal((events[0] as { error: SdcError }).error.code, 'PROTO_ILLEGAL_TRANSITION');
  assert.equal(gateway.state, 'ready');
});

const frameTs = (bytes: Uint8Array): number => (JSON.parse(new TextDecoder().decode(bytes)) as { ts: number }).ts;

for (const skewMs of [20_000, 45_000, -90_000, 299_000]) {
  test(`a device clock ${skewMs / 1000} s off gets a session, the offset is measured at AUTH, and later frames are on the gateway's clock`, () => {
    const { gateway, agent } = pair();
    gateway.start(t0);
    const { gatewayEvents, agentEvents } = pump(gateway, agent, t0, skewMs);
    assert.equal(gateway.state, 'ready');
    assert.equal(agent.state, 'ready');
    const authenticated = gatewayEvents.find((e) => e.kind === 'authenticated');
    assert.equal(authenticated?.kind === 'authenticated' && authenticated.clockOffsetMs, skewMs);
    const ready = agentEvents.find((e) => e.kind === 'ready');
    assert.equal(ready?.kind === 'ready' && ready.clockOffsetMs, skewMs);
    assert.equal(agent.clockOffsetMs, skewMs);
    // The agent's clock reads t0 + 5 s + skew; its frame says t0 + 5 s, and the gateway takes it.
    agent.sendHeartbeat({ uptime_ms: 5_000, queue_depth: 0 }, t0 + 5_000 + skewMs);
    const [heartbeat] = agent.takeOutgoing();
    assert.equal(frameTs(heartbeat!), t0 + 5_000);
    assert.equal(gateway.receive(heartbeat!, t0 + 5_000)[0]!.kind, 'message');
    // And the gateway's frames pass the agent's checks.
    gateway.sendAlert({ severity: 'info', kind: 'test', message: 'hello' }, t0 + 6_000);
    const events = agent.receive(gateway.takeOutgoing().at(-1)!, t0 + 6_000 + skewMs);
    assert.equal(events[0]!.kind, 'message');
  });
}

test('the offset is measured against the midpoint of the round trip', () => {
  const { gateway, agent } = pair();
  gateway.start(t0);
  // The challenge takes 400 ms to reach an agent 10 s ahead; its AUTH 400 ms to come back.
  const [challenge] = gateway.takeOutgoing();
  agent.receive(challenge!, t0 + 400 + 10_000);
  const [auth] = agent.takeOutgoing();
  const events = gateway.receive(auth!, t0 + 800);
  const authenticated = events.find((e) => e.kind === 'authenticated');
  assert.equal(authenticated?.kind === 'authenticated' && authenticated.clockOffsetMs, 10_000);
});

test('a device clock beyond the tolerance is refused with PROTO_CLOCK_SKEW, naming the offset', () => {
  const { gateway, agent } = pair();
  gateway.start(t0);
  const { gatewayEvents, agentEvents } = pump(gateway, agent, t0, -400_000);
  const refused = gatewayEvents.find((e) => e.kind === 'refused');
  assert.ok(refused?.kind === 'refused' && SdcError.is(refused.error, 'PROTO_CLOCK_SKEW'));
  assert.equal(refused.error.details.clockOffsetMs, -400_000);
  assert.equal(gateway.state, 'closed');
  assert.deepEqual(agentEvents.filter((e) => e.kind === 'auth_error').map((e) => (e as { code: string }).code), ['PROTO_CLOCK_SKEW']);
});

test('an agent refuses a challenge further off its clock than it accepts, and sends nothing', () => {
  const { gateway, agent } = pair();
  gateway.start(t0);
  const events = agent.receive(gateway.takeOutgoing()[0]!, t0 + 700_000);
  assert.ok(events.some((e) => e.kind === 'refused' && e.error.code === 'PROTO_CLOCK_SKEW'));
  assert.equal(agent.state, 'closed');
  assert.deepEqual(agent.takeOutgoing(), []);
});

test('COMMAND_DELIVERY carries the traceparent only to an agent that announced trace_context in AUTH', () => {
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const command = signCommand({
    command: { id: 'cmd_t', device_id: 'dev-1', opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: t0, expires_at: t0 + 60_000, device_seq: 1, issuer: 'cp' },
    kid: 'cp-1', seed: cpSeed, provider,
  });
  const deliveredTo = (traceContext: boolean | undefined) => {
    const { gateway, agent } = pair(traceContext === undefined ? {} : { traceContext });
    gateway.start(t0);
    pump(gateway, agent, t0);
    assert.equal(gateway.state, 'ready');
    gateway.deliverCommand(command, 1, t0 + 1, traceparent);
    const { agentEvents } = pump(gateway, agent, t0 + 1);
    const delivered = agentEvents.find((e) => e.kind === 'message');
    assert.ok(delivered?.kind === 'message' && delivered.message.type === 'COMMAND_DELIVERY', JSON.stringify(agentEvents));
    return delivered.message.body as Record<string, unknown>;
  };
  assert.equal(deliveredTo(true).traceparent, traceparent);
  // An agent that does not announce it (an older one, whose schema refuses unknown members) gets the frame it knows.
  assert.equal('traceparent' in deliveredTo(undefined), false);
  assert.equal('traceparent' in deliveredTo(false), false);
});

test("a session's limits are checked when it is made and apply to its frames only: another session keeps its own (resolved once, never shared)", () => {
  assert.throws(() => pair({ gatewayLimits: { stringLengthMax: -1 } }), (error) => SdcError.is(error, 'PROTO_INVALID_ARGUMENT'));
  const overrides: Partial<ProtocolLimits> = { stringLengthMax: 100 };
  const strict = pair({ gatewayLimits: overrides });
  // Changed after the session resolved it: the session keeps what it was given, and the next session gets the change.
  overrides.stringLengthMax = 90; // still above a signature's 86 characters
  const stricter = pair({ gatewayLimits: overrides });
  const lenient = pair();
  const alert = { severity: 'info' as const, kind: 'test', message: 'x'.repeat(95) };
  const codes = [strict, stricter, lenient].map(({ gateway, agent }) => {
    gateway.start(t0);
    pump(gateway, agent, t0);
    assert.equal(gateway.state, 'ready');
    agent.sendAlert(alert, t0 + 1);
    const { gatewayEvents } = pump(gateway, agent, t0 + 1);
    return gatewayEvents.map((e) => (e.kind === 'refused' ? e.error.code : e.kind));
  });
  assert.deepEqual(codes, [['message'], ['PROTO_STRING_TOO_LONG'], ['message']]);
});

test('a frame whose body fails to encode takes no seq: the next frame sent has the seq it would have had, so the peer sees no gap', () => {
  const { agent } = connected();
  const seqOf = (bytes: Uint8Array): number => (JSON.parse(new TextDecoder().decode(bytes)) as { seq: number }).seq;
  agent.takeOutgoing();
  const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 };
  agent.sendTelemetry({ sampled_at: t0 + 1, metrics }, t0 + 1);
  const [first] = agent.takeOutgoing();
  // A lone surrogate cannot be canonicalized: refused with a typed error before anything is queued.
  assert.throws(() => agent.sendAlert({ severity: 'info', kind: 'test', message: 'bad \ud800' }, t0 + 2), (error) => SdcError.is(error));
  assert.deepEqual(agent.takeOutgoing(), [], 'nothing queued for the refused frame');
  agent.sendTelemetry({ sampled_at: t0 + 3, metrics }, t0 + 3);
  const [next] = agent.takeOutgoing();
  assert.equal(seqOf(next!), seqOf(first!) + 1);
});
