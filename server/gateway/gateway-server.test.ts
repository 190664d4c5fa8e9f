import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Socket } from 'node:net';
import WebSocket from 'ws';
import { gatewayCommandStream, groups, kvKeys, streamNames } from '../bus-contract/streams.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { createIntermediateCa, createRootCa } from '../../trust/ca.js';
import { systemRandom } from '../../runtime/system.js';
import { DeviceCertificateIssuer } from '../../trust/device-issuer.js';
import { MemoryRevocationStore } from '../../trust/revocation.js';
import type { GatewayCore } from './gateway-core.js';
import { startGatewayServer, type GatewayServer } from './gateway-server.js';
import {
  appendDeliver, connectTls, embeddedStores, eventually, makeCommand, makeCore, makeGatewayPki, StreamReader,
  type GatewayPki, type TestStores,
} from './test-support.js';

describe('gateway over TLS 1.3 + WebSocket', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  let server: GatewayServer;
  let events: StreamReader;
  const sockets: WebSocket[] = [];

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    // Timeouts far above what a busy machine may delay an answering agent by: a session here ends
    // only when a test means it to, and an agent that answers is never asked twice. The tests of
    // short deadlines start their own gateway, or run on virtual time (presence-timeout.test.ts).
    core = makeCore(stores, {
      heartbeatIntervalMs: 60_000, authTimeoutMs: 30_000, ackTimeoutMs: 30_000, deliveryAttemptsMax: 3, backoff: { baseMs: 20, maxMs: 60 }, refusalsMax: 3,
    });
    await core.start();
    server = await startGatewayServer({
      core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate],
    });
    events = new StreamReader(stores.bus);
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await server.close();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  async function connect(deviceId: string) {
    const device = await gpki.issueDevice(deviceId);
    const connected = await connectTls(server.address.url, device, gpki.serverTls.caPem);
    sockets.push(connected.ws);
    return { device, ...connected };
  }

  /** Keeps the agent's session alive for the duration of `run`. */
  async function withHeartbeats<T>(agent: { connection: { sendHeartbeat(b: { uptime_ms: number; queue_depth: number }, n: number): void }; flush(): void }, run: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => {
      try {
        agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, Date.now());
        agent.flush();
      } catch { /* closed */ }
    }, 100);
    try {
      return await run();
    } finally {
      clearInterval(timer);
    }
  }

  it('authenticates a device, sets its presence key and reports it online', async () => {
    const { agent } = await connect('dev-auth');
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    const record = JSON.parse((await stores.kv.get(kvKeys.presence('dev-auth')))!) as { gateway_id: string; session_id: string };
    assert.equal(record.gateway_id, 'gw-a');
    assert.equal(record.session_id, agent.connection.id);
    const ttlMs = await stores.kv.ttlMs(kvKeys.presence('dev-auth'));
    assert.ok(ttlMs !== null && ttlMs <= 90_000 && ttlMs > 0, `ttl ${ttlMs}: at most 1.5 heartbeat intervals`);
    await events.waitFor((all) => all.some((e) => e.kind === 'presence' && e.data.device_id === 'dev-auth' && e.data.online && e.data.last_command_seq === 0));
  });

  it('keeps no copy of the peer\'s address on its sockets once the handshake is over (admission needs it only until then)', async () => {
    // Node keeps what `remoteAddress` reads on the socket for its life (`_peername`): an object and a
    // string on the TCP socket and on the TLS socket over it, per session (docs/benchmarks.md, 2026-12-04 night).
    const prototype = Socket.prototype as unknown as { _getpeername(this: Socket): unknown };
    const original = prototype._getpeername;
    const asked = new Set<Socket>();
    prototype._getpeername = function spied(this: Socket) {
      asked.add(this);
      return original.call(this);
    };
    try {
      const { agent } = await connect('dev-peer-address');
      await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    } finally {
      prototype._getpeername = original;
    }
    // The agent's own socket is the one whose peer is the gateway; every other one asked is the gateway's.
    const gatewaySide = [...asked].filter((socket) => socket.remotePort !== server.address.port);
    assert.deepEqual(gatewaySide.filter((socket) => (socket as unknown as { _peername?: unknown })._peername !== undefined).length, 0);
  });

  it('refuses at the TLS layer a client certificate from another CA', async () => {
    const root = await createRootCa({ now: new Date(Date.now() - 60_000), random: systemRandom });
    const intermediate = await createIntermediateCa({ root, now: new Date(Date.now() - 60_000), random: systemRandom });
    const issuer = new DeviceCertificateIssuer({ intermediate, rootCertificate: root.certificate, random: systemRandom, isRevoked: () => false });
    const genuine = await gpki.issueDevice('dev-foreign');
    const { x509 } = await import('../../trust/x509-provider.js');
    const { generateEd25519KeyPair, exportPkcs8Der } = await import('../../trust/ed25519-keys.js');
    const { toPem } = await import('../../trust/pem.js');
    const keys = await generateEd25519KeyPair(systemRandom);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.3': ['dev-foreign'] }], keys, signingAlgorithm: { name: 'Ed25519' } });
    const foreign = await issuer.issueDeviceCertificate({ csrPem: csr.toString('pem'), deviceId: 'dev-foreign', now: new Date() });
    const keyPem = toPem('PRIVATE KEY', await exportPkcs8Der(keys.privateKey));
    const before = core.stats().connections;
    await assert.rejects(connectTls(server.address.url, { ...genuine, certPem: foreign.certificatePem, keyPem }, gpki.serverTls.caPem));
    assert.equal(core.stats().connections, before, 'the core never saw the connection');
    const presence = await stores.kv.get(kvKeys.presence('dev-foreign'));
    assert.equal(presence, null);
  });

  /** A certificate from the test CA with a profile of the test's choosing, and its key. */
  async function customDevice(commonName: string, sanUri?: string) {
    const { signCustomDeviceCertificate } = await import('../../trust/test-fixtures.js');
    const { generateEd25519KeyPair, exportPkcs8Der } = await import('../../trust/ed25519-keys.js');
    const { toPem } = await import('../../trust/pem.js');
    const keys = await generateEd25519KeyPair(systemRandom);
    const certPem = await signCustomDeviceCertificate({
      issuer: gpki.pki.intermediate, commonName, ...(sanUri === undefined ? {} : { sanUri }), keys,
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000),
    });
    return { certPem, keyPem: toPem('PRIVATE KEY', await exportPkcs8Der(keys.privateKey)) };
  }

  /** Connects with a raw WebSocket; resolves with every frame received and the close. */
  async function connectRaw(material: { certPem: string; keyPem: string }) {
    const ws = new WebSocket(server.address.url, { cert: material.certPem, key: material.keyPem, ca: gpki.serverTls.caPem });
    sockets.push(ws);
    const frames: string[] = [];
    ws.on('message', (data: Buffer) => frames.push(data.toString('utf8')));
    ws.on('error', () => undefined);
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    return { frames: frames.map((f) => JSON.parse(f) as { type: string; device_id: string; body: { code?: string } }), closed };
  }

  it('refuses a certificate from our CA that fails the device profile with AUTH_ERROR naming its device, then closes', async () => {
    const before = core.stats().connections;
    const { frames, closed } = await connectRaw(await customDevice('dev-badsan', 'urn:sdc:device:someone-else'));
    assert.deepEqual(frames.map((f) => [f.type, f.device_id]), [['AUTH_CHALLENGE', 'dev-badsan'], ['AUTH_ERROR', 'dev-badsan']]);
    assert.equal(frames[1]!.body.code, 'TRUST_CERT_IDENTITY_MISMATCH');
    assert.deepEqual(closed, { code: 1008, reason: 'TRUST_CERT_IDENTITY_MISMATCH' });
    assert.equal(core.stats().connections, before);
  });

  it('closes without a frame a certificate whose CN no frame can carry (not a device id), and keeps serving', async () => {
    const { frames, closed } = await connectRaw(await customDevice('Dev-Upper'));
    // Only the close: an AUTH_ERROR frame would have to name a device id the protocol refuses.
    assert.deepEqual(frames, []);
    assert.deepEqual(closed, { code: 1008, reason: 'TRUST_CERT_IDENTITY_MISMATCH' });
    const { agent } = await connect('dev-after-upper');
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
  });

  it('answers a revoked device with AUTH_ERROR TRUST_CERT_REVOKED and closes', async () => {
    const device = await gpki.issueDevice('dev-revoked');
    await stores.kv.set(kvKeys.revoked(device.serialHex), '1');
    const { agent, ws } = await connectTls(server.address.url, device, gpki.serverTls.caPem);
    sockets.push(ws);
    await eventually(() => agent.closed, 3_000, 'close');
    assert.equal(agent.authError(), 'TRUST_CERT_REVOKED');
    assert.equal(agent.closed?.code, 1008);
    assert.equal(await stores.kv.get(kvKeys.presence('dev-revoked')), null);
  });

  it('answers AUTH signed with another key with AUTH_ERROR and closes', async () => {
    const device = await gpki.issueDevice('dev-wrongkey');
    const { TestAgent } = await import('./test-support.js');
    const { randomBytes } = await import('node:crypto');
    const agent = new TestAgent(device, { signSeed: new Uint8Array(randomBytes(32)) });
    const { ws } = await connectTls(server.address.url, device, gpki.serverTls.caPem, agent);
    sockets.push(ws);
    await eventually(() => agent.closed, 3_000, 'close');
    assert.equal(agent.authError(), 'CRYPTO_SIGNATURE_INVALID');
    assert.equal(agent.ready, false);
  });

  it('answers oversized, malformed and replayed frames with ERROR frames and closes after the refusal limit', async () => {
    const { agent, ws } = await connect('dev-junk');
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    agent.sendRaw('x'.repeat(70_000));
    agent.sendRaw('{"v":1,');
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, Date.now());
    const [heartbeat] = agent.connection.takeOutgoing();
    agent.sendRaw(heartbeat!);
    agent.sendRaw(heartbeat!);
    await eventually(() => (agent.errorCodes().length >= 3 ? true : undefined), 3_000, 'three ERROR frames');
    assert.deepEqual(agent.errorCodes(), ['PROTO_FRAME_TOO_LARGE', 'PROTO_JSON_SYNTAX', 'PROTO_REPLAY']);
    assert.equal(agent.closed, undefined, 'the session survives three refusals');
    assert.equal(ws.readyState, WebSocket.OPEN);
    agent.sendRaw('[]');
    const closed = await eventually(() => agent.closed, 3_000, 'close after the fourth refusal');
    assert.equal(closed.code, 1008);
    // The gateway is still serving.
    const again = await connect('dev-junk2');
    await eventually(() => (again.agent.ready ? true : undefined), 3_000, 'AUTH_ACK after junk');
  });

  it('reports a silent device offline after it was online, and closes its session', async () => {
    // Its own gateway with a short heartbeat. The deadline (1.5 heartbeat intervals after the last
    // frame, not before) is proven on virtual time in presence-timeout.test.ts; here the same path
    // over TLS, by outcome and order only.
    const heartbeatIntervalMs = 400;
    const silentStores = embeddedStores();
    const silentCore = makeCore(silentStores, { heartbeatIntervalMs, authTimeoutMs: 30_000 });
    await silentCore.start();
    const silentServer = await startGatewayServer({
      core: silentCore, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate],
    });
    const silentEvents = new StreamReader(silentStores.bus);
    try {
      // A half-open peer: it sends nothing and does not answer the liveness probe (a quiet peer that answers stays online: liveness-probe-tls.test.ts).
      const { agent, ws } = await connectTls(silentServer.address.url, await gpki.issueDevice('dev-silent'), gpki.serverTls.caPem, undefined, { autoPong: false });
      sockets.push(ws);
      const presence = () => silentEvents.entries.filter((e) => e.kind === 'presence' && e.data.device_id === 'dev-silent');
      await silentEvents.waitFor(() => presence().some((e) => e.kind === 'presence' && !e.data.online));
      assert.ok(agent.ready, 'the session was ready before it went silent');
      assert.deepEqual(presence().map((e) => e.kind === 'presence' && e.data.online), [true, false], 'online, then offline once');
      const [online, offline] = presence();
      assert.ok(online?.kind === 'presence' && offline?.kind === 'presence');
      assert.ok(offline.data.at_ms >= online.data.at_ms, 'the gateway reported offline after online, on its own clock');
      assert.equal(await silentStores.kv.get(kvKeys.presence('dev-silent')), null);
      await eventually(() => agent.closed, 1_000, 'close');
      assert.equal(agent.closed?.code, 4000);
    } finally {
      await silentServer.close();
      await silentCore.stop();
      await silentStores.bus.close();
      await silentStores.kv.close();
    }
  });

  it('appends a verified TELEMETRY frame to the telemetry stream', async () => {
    const { agent } = await connect('dev-telemetry');
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    agent.connection.sendTelemetry({ sampled_at: Date.now(), metrics: { cpu_pct: 12.5, mem_pct: 40, disk_pct: 70, net_rx_bytes_per_sec: 10, net_tx_bytes_per_sec: 20 } }, Date.now());
    agent.flush();
    const telemetry = new StreamReader(stores.bus, streamNames.telemetry);
    await telemetry.waitFor((all) => all.some((e) => e.kind === 'telemetry' && e.data.device_id === 'dev-telemetry'));
    const entry = telemetry.entries.find((e) => e.kind === 'telemetry' && e.data.device_id === 'dev-telemetry');
    assert.ok(entry?.kind === 'telemetry');
    const frame = JSON.parse(entry.data.frame) as { type: string; body: { metrics: { cpu_pct: number } }; sig: unknown };
    assert.equal(frame.type, 'TELEMETRY');
    assert.equal(frame.body.metrics.cpu_pct, 12.5);
    assert.ok(frame.sig, 'the stored frame keeps its signature');
  });

  it('delivers a command and forwards ACK, start and RESULT, then acks the stream entry', async () => {
    const { agent } = await connect('dev-cmd');
    await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
    await withHeartbeats(agent, async () => {
      const command = makeCommand('dev-cmd');
      await appendDeliver(stores.bus, 'gw-a', command);
      await events.waitFor((all) => all.some((e) => e.kind === 'command_result' && e.data.command_id === command.id));
      assert.deepEqual(events.progress(command.id).map((p) => p.event), ['deliver', 'ack', 'start']);
      assert.deepEqual(agent.deliveries, [{ commandId: command.id, attempt: 1 }]);
      const ack = events.entries.find((e) => e.kind === 'command_progress' && e.data.command_id === command.id && e.data.event === 'ack');
      assert.ok(ack?.kind === 'command_progress' && ack.data.frame?.includes('"COMMAND_ACK"'));
      await eventually(async () => ((await stores.bus.pending(gatewayCommandStream('gw-a'), groups.gateway)).length === 0 ? true : undefined), 2_000, 'entry acked');
    });
  });

  // Redelivery on ACK timeout and the dead letter after the last attempt: delivery-retry.test.ts (virtual time).

  it('hands a command back with requeue when the device is not connected here', async () => {
    const command = makeCommand('dev-absent');
    await appendDeliver(stores.bus, 'gw-a', command);
    await events.waitFor(() => events.progress(command.id).length > 0);
    assert.deepEqual(events.progress(command.id), [{ event: 'requeue', attempt: 0 }]);
  });

  it('refuses a command not signed by a configured control-plane key', async () => {
    const { randomBytes } = await import('node:crypto');
    const forged = makeCommand('dev-auth', { seed: new Uint8Array(randomBytes(32)) });
    await appendDeliver(stores.bus, 'gw-a', forged);
    await events.waitFor(() => events.progress(forged.id).length > 0);
    assert.deepEqual(events.progress(forged.id).map((p) => p.event), ['dead_letter']);
  });

  it('replaces the older session when the same device authenticates again', async () => {
    const first = await connect('dev-twice');
    await eventually(() => (first.agent.ready ? true : undefined), 3_000, 'first AUTH_ACK');
    const second = await connectTls(server.address.url, first.device, gpki.serverTls.caPem);
    sockets.push(second.ws);
    await eventually(() => (second.agent.ready ? true : undefined), 3_000, 'second AUTH_ACK');
    await eventually(() => first.agent.closed, 3_000, 'first closed');
    assert.equal(first.agent.closed?.code, 4001);
    const record = JSON.parse((await stores.kv.get(kvKeys.presence('dev-twice')))!) as { session_id: string };
    assert.equal(record.session_id, second.agent.connection.id);
    await events.poll();
    assert.ok(!events.entries.some((e) => e.kind === 'presence' && e.data.device_id === 'dev-twice' && !e.data.online), 'no offline for a replaced session');
  });
  it('counts every message it receives from agents (received.frames, which sdc bench connections divides the CPU by)', async () => {
    // A server of its own on the same core, so no other test's socket can add to its count.
    const counted = await startGatewayServer({
      core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate],
    });
    try {
      assert.deepEqual(counted.received, { frames: 0 });
      const device = await gpki.issueDevice('dev-counted');
      const { agent, ws } = await connectTls(counted.address.url, device, gpki.serverTls.caPem);
      sockets.push(ws);
      await eventually(() => (agent.ready ? true : undefined), 3_000, 'AUTH_ACK');
      assert.equal(counted.received.frames, 1, 'the AUTH');
      for (let i = 0; i < 3; i++) {
        agent.connection.sendHeartbeat({ uptime_ms: i + 1, queue_depth: 0 }, Date.now());
        agent.flush();
      }
      await eventually(() => (counted.received.frames >= 4 ? true : undefined), 3_000, 'three heartbeats counted');
      assert.equal(counted.received.frames, 4);
      assert.equal(server.received.frames > 0, true, 'each server counts its own');
    } finally {
      await counted.close();
    }
  });
});
