import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { deviceKid, GatewayConnection } from '../../core/protocol/session/gateway-connection.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { createAgentCore } from '../../agent/agent-core.js';
import { MemoryCommandJournal } from '../../agent/command-journal.js';
import { ensureEnrolled, type AgentIdentity } from '../../agent/enrollment.js';
import { openKernel } from '../../agent/agent-runtime.js';
import { pinnedKeyResolver } from '../../agent/state/agent-state.js';
import { createSyntheticMetricsSource } from '../../agent/telemetry/synthetic-metrics.js';
import { startWsAgentDriver } from '../../agent/ws-transport.js';

const provider = createNodeEd25519Provider();

/**
 * A minimal gateway over real TLS 1.3 with client certificates: it checks the device's
 * certificate at the handshake and runs a GatewayConnection per socket. The real gateway is
 * server/gateway; this stub keeps the driver's test independent of it.
 */
describe('ws transport (real TLS 1.3, client certificate)', () => {
  let harness: Harness;
  let dir: string;
  let identity: AgentIdentity;
  let server: Server;
  let url: string;
  const sockets: WebSocket[] = [];
  const authenticated: string[] = [];

  before(async () => {
    harness = await makeHarness(sqlJsTarget);
    const cpUrl = (await harness.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
    dir = await mkdtemp(join(tmpdir(), 'sdc-agent-ws-'));
    const { token } = await harness.cp.devices.createPairingToken({ actor: 'admin', deviceId: 'dev-ws-1' });
    identity = (await ensureEnrolled({
      dir, serverUrl: cpUrl, deviceId: 'dev-ws-1', pairingToken: token, caPem: harness.materials.rootCaPem, random: systemRandom, clock: harness.clock,
    })).identity;
    const tls = harness.materials.serverTls;
    server = createServer({ cert: tls.certPem, key: tls.keyPem, ca: tls.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    const wss = new WebSocketServer({ server, path: '/v1/agent' });
    let sessions = 0;
    wss.on('connection', (ws, request) => {
      sockets.push(ws);
      const peer = (request.socket as import('node:tls').TLSSocket).getPeerCertificate();
      const cert = parseCertificate(new Uint8Array(peer.raw));
      const devicePublicKey = new Uint8Array(cert.publicKey.rawData).slice(-32);
      const gateway = new GatewayConnection({
        deviceId: 'dev-ws-1', signer: { kid: harness.materials.gatewaySigner.kid, seed: harness.materials.gatewaySigner.seed, provider },
        gatewayId: 'gw-test', sessionId: `s${++sessions}`, devicePublicKey, random: systemRandom, heartbeatIntervalMs: 200, authTimeoutMs: 5_000, sessionToken: 't',
      });
      const flush = () => { for (const frame of gateway.takeOutgoing()) ws.send(frame); };
      ws.on('message', (data: Buffer) => {
        for (const event of gateway.receive(new Uint8Array(data), Date.now())) if (event.kind === 'authenticated') authenticated.push(event.sessionId);
        flush();
      });
      gateway.start(Date.now());
      flush();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/v1/agent`;
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await new Promise((resolve) => server.close(resolve));
    await harness.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('authenticates with the device certificate, and reconnects after the gateway drops the socket', async () => {
    const core = createAgentCore({
      deviceId: identity.deviceId, signer: { kid: deviceKid(identity.deviceId), seed: identity.seed, provider },
      resolveGatewayKey: pinnedKeyResolver(identity.trust.gateway_keys), resolveCommandKey: pinnedKeyResolver(identity.trust.command_keys),
      kernel: openKernel({ choice: 'mock', dir: join(dir, 'kernel'), clock: harness.clock, random: systemRandom, scheduler: systemScheduler }),
      journal: new MemoryCommandJournal(), clock: { nowMs: () => Date.now() }, random: systemRandom, scheduler: systemScheduler,
      telemetrySource: createSyntheticMetricsSource({ random: systemRandom }), telemetryIntervalMs: 1_000, agentVersion: 'test',
    });
    core.start();
    const driver = startWsAgentDriver({
      core, urls: [url], certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, caPem: identity.trust.ca_pem,
      random: systemRandom, scheduler: systemScheduler, backoffBaseMs: 20, backoffMaxMs: 100,
    });
    // Waits for a condition, generously: a busy machine may delay the reconnect by seconds.
    const waitMsMax = 60_000;
    const until = async (condition: () => boolean, what: string) => {
      const deadlineMs = Date.now() + waitMsMax;
      while (!condition() && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 10));
      assert.ok(condition(), `${what} (waited up to ${waitMsMax} ms)`);
    };
    await until(() => authenticated.length === 1 && core.isReady, 'first session authenticated');
    sockets[0]!.terminate();
    await until(() => authenticated.length === 2 && core.isReady, 'second session after reconnect');
    assert.equal(driver.failedAttempts, 0);
    await driver.stop();
    assert.equal(core.isReady, false);
  });
});
