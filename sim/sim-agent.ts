import { createAgentCore, type AgentConnectionHandle, type AgentCore, type AgentCoreEvent } from '../agent/agent-core.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { createSyntheticMetricsSource } from '../agent/telemetry/synthetic-metrics.js';
import type { GatewayCore } from '../server/gateway/gateway-core.js';
import type { Clock, Ed25519Provider, SessionKeyCrypto, TimerHandle } from '../core/ports/ports.js';
import { deviceKid } from '../core/protocol/session/gateway-connection.js';
import type { VirtualTime } from '../core/time/virtual-time.js';
import type { SimNetwork, SimLink } from '../chaos/network.js';
import type { SeededRandom } from '../core/random/prng.js';
import { IncarnationJournal, ObservedJournal } from './observed-agent-parts.js';
import type { ConnectedTally, TalliedAgent } from './connected-tally.js';
import { nodeSha256 } from '../runtime/sha256-node.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';


/** What a simulated agent needs from the world around it. */
export interface SimAgentWorld {
  readonly time: VirtualTime;
  readonly network: SimNetwork;
  readonly provider: Ed25519Provider;
  /** The session MAC's key agreement; node:crypto's X25519 when absent (sim/model-crypto.ts has the modelled one). */
  readonly sessionCrypto?: SessionKeyCrypto;
  readonly gatewayIds: readonly string[];
  gateway(gatewayId: string): GatewayCore | undefined;
  resolveGatewayKey(kid: string): Uint8Array | undefined;
  resolveCommandKey(kid: string): Uint8Array | undefined;
  readonly heartbeatIntervalMs: number;
  readonly telemetryIntervalMs: number;
  /** Telemetry batches (scenario telemetrySamplesPerFrame); absent or 1: one TELEMETRY per sample, the agent's AUTH as before. */
  readonly telemetrySamplesPerFrameMax?: number;
  readonly telemetryBatchDelayMs?: number;
  /** Telemetry acknowledgements (scenario telemetryAcks); absent: the agent's AUTH as before. */
  readonly telemetryAcks?: boolean;
  trace(kind: string, detail: string): void;
  onExecuting(deviceId: string, commandId: string): void;
  onAgentEvent(agent: SimAgent, event: AgentCoreEvent): void;
  linkClosed(link: SimLink): void;
  /** OTA notices for this agent's update runner (sim/ota/device-updates.ts); absent in runs without a rollout. */
  otaNotice?: (agent: SimAgent, notice: MessageBody<'OTA_NOTICE'>) => void;
  /** Told whenever this agent's `connected` may have changed (sim/connected-tally.ts); absent where nobody counts. */
  readonly connectedTally?: ConnectedTally;
}

export interface SimAgentOptions {
  readonly deviceId: string;
  readonly deviceSeed: Uint8Array;
  readonly devicePublicKey: Uint8Array;
  readonly certSerialHex: string;
  readonly random: SeededRandom;
  /** The agent's own clock (virtual time plus its skew). */
  readonly clock: Clock;
  readonly kernel: KernelBridge;
  readonly preferredGateway: number;
}

const simSessionCrypto = createNodeSessionKeyCrypto();
const reconnectBaseMs = 500;
const reconnectMaxMs = 8_000;

/**
 * The driver the real agent has around its core (the WebSocket client), on the simulated
 * network: connects to a gateway, reconnects with jittered exponential backoff (failing over to
 * the next gateway), and can crash, restart and churn. The journal and the kernel survive a
 * crash, as a file and a device would.
 */
export class SimAgent implements TalliedAgent {
  readonly deviceId: string;
  readonly journal: ObservedJournal;
  core: AgentCore | undefined;
  /** The running process's handle on the journal; killed by a crash. */
  #incarnation: IncarnationJournal | undefined;
  /** The process runs. */
  up = false;
  /** Not churned away. */
  wantOnline = true;
  #link: SimLink | undefined;
  #handle: AgentConnectionHandle | undefined;
  #connectTimer: TimerHandle | undefined;
  #bootTimer: TimerHandle | undefined;
  #failures = 0;
  #gatewayIndex: number;
  readonly #o: SimAgentOptions;
  readonly #world: SimAgentWorld;
  tallyDirty = false;
  tallyConnected = false;
  /** Telemetry samples of earlier processes: dropped past the buffer bound, and buffered when the process died (gone with it). */
  #samplesDroppedBefore = 0;
  #samplesLostInCrashes = 0;
  /** Everything that can change `connected` goes through here: a frame either way, a transport closing, a core event, boot, crash, leave, stop. */
  readonly #mark: () => void;

  constructor(world: SimAgentWorld, options: SimAgentOptions) {
    this.#world = world;
    this.#o = options;
    this.deviceId = options.deviceId;
    this.#gatewayIndex = options.preferredGateway;
    this.journal = new ObservedJournal((commandId) => world.onExecuting(options.deviceId, commandId));
    const tally = world.connectedTally;
    this.#mark = tally === undefined ? () => {} : () => tally.mark(this);
  }

  /** Reality, for the presence checker: running with a ready session. */
  get connected(): boolean {
    return this.up && this.core?.isReady === true;
  }

  boot(): void {
    if (this.#bootTimer) this.#world.time.cancel(this.#bootTimer);
    this.#bootTimer = undefined;
    if (this.up) return;
    this.#mark();
    this.up = true;
    const world = this.#world;
    this.#incarnation = new IncarnationJournal(this.journal);
    const core: AgentCore = createAgentCore({
      deviceId: this.deviceId,
      signer: { kid: deviceKid(this.deviceId), seed: this.#o.deviceSeed, provider: world.provider },
      resolveGatewayKey: (kid) => world.resolveGatewayKey(kid),
      resolveCommandKey: (kid) => world.resolveCommandKey(kid),
      kernel: this.#o.kernel,
      journal: this.#incarnation,
      clock: this.#o.clock,
      random: this.#o.random,
      scheduler: world.time,
      // node:crypto's SHA-256 for the TELEMETRY chain, as the real agent runtime passes (same digests, a fraction of the pure-JS cost).
      sha256: nodeSha256,
      // The session MAC as the real agent offers it; X25519 keys from the seeded source, so a seed keeps one trace.
      sessionCrypto: world.sessionCrypto ?? simSessionCrypto,
      telemetrySource: createSyntheticMetricsSource({ random: this.#o.random }),
      telemetryIntervalMs: world.telemetryIntervalMs,
      // Only when batching, so that a scenario without it builds the agent exactly as before.
      ...((world.telemetrySamplesPerFrameMax ?? 1) > 1 ? { telemetrySamplesPerFrameMax: world.telemetrySamplesPerFrameMax! } : {}),
      ...((world.telemetrySamplesPerFrameMax ?? 1) > 1 && world.telemetryBatchDelayMs !== undefined ? { telemetryBatchDelayMs: world.telemetryBatchDelayMs } : {}),
      // Only when the scenario asks, so that a scenario without it builds the agent exactly as before.
      ...(world.telemetryAcks === true ? { telemetryAcks: true } : {}),
      agentVersion: 'sim/1',
      ...(world.otaNotice === undefined ? {} : { onOtaNotice: (notice: MessageBody<'OTA_NOTICE'>) => { if (this.core === core) world.otaNotice!(this, notice); } }),
      onEvent: (event) => {
        this.#mark();
        if (this.core !== core) return;
        this.#onEvent(event);
      },
    });
    this.core = core;
    core.start();
    world.trace('agent.boot', this.deviceId);
    this.#scheduleConnect(this.#o.random.intBelow(1_000));
  }

  /** Samples the agent dropped since the run started (its buffer bound, AgentCore.telemetrySamplesDropped), over every process. */
  get telemetrySamplesDropped(): number {
    return this.#samplesDroppedBefore + (this.core?.telemetrySamplesDropped ?? 0);
  }

  /** Samples buffered now (waiting for a batch to fill or for a session). */
  get telemetrySamplesBuffered(): number {
    return this.core?.telemetrySamplesBuffered ?? 0;
  }

  /** Samples that were buffered when a process crashed: its buffer is memory, gone with it. */
  get telemetrySamplesLostInCrashes(): number {
    return this.#samplesLostInCrashes;
  }

  /** The process dies: no goodbye on the wire; back after downMs. */
  crash(downMs: number): void {
    if (!this.up) return;
    this.#mark();
    this.#samplesDroppedBefore += this.core?.telemetrySamplesDropped ?? 0;
    this.#samplesLostInCrashes += this.core?.telemetrySamplesBuffered ?? 0;
    this.up = false;
    this.#world.trace('agent.crash', `${this.deviceId} ${downMs}`);
    this.#cancelConnect();
    const link = this.#link;
    this.#link = undefined;
    this.#handle = undefined;
    if (link) {
      link.abort('agent');
      this.#world.linkClosed(link);
    }
    // Dead at once: nothing the old process had pending may touch the journal any more.
    this.#incarnation?.kill();
    this.#incarnation = undefined;
    const core = this.core;
    this.core = undefined;
    void core?.stop();
    this.#bootTimer = this.#world.time.schedule(downMs, () => this.boot());
  }

  /** An orderly disconnect (device churn): the agent closes its socket and stays away offlineMs. */
  leave(offlineMs: number): void {
    if (!this.up || !this.wantOnline) return;
    this.#mark();
    this.wantOnline = false;
    this.#world.trace('agent.leave', `${this.deviceId} ${offlineMs}`);
    this.#cancelConnect();
    const link = this.#link;
    const handle = this.#handle;
    if (link && handle) {
      link.close('agent');
      handle.transportClosed();
    }
    this.#world.time.schedule(offlineMs, () => this.comeBack());
  }

  comeBack(): void {
    if (this.wantOnline) return;
    this.wantOnline = true;
    this.#world.trace('agent.back', this.deviceId);
    this.#scheduleConnect(0);
  }

  /** Liveness phase: everything that was down comes back now. */
  heal(): void {
    if (!this.up) this.boot();
    if (!this.wantOnline) this.comeBack();
  }

  async stop(): Promise<void> {
    this.#mark();
    this.#cancelConnect();
    this.wantOnline = false;
    const core = this.core;
    this.core = undefined;
    this.up = false;
    await core?.stop();
  }

  #onEvent(event: AgentCoreEvent): void {
    this.#world.onAgentEvent(this, event);
    if (event.kind === 'ready') {
      this.#failures = 0;
    } else if (event.kind === 'closed') {
      const link = this.#link;
      this.#link = undefined;
      this.#handle = undefined;
      if (link) this.#world.linkClosed(link);
      if (this.up && this.wantOnline) {
        this.#failures += 1;
        // Fail over: a gateway that keeps dropping us is probably down.
        if (this.#failures % 2 === 0) this.#gatewayIndex = (this.#gatewayIndex + 1) % this.#world.gatewayIds.length;
        const ceilingMs = Math.min(reconnectMaxMs, reconnectBaseMs * 2 ** Math.min(this.#failures, 10));
        this.#scheduleConnect(this.#o.random.intBetween(reconnectBaseMs, ceilingMs));
      }
    }
  }

  #cancelConnect(): void {
    if (this.#connectTimer) this.#world.time.cancel(this.#connectTimer);
    this.#connectTimer = undefined;
  }

  #scheduleConnect(delayMs: number): void {
    this.#cancelConnect();
    this.#connectTimer = this.#world.time.schedule(delayMs, () => {
      this.#connectTimer = undefined;
      this.#connect();
    });
  }

  #connect(): void {
    const core = this.core;
    if (!this.up || !this.wantOnline || this.#link || core === undefined) return;
    const world = this.#world;
    const gatewayId = world.gatewayIds[this.#gatewayIndex]!;
    const link = world.network.connect(this.deviceId, gatewayId);
    this.#link = link;
    const mark = this.#mark;
    mark();
    const handle = core.onConnected({ send: (bytes) => { mark(); link.send('to_gateway', bytes); }, close: () => { mark(); link.close('agent'); } });
    this.#handle = handle;
    link.attach('to_agent', { deliver: (bytes) => { mark(); handle.receive(bytes); }, closed: () => { mark(); handle.transportClosed(); } });
    const gateway = world.gateway(gatewayId);
    if (gateway === undefined) {
      // Connection refused: the gateway process is down.
      link.abort('gateway');
      return;
    }
    const gatewayHandle = gateway.acceptConnection({
      deviceId: this.deviceId, devicePublicKey: this.#o.devicePublicKey, certSerialHex: this.#o.certSerialHex,
      send: (bytes) => link.send('to_agent', bytes),
      close: () => link.close('gateway'),
    });
    link.attach('to_gateway', { deliver: (bytes) => gatewayHandle.receive(bytes), closed: () => gatewayHandle.transportClosed() });
  }
}
