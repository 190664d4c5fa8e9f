/**
 * Test support shared by the agent's telemetry tests (telemetry-batch.test.ts, telemetry-ack.test.ts):
 * an agent core on virtual time with a mock kernel and a counting telemetry source, connected to an
 * in-process GatewayConnection per session. Not a test file itself (no .test.ts suffix).
 */
import { createHash } from 'node:crypto';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { decodeEnvelope, type SignedEnvelope } from '../../core/protocol/envelope.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import {
  GatewayConnection, deviceKid, gatewayKid, type GatewayConnectionOptions, type GatewayEvent,
} from '../../core/protocol/session/gateway-connection.js';
import { SeededRandom } from '../../core/random/prng.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { createAgentCore, type AgentConnectionHandle, type AgentCore, type AgentCoreOptions, type TelemetrySource } from '../agent-core.js';
import { MemoryCommandJournal } from '../command-journal.js';

const provider = createNodeEd25519Provider();
const sessionCrypto = createNodeSessionKeyCrypto();
const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
export const telemetryIntervalMs = 5_000;
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export type GatewayMessage = Extract<GatewayEvent, { kind: 'message' }>['message'];

/**
 * One agent and the gateway sessions it connects to. A subclass says what it keeps of each sample
 * taken (`sampled`) and of each message the gateway accepted (`accepted`); refusals and AUTH bodies
 * are kept here.
 */
export abstract class AgentTelemetryHarness {
  readonly time = new VirtualTime(1_800_000_000_000);
  readonly random: SeededRandom;
  readonly device: Uint8Array;
  readonly gatewaySeed: Uint8Array;
  readonly refusals: string[] = [];
  readonly auths: MessageBody<'AUTH'>[] = [];
  core!: AgentCore;
  gateway!: GatewayConnection;
  handle!: AgentConnectionHandle;

  constructor(readonly deviceId: string, seed: number) {
    // Drawn in this order before the agent's own seeds (start): the runs stay as they were.
    this.random = new SeededRandom(seed);
    this.device = this.random.bytes(32);
    this.gatewaySeed = this.random.bytes(32);
  }

  /** A sample the source produced (cpu_pct goes 7, 14, ... mod 100), at the virtual time it was taken. */
  protected abstract sampled(sampledAtMs: number, cpu: number): void;
  /** A message the session's gateway accepted. */
  protected abstract accepted(message: GatewayMessage, session: number): void;

  start(options: Partial<AgentCoreOptions>): void {
    const agentSeed = this.random.bytes(32);
    const serviceSeed = this.random.bytes(32);
    const mock = new MockIoctlDevice({ ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: this.time });
    const kernel = new IoctlKernelBridge({ device: mock, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
    let cpu = 0;
    const telemetrySource: TelemetrySource = {
      sample: async () => {
        cpu = (cpu + 7) % 100;
        this.sampled(this.time.nowMs(), cpu);
        return { cpu_pct: cpu, mem_pct: 40, disk_pct: 50, net_rx_bytes_per_sec: 1, net_tx_bytes_per_sec: 2 };
      },
    };
    const deviceId = this.deviceId;
    this.core = createAgentCore({
      deviceId, signer: { kid: deviceKid(deviceId), seed: this.device, provider },
      resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(this.gatewaySeed) : undefined),
      resolveCommandKey: () => undefined, kernel, journal: new MemoryCommandJournal(), clock: this.time, random: this.random, scheduler: this.time,
      telemetrySource, telemetryIntervalMs, agentVersion: 'test/1', sessionCrypto, ...options,
    });
    this.core.start();
  }

  /**
   * Session number `session` with a gateway announcing `samplesMax` samples per frame (and `extra`
   * options). `beforeReceive` sees each envelope the agent sends before the gateway does; it may
   * throw, as a transport failing under the write would.
   */
  protected openSession(session: number, samplesMax: number, extra: Partial<GatewayConnectionOptions> = {}, beforeReceive?: (envelope: SignedEnvelope, gateway: GatewayConnection) => void): void {
    const deviceId = this.deviceId;
    const gateway = new GatewayConnection({
      deviceId, signer: { kid: gatewayKid('gw-1'), seed: this.gatewaySeed, provider }, gatewayId: 'gw-1', sessionId: `session-${session}`,
      devicePublicKey: provider.publicKeyFromSeed(this.device), random: this.random, heartbeatIntervalMs: 3_600_000, authTimeoutMs: 5_000, sessionToken: 'token',
      sessionMac: { crypto: sessionCrypto, random: this.random }, telemetrySha256Hex: sha256Hex, telemetrySamplesPerFrameMax: samplesMax,
      ...extra,
    });
    this.gateway = gateway;
    this.handle = this.core.onConnected({
      send: (bytes) => {
        if (this.gateway !== gateway) return;
        const envelope = decodeEnvelope(bytes);
        if (envelope.type === 'AUTH') this.auths.push(envelope.body as MessageBody<'AUTH'>);
        beforeReceive?.(envelope, gateway);
        for (const event of gateway.receive(bytes, this.time.nowMs())) {
          if (event.kind === 'refused') this.refusals.push(event.error.code);
          if (event.kind === 'message') this.accepted(event.message, session);
        }
        this.pump();
      },
      close: () => undefined,
    });
    gateway.start(this.time.nowMs());
    this.pump();
  }

  pump(): void {
    for (const frame of this.gateway.takeOutgoing()) this.handle.receive(frame);
  }

  disconnect(): void {
    this.gateway.transportLost(this.time.nowMs());
    this.handle.transportClosed();
  }

  async advance(ms: number): Promise<void> {
    await this.time.runUntil(this.time.nowMs() + ms, async () => { await settle(); this.pump(); });
    await settle();
  }
}
