import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createAgentCore, type AgentConnectionHandle, type AgentCore } from '../../agent/agent-core.js';
import { MemoryCommandJournal } from '../../agent/command-journal.js';
import { IoctlKernelBridge, type KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { createSyntheticMetricsSource } from '../../agent/telemetry/synthetic-metrics.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { SeededRandom } from '../../core/random/prng.js';
import { decodeBusEntry, type DecodedBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { MemoryStreamBus } from '../../server/stores/bus/memory-stream-bus.js';
import { MemoryKeyValueSpace, MemoryKeyValueStore } from '../../server/stores/kv/memory-key-value-store.js';
import type { GatewayCore } from '../../server/gateway/gateway-core.js';
import { appendDeliver, commandKeys, gatewayPublicKey, gatewaySigner, makeCommand, makeCore, provider } from '../../server/gateway/test-support.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A gateway core and a real agent core on one virtual clock over an in-memory link: what the
 * issue 18 findings were measured on (slow kernel calls, ACK retries, skewed device clocks).
 */
class World {
  readonly time = new VirtualTime(Date.now());
  readonly bus = new MemoryStreamBus({ clock: this.time, scheduler: this.time });
  readonly kv = new MemoryKeyValueStore({ space: new MemoryKeyValueSpace({ clock: this.time }), keyPrefix: 'sdc:kv:' });
  readonly gateway: GatewayCore;
  readonly random = new SeededRandom(5);
  readonly deviceSeed = new Uint8Array(randomBytes(32));
  agent!: AgentCore;
  #events = 0;
  readonly events: DecodedBusEntry[] = [];

  constructor() {
    this.gateway = makeCore({ bus: this.bus, kv: this.kv }, {
      clock: this.time, scheduler: this.time, ackTimeoutMs: 5_000, deliveryAttemptsMax: 5, heartbeatIntervalMs: 10_000, commandReadBlockMs: 1_000,
    });
  }

  /** An agent whose clock reads virtual time plus `skewMs`, whose pings take `pingMs` of virtual time. */
  startAgent(options: { deviceId: string; skewMs?: number; pingMs?: number }): void {
    const agentSeed = this.random.bytes(32);
    const serviceSeed = this.random.bytes(32);
    const device = new MockIoctlDevice({ ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: this.time });
    const bridge = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
    const pingMs = options.pingMs ?? 0;
    const kernel: KernelBridge = {
      backend: bridge.backend, close: () => bridge.close(), getStatus: () => bridge.getStatus(), lockScreen: () => bridge.lockScreen(),
      getProcessList: (limit) => bridge.getProcessList(limit), stageUpdate: (args) => bridge.stageUpdate(args),
      commitUpdate: (version) => bridge.commitUpdate(version), rollbackUpdate: () => bridge.rollbackUpdate(),
      pingKernel: async (nonce) => {
        if (pingMs > 0) await new Promise<void>((resolve) => { this.time.schedule(pingMs, resolve); });
        return bridge.pingKernel(nonce);
      },
    };
    const skewMs = options.skewMs ?? 0;
    this.agent = createAgentCore({
      deviceId: options.deviceId, signer: { kid: deviceKid(options.deviceId), seed: this.deviceSeed, provider },
      resolveGatewayKey: (kid) => (kid === gatewaySigner.kid ? gatewayPublicKey : undefined),
      resolveCommandKey: (kid) => commandKeys.get(kid),
      kernel, journal: new MemoryCommandJournal(), clock: { nowMs: () => this.time.nowMs() + skewMs }, random: this.random, scheduler: this.time,
      telemetrySource: createSyntheticMetricsSource({ random: this.random }), telemetryIntervalMs: 60_000, agentVersion: 'test',
    });
    this.agent.start();
    let agentHandle: AgentConnectionHandle | undefined;
    const gatewayHandle = this.gateway.acceptConnection({
      deviceId: options.deviceId, devicePublicKey: provider.publicKeyFromSeed(this.deviceSeed), certSerialHex: '1a',
      send: (bytes) => queueMicrotask(() => agentHandle?.receive(bytes)),
      close: () => queueMicrotask(() => agentHandle?.transportClosed()),
    });
    agentHandle = this.agent.onConnected({ send: (bytes) => queueMicrotask(() => gatewayHandle.receive(bytes)), close: () => queueMicrotask(() => gatewayHandle.transportClosed()) });
  }

  async advance(ms: number): Promise<void> {
    await this.time.runUntil(this.time.nowMs() + ms, settle);
    for (let i = 0; i < 5; i++) await settle();
    await this.#readEvents();
  }

  async #readEvents(): Promise<void> {
    if (this.#events === 0) await this.bus.ensureGroup(streamNames.events, 'test', '0');
    this.#events += 1;
    const batch = await this.bus.readGroup(streamNames.events, 'test', 'reader', { count: 1_000 });
    for (const entry of batch) this.events.push(decodeBusEntry(entry.fields));
  }

  progress(commandId: string): string[] {
    return this.events.flatMap((e) => (e.kind === 'command_progress' && e.data.command_id === commandId ? [e.data.event] : []));
  }

  resultOf(commandId: string): { status: string; code?: string } | undefined {
    const entry = this.events.find((e) => e.kind === 'command_result' && e.data.command_id === commandId);
    if (entry?.kind !== 'command_result') return undefined;
    const body = (JSON.parse(entry.data.frame) as { body: { status: string; error?: { code: string } } }).body;
    return { status: body.status, ...(body.error ? { code: body.error.code } : {}) };
  }

  async stop(): Promise<void> {
    this.gateway.abort();
    await Promise.race([this.agent.stop(), settle()]);
    await this.bus.close();
    await this.kv.close();
  }
}

describe('gateway and agent on virtual time: ACK timeouts, deadlines, clock skew', () => {
  it('commands queued behind a 70 s command on a healthy agent are acknowledged at once and never dead-lettered', async () => {
    const world = new World();
    await world.gateway.start();
    world.startAgent({ deviceId: 'dev-slow', pingMs: 70_000 });
    await world.advance(2_000);
    const commands: SignedCommand[] = [1, 2, 3].map((seq) => makeCommand('dev-slow', { deviceSeq: seq, ttlMs: 600_000 }));
    for (const command of commands) await appendDeliver(world.bus, 'gw-a', command);
    await world.advance(2_000);
    for (const command of commands) assert.deepEqual(world.progress(command.id).slice(0, 2), ['deliver', 'ack'], 'acknowledged while the first runs');
    // Far past the ACK retry schedule (5 attempts, 5 s timeout, backoff): the session lives, nothing is given up.
    await world.advance(60_000);
    for (const command of commands) assert.ok(!world.progress(command.id).includes('dead_letter'));
    await world.advance(150_000);
    assert.deepEqual(commands.map((c) => world.resultOf(c.id)?.status), ['succeeded', 'succeeded', 'succeeded'], 'run one after another, at 70, 140 and 210 s');
    for (const command of commands) {
      assert.deepEqual(world.progress(command.id).filter((e) => e === 'deliver' || e === 'dead_letter'), ['deliver'], 'delivered once, no retries');
    }
    await world.stop();
  });

  it('a command taken before its deadline that cannot start before it is refused by the agent (AGENT_COMMAND_EXPIRED), not run', async () => {
    const world = new World();
    await world.gateway.start();
    world.startAgent({ deviceId: 'dev-late', pingMs: 20_000 });
    await world.advance(2_000);
    const long = makeCommand('dev-late', { deviceSeq: 1, ttlMs: 600_000 });
    const shortLived = makeCommand('dev-late', { deviceSeq: 2, ttlMs: 10_000 });
    await appendDeliver(world.bus, 'gw-a', long);
    await appendDeliver(world.bus, 'gw-a', shortLived);
    await world.advance(25_000);
    assert.equal(world.resultOf(long.id)?.status, 'succeeded');
    assert.deepEqual(world.resultOf(shortLived.id), { status: 'rejected', code: 'AGENT_COMMAND_EXPIRED' });
    assert.ok(!world.progress(shortLived.id).includes('start'), 'never started');
    await world.stop();
  });

  for (const skewMs of [20_000, -90_000]) {
    it(`a device clock ${skewMs / 1000} s off gets a session, its offset on presence with a clock_skew warning, and live commands run`, async () => {
      const world = new World();
      await world.gateway.start();
      world.startAgent({ deviceId: 'dev-skew', skewMs });
      await world.advance(2_000);
      const presence = world.events.find((e) => e.kind === 'presence' && e.data.online);
      assert.equal(presence?.kind === 'presence' && presence.data.clock_offset_ms, skewMs);
      const alert = world.events.find((e) => e.kind === 'alert');
      assert.ok(alert?.kind === 'alert');
      assert.deepEqual([alert.data.kind, alert.data.severity, alert.data.clock_offset_ms], ['clock_skew', 'warning', skewMs]);
      // TTL 15 s, at most the skew: a device 20 s ahead used to refuse it as expired.
      const command = makeCommand('dev-skew', { deviceSeq: 1, ttlMs: 15_000 });
      await appendDeliver(world.bus, 'gw-a', command);
      await world.advance(2_000);
      assert.equal(world.resultOf(command.id)?.status, 'succeeded');
      // The session stays up past several heartbeats (its frames are stamped on the gateway clock).
      await world.advance(60_000);
      assert.equal(world.gateway.stats().sessions, 1);
      await world.stop();
    });
  }

  it('a device clock beyond the tolerance gets AUTH_ERROR PROTO_CLOCK_SKEW and a critical clock_skew alert naming the offset, not just "offline"', async () => {
    const world = new World();
    await world.gateway.start();
    world.startAgent({ deviceId: 'dev-broken', skewMs: -400_000 });
    await world.advance(2_000);
    assert.equal(world.gateway.stats().sessions, 0);
    assert.equal(world.events.filter((e) => e.kind === 'presence').length, 0);
    const alert = world.events.find((e) => e.kind === 'alert');
    assert.ok(alert?.kind === 'alert');
    assert.deepEqual([alert.data.kind, alert.data.severity, alert.data.clock_offset_ms], ['clock_skew', 'critical', -400_000]);
    await world.stop();
  });
});
