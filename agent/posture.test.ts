import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import { SeededRandom } from '../core/random/prng.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import type { DevicePosture } from '../core/protocol/messages/posture.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from '../core/protocol/session/gateway-connection.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { createAgentCore } from './agent-core.js';
import { MemoryCommandJournal } from './command-journal.js';
import { agentBinarySha256, configSha256, kernelAttestation } from './posture.js';
import { createSyntheticMetricsSource } from './telemetry/synthetic-metrics.js';

/**
 * The agent's compliance facts (docs/compliance.md): the helpers the runtime computes them with,
 * and the agent core carrying them in AUTH to a real GatewayConnection, which hands them on in its
 * `authenticated` event (what the gateway puts in the presence entry).
 */
describe('agent posture', () => {
  it('hashes the configuration by its canonical JSON, so member order never changes it', () => {
    const a = configSha256({ device_id: 'd1', gateway_urls: ['wss://a'], kernel: 'mock' });
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(configSha256({ kernel: 'mock', gateway_urls: ['wss://a'], device_id: 'd1' }), a);
    assert.notEqual(configSha256({ device_id: 'd1', gateway_urls: ['wss://b'], kernel: 'mock' }), a);
  });

  it('hashes the agent modules on disk; a kernel that answers is unattested, one that fails is failed', async () => {
    const hash = await agentBinarySha256();
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(await agentBinarySha256(), hash, 'the same files give the same hash');
    const answering = { pingKernel: async () => ({ nonce: 1n, contractVersion: 1, lockScreenSupported: true }) };
    const failing = { pingKernel: async () => { throw new Error('no device'); } };
    assert.equal(await kernelAttestation(answering), 'unattested');
    assert.equal(await kernelAttestation(failing), 'failed');
  });

  it('sends the posture in AUTH; the gateway\'s authenticated event carries it', async () => {
    const provider = createNodeEd25519Provider();
    const sessionCrypto = createNodeSessionKeyCrypto();
    const random = new SeededRandom(7);
    const time = new VirtualTime(1_800_000_000_000);
    const deviceSeed = random.bytes(32);
    const gatewaySeed = random.bytes(32);
    const posture: DevicePosture = { os_version: 'Linux 6.8.0', binary_sha256: 'a'.repeat(64), config_sha256: 'c'.repeat(64), kernel_attestation: 'unattested', kernel_backend: 'mock' };
    let asked = 0;
    const core = createAgentCore({
      deviceId: 'dev-p', signer: { kid: deviceKid('dev-p'), seed: deviceSeed, provider },
      resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(gatewaySeed) : undefined),
      resolveCommandKey: () => undefined, kernel: {} as KernelBridge, journal: new MemoryCommandJournal(), clock: time, random, scheduler: time,
      telemetrySource: createSyntheticMetricsSource({ random }), telemetryIntervalMs: 5_000, agentVersion: 'sdc-agent/0.1.0', sessionCrypto,
      posture: () => { asked += 1; return posture; },
    });
    core.start();
    await core.idle();
    const gateway = new GatewayConnection({
      deviceId: 'dev-p', signer: { kid: gatewayKid('gw-1'), seed: gatewaySeed, provider }, gatewayId: 'gw-1', sessionId: 'session-1',
      devicePublicKey: provider.publicKeyFromSeed(deviceSeed), random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 'token',
      sessionMac: { crypto: sessionCrypto, random },
    });
    const events: GatewayEvent[] = [];
    const handle = core.onConnected({ send: (bytes) => { events.push(...gateway.receive(bytes, time.nowMs())); }, close: () => undefined });
    gateway.start(time.nowMs());
    for (let round = 0; round < 4; round++) for (const frame of gateway.takeOutgoing()) handle.receive(frame);
    const authenticated = events.find((event) => event.kind === 'authenticated');
    assert.ok(authenticated?.kind === 'authenticated', JSON.stringify(events.map((e) => e.kind)));
    assert.equal(authenticated.agentVersion, 'sdc-agent/0.1.0');
    assert.deepEqual(authenticated.posture, posture, 'no policy bundle held: no policy_bundle_version');
    assert.equal(asked, 1, 'read once per connection');
    await core.stop();
  });
});
