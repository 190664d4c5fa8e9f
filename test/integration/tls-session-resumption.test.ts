import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import type { AgentConnectionHandle, AgentCore } from '../../agent/agent-core.js';
import { startWsAgentDriver, type WsAgentDriver } from '../../agent/ws-transport.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { kvKeys } from '../../server/bus-contract/streams.js';
import type { GatewayCore } from '../../server/gateway/gateway-core.js';
import { startGatewayServer, type GatewayServer } from '../../server/gateway/gateway-server.js';
import {
  embeddedStores, eventually, makeCore, makeGatewayPki, TestAgent, type DeviceMaterial, type GatewayPki, type TestStores,
} from '../../server/gateway/test-support.js';

/**
 * TLS 1.3 session resumption across gateways (issue 15, the reconnect storm): the agent's driver
 * keeps the last session ticket (agent/tls-session-cache.ts), and gateways that derive their ticket
 * keys from one secret (server/gateway/tls-session-tickets.ts) resume each other's sessions. A
 * resumed session still authenticates: the certificate the ticket carries is checked again,
 * AUTH signs a fresh challenge, and revocation is checked at AUTH. A gateway trusting another
 * CA never resumes the ticket, even with the same secret.
 */

/** An AgentCore stand-in that runs a real AgentConnection (TestAgent) per connection, so each session really authenticates. */
class SessionsCore {
  readonly sessions: TestAgent[] = [];
  constructor(private readonly device: DeviceMaterial) {}

  get isReady(): boolean {
    return this.sessions.at(-1)?.ready ?? false;
  }

  onConnected(transport: { send(bytes: Uint8Array): void; close(): void }): AgentConnectionHandle {
    const agent = new TestAgent(this.device);
    this.sessions.push(agent);
    agent.attach((bytes) => transport.send(bytes));
    const transportClosed = () => { agent.closed ??= { code: 0, reason: 'transport closed' }; };
    return { receive: (bytes: Uint8Array) => agent.onFrame(bytes), transportClosed } as unknown as AgentConnectionHandle;
  }

  async stop(): Promise<void> {}
}

describe('TLS session resumption across gateways', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let gpki: GatewayPki;

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  async function gateway(options: { stores: TestStores; pki: GatewayPki; secret: Uint8Array }): Promise<{ server: GatewayServer; core: GatewayCore }> {
    const core = makeCore(options.stores);
    await core.start();
    const server = await startGatewayServer({
      core, tls: options.pki.serverTls, host: '127.0.0.1', port: 0,
      trustAnchors: [options.pki.pki.intermediate.certificate, options.pki.pki.root.certificate], sessionTickets: { secret: options.secret },
    });
    cleanups.push(async () => { await server.close(); await core.stop(); });
    return { server, core };
  }

  function stores(): TestStores {
    const opened = embeddedStores();
    cleanups.push(async () => { await opened.bus.close(); await opened.kv.close(); });
    return opened;
  }

  function drive(core: SessionsCore, device: DeviceMaterial, urls: string[], caPem: string, resumption = true): WsAgentDriver {
    const driver = startWsAgentDriver({
      core: core as unknown as AgentCore, urls, certPem: device.certPem, keyPem: device.keyPem, caPem, random: systemRandom, scheduler: systemScheduler,
      backoffBaseMs: 10, backoffMaxMs: 50, tlsSessionResumption: resumption,
    });
    cleanups.push(() => driver.stop());
    return driver;
  }

  /** Two gateways of one deployment (shared stores and ticket secret); the device's first session on the first one. */
  async function firstSession(name: string, resumption = true) {
    gpki ??= await makeGatewayPki();
    const shared = stores();
    const secret = new Uint8Array(randomBytes(32));
    const first = await gateway({ stores: shared, pki: gpki, secret });
    const second = await gateway({ stores: shared, pki: gpki, secret });
    const device = await gpki.issueDevice(name);
    const core = new SessionsCore(device);
    const driver = drive(core, device, [first.server.address.url, second.server.address.url], gpki.serverTls.caPem, resumption);
    await eventually(() => (core.sessions[0]?.ready ? true : undefined), 10_000, 'first session on the first gateway');
    return { shared, secret, first, second, device, core, driver };
  }

  it('an agent whose gateway died resumes its TLS session on another gateway with the same secret, and authenticates there', async () => {
    const { first, second, core } = await firstSession('dev-resume');
    first.server.kill();
    await eventually(() => (core.sessions[1]?.ready ? true : undefined), 10_000, 'second session on the other gateway');
    assert.deepEqual(first.server.tlsHandshakes, { full: 1, resumed: 0 });
    assert.deepEqual(second.server.tlsHandshakes, { full: 0, resumed: 1 }, 'the ticket of the first gateway resumed on the second');
  });

  it('an agent with resumption off does a full handshake on the other gateway', async () => {
    const { first, second, core } = await firstSession('dev-no-resume', false);
    first.server.kill();
    await eventually(() => (core.sessions[1]?.ready ? true : undefined), 10_000, 'second session on the other gateway');
    assert.deepEqual(second.server.tlsHandshakes, { full: 1, resumed: 0 });
  });

  it('a revoked device\'s resumed session is refused at AUTH (TRUST_CERT_REVOKED)', async () => {
    const { shared, first, second, device, core } = await firstSession('dev-revoked-resume');
    await shared.kv.set(kvKeys.revoked(device.serialHex), '1');
    first.server.kill();
    const refused = await eventually(() => core.sessions.slice(1).find((s) => s.authError() !== undefined), 10_000, 'a refused session on the other gateway');
    assert.equal(refused.authError(), 'TRUST_CERT_REVOKED');
    assert.equal(refused.ready, false);
    assert.ok(second.server.tlsHandshakes.resumed >= 1, 'the TLS session was resumed; the refusal came after it');
    assert.ok(core.sessions.slice(1).every((s) => !s.ready), 'no session became ready after the revocation');
  });

  it('a gateway trusting another CA does not resume the ticket, even with the same secret, and refuses the device', async () => {
    gpki ??= await makeGatewayPki();
    const otherPki = await makeGatewayPki();
    const secret = new Uint8Array(randomBytes(32));
    const first = await gateway({ stores: stores(), pki: gpki, secret });
    const other = await gateway({ stores: stores(), pki: otherPki, secret });
    const device = await gpki.issueDevice('dev-other-ca');
    // The agent trusts both CAs' server certificates, so only the gateway's side can refuse.
    const core = new SessionsCore(device);
    const driver = drive(core, device, [first.server.address.url, other.server.address.url], `${gpki.serverTls.caPem}\n${otherPki.serverTls.caPem}`);
    await eventually(() => (core.sessions[0]?.ready ? true : undefined), 10_000, 'a session (and its ticket) on the first gateway');
    first.server.kill();
    // The driver now tries the other CA's gateway with the ticket, then the dead first one, in turn: four failures are two tries at the other.
    await eventually(() => (driver.failedAttempts >= 4 ? true : undefined), 10_000, 'four failed attempts');
    await driver.stop();
    assert.deepEqual(other.server.tlsHandshakes, { full: 0, resumed: 0 }, 'no handshake completed with the other CA\'s gateway');
    assert.equal(core.sessions.length, 1, 'no second session anywhere');
  });
});
