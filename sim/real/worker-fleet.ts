import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgentCore, type AgentCore, type AgentCoreEvent } from '../../agent/agent-core.js';
import { kernelCommandKeys, loadIdentity } from '../../agent/enrollment.js';
import { IoctlKernelBridge, type KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { agentPaths, pinnedKeyResolver } from '../../agent/state/agent-state.js';
import { createSyntheticMetricsSource } from '../../agent/telemetry/synthetic-metrics.js';
import { startWsAgentDriver, type WsAgentDriver } from '../../agent/ws-transport.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import type { Clock, TimerHandle } from '../../core/ports/ports.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { systemScheduler } from '../../runtime/system.js';
import type { KernelFault, StatusFault } from '../../kernel/mock/faults.js';
import { FileCommandJournal } from '../../agent/command-journal-file.js';
import type { CommandJournal } from '../../agent/command-journal.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { ExecutionChecker } from '../checkers.js';
import { IncarnationJournal, ObservedJournal, observedKernel } from '../observed-agent-parts.js';
import { SeededRandom } from '../../core/random/prng.js';
import { TelemetryTally } from '../telemetry-tally.js';
import { otaFactoryVersion, startWorkerOta, type WorkerOta } from './worker-ota.js';
import { workerViolationsMax, type DeviceFacts, type OtaDeviceFacts, type WorkerAgentSpec, type WorkerSettings, type WorkerStatus } from './messages.js';

const provider = createNodeEd25519Provider();


interface RunningAgent {
  readonly deviceId: string;
  readonly core: AgentCore;
  driver: WsAgentDriver | undefined;
  startTimer: TimerHandle | undefined;
  /** Added to the wall clock (the spec's skew, changed by a chaos run's `clock_skew`). */
  skewMs: number;
  deliveries: number;
  lastDeliveryAtMs: number | null;
  readonly closeReasons: string[];
  /** With settings.ota: the agent's update runner. */
  readonly ota: WorkerOta | undefined;
}

const closeReasonsKept = 5;
const kernelCallLog = 'kernel-calls.log';
const journalFile = 'journal.jsonl';

/** A durable journal that tells when a command is marked executing (as ObservedJournal does for the in-memory one). */
class ObservedDurableJournal extends IncarnationJournal {
  constructor(durable: CommandJournal, private readonly onExecuting: (commandId: string) => void) {
    super(durable);
  }

  override async executing(commandId: string): Promise<void> {
    await super.executing(commandId);
    this.onExecuting(commandId);
  }
}

/** Kernel calls an earlier process of this agent made, by command id, from its log (a torn last line is dropped). */
function earlierKernelCalls(dir: string): Map<string, number> {
  const calls = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync(join(dir, kernelCallLog), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const lines = text.split('\n');
  lines.pop(); // the part after the last newline: empty, or a line the kill tore
  for (const id of lines) if (id.length > 0) calls.set(id, (calls.get(id) ?? 0) + 1);
  return calls;
}

/**
 * The core as the socket driver sees it, with every frame the agent hands to a connection shown to
 * `onSent` first (the in-process full tier reads the same frames on its links, sim/sim-agent.ts).
 */
function sentFramesTapped(core: AgentCore, onSent: (bytes: Uint8Array) => void): AgentCore {
  return {
    start: () => core.start(),
    onConnected: (transport) => core.onConnected({ send: (bytes) => { onSent(bytes); transport.send(bytes); }, close: () => transport.close() }),
    stop: () => core.stop(),
    idle: () => core.idle(),
    get isReady() { return core.isReady; },
    get telemetrySamplesDropped() { return core.telemetrySamplesDropped; },
    get telemetrySamplesBuffered() { return core.telemetrySamplesBuffered; },
    get telemetrySamplesUnacked() { return core.telemetrySamplesUnacked; },
    get telemetrySamplesUnackedDropped() { return core.telemetrySamplesUnackedDropped; },
    sendOtaReport: (report) => core.sendOtaReport(report),
    checkPolicyBundle: (command) => core.checkPolicyBundle(command),
    get policyBundlesWaiting() { return core.policyBundlesWaiting; },
    get policyBundlesDropped() { return core.policyBundlesDropped; },
  };
}

/**
 * The agents of one worker process: the real agent core (in-memory journal, synthetic telemetry
 * and the mock kernel, all drawn from the agent's seeded PRNG) over the real WebSocket/TLS driver
 * with the device certificate from enrollment. Kernel calls are attributed to the command the
 * journal last marked executing (sim/checkers.ts ExecutionChecker), as in the virtual runs.
 */
export class WorkerFleet {
  readonly #agents: RunningAgent[] = [];
  readonly #checker = new ExecutionChecker();
  /** Commands each device's journal marked executing (for the per-command execution counts). */
  readonly #marked = new Map<string, Set<string>>();
  readonly #onViolation: (message: string) => void;
  readonly #onAgentEvent: ((deviceId: string, event: AgentCoreEvent) => void) | undefined;
  #violations = 0;
  #started = 0;
  #sessionsReady = 0;
  #sessionsClosed = 0;
  #executions = 0;
  #rejections = 0;
  #stopping = false;
  /** Durable journals: kernel calls of earlier processes of each device, by command. */
  readonly #earlier = new Map<string, Map<string, number>>();
  #earlierCalls = 0;
  /** With switchableKernelFaults: one status fault every mock kernel of this worker consults at each call. */
  readonly #switchable: StatusFault = { kind: 'status', status: 'IO_ERROR', ratio: { numerator: 0, denominator: 1 } };
  /** With settings.ota: devices whose update health check fails (an `ota_unhealthy` message). */
  readonly #unhealthy = new Set<string>();
  /** Telemetry frames and samples as they leave our agents, counted as the in-process full tier counts them. */
  readonly #telemetry = new TelemetryTally();

  /** `onAgentEvent`: each agent's events with its device id (`sdc bench reconnect` times each agent's return). */
  constructor(options: { onViolation: (message: string) => void; onAgentEvent?: (deviceId: string, event: AgentCoreEvent) => void }) {
    this.#onViolation = options.onViolation;
    this.#onAgentEvent = options.onAgentEvent;
  }

  /** Loads each agent's enrollment and schedules its first connection after its start delay. */
  async start(specs: readonly WorkerAgentSpec[], settings: WorkerSettings): Promise<void> {
    const kernelFaults: KernelFault[] = settings.kernelErrors
      ? [{ kind: 'status', status: settings.kernelErrors.status, ratio: settings.kernelErrors.ratio }]
      : settings.switchableKernelFaults ? [this.#switchable] : [];
    for (const spec of specs) {
      const identity = await loadIdentity(agentPaths(spec.dir));
      const random = new SeededRandom(spec.seed);
      const state = { skewMs: spec.clockSkewMs, deliveries: 0, lastDeliveryAtMs: null as number | null, closeReasons: [] as string[] };
      // Read through `agent` once it exists, so a chaos run's clock_skew moves this clock.
      const clock: Clock = { nowMs: () => Date.now() + (agentRef?.skewMs ?? state.skewMs) };
      let agentRef: RunningAgent | undefined;
      const agentSeed = random.bytes(32);
      const serviceSeed = random.bytes(32);
      const deviceId = identity.deviceId;
      let bridgeRef: KernelBridge | undefined;
      let coreRef: AgentCore | undefined;
      // Created before the kernel: the mock kernel reads the runner's staged artifacts through it.
      const ota = settings.ota === true ? startWorkerOta({
        identity, dir: spec.dir, kernel: () => bridgeRef!, clock, random: random.fork(), scheduler: systemScheduler, ed25519: provider,
        send: (report) => coreRef?.sendOtaReport(report) ?? false, healthy: () => !this.#unhealthy.has(deviceId),
        // The agent's held policy bundle decides the rollout's STAGE and COMMIT, as in agent/agent-runtime.ts.
        checkCommand: (command) => coreRef?.checkPolicyBundle(command),
        ...(settings.otaArtifactOrigins === undefined ? {} : { artifactOrigins: settings.otaArtifactOrigins }),
      }) : undefined;
      const device = new MockIoctlDevice({
        ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock, scheduler: systemScheduler,
        faults: kernelFaults, random: random.fork(), lockScreenSupported: settings.lockScreenSupported === true,
        commandKeys: kernelCommandKeys(identity),
        ...(ota === undefined ? {} : { artifacts: ota.artifacts, installedVersion: otaFactoryVersion }),
      });
      const bridge = new IoctlKernelBridge({
        device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: BigInt(clock.nowMs()) * 1000n,
      });
      bridgeRef = bridge;
      const marked = new Set<string>();
      this.#marked.set(deviceId, marked);
      let current: string | undefined;
      const onExecuting = (commandId: string) => {
        marked.add(commandId);
        current = commandId;
        this.#checker.executing(deviceId, commandId);
      };
      const earlier = settings.durableJournal ? earlierKernelCalls(spec.dir) : new Map<string, number>();
      this.#earlier.set(deviceId, earlier);
      for (const [commandId, count] of earlier) {
        marked.add(commandId);
        this.#earlierCalls += count;
      }
      const journal: CommandJournal = settings.durableJournal
        ? new ObservedDurableJournal(await FileCommandJournal.open({ path: join(spec.dir, journalFile) }), onExecuting)
        : new ObservedJournal(onExecuting);
      const core = createAgentCore({
        deviceId, signer: { kid: deviceKid(deviceId), seed: identity.seed, provider },
        resolveGatewayKey: pinnedKeyResolver(identity.trust.gateway_keys), resolveCommandKey: pinnedKeyResolver(identity.trust.command_keys),
        kernel: observedKernel(bridge, () => {
          const commandId = current;
          current = undefined;
          // Logged before the call runs: a kill after this line counts the call, as it may have had its effect.
          if (settings.durableJournal) appendFileSync(join(spec.dir, kernelCallLog), `${commandId ?? '-'}\n`);
          if (commandId !== undefined && (earlier.get(commandId) ?? 0) > 0) this.#violate(`command ${commandId} took effect again on ${deviceId} after a restart`);
          const violation = this.#checker.kernelCall(deviceId);
          if (violation) this.#violate(violation.message);
        }), journal, clock, random, scheduler: systemScheduler,
        // As the real agent (agent/agent-runtime.ts): the session MAC, so heartbeats and telemetry
        // are MAC'd, not Ed25519-signed frame by frame. Without it every bench and chaos run on real
        // sockets measured a path no deployed agent takes (15 % of a gateway's busy time, docs/benchmarks.md).
        sessionCrypto: createNodeSessionKeyCrypto(),
        telemetrySource: createSyntheticMetricsSource({ random: random.fork() }), telemetryIntervalMs: settings.telemetryIntervalMs,
        ...(settings.telemetrySamplesPerFrameMax === undefined ? {} : { telemetrySamplesPerFrameMax: settings.telemetrySamplesPerFrameMax }),
        ...(settings.telemetryBatchDelayMs === undefined ? {} : { telemetryBatchDelayMs: settings.telemetryBatchDelayMs }),
        agentVersion: 'sim-real/1', onEvent: (event) => { this.#onEvent(agent, event); this.#onAgentEvent?.(deviceId, event); },
        ...(ota === undefined ? {} : { onOtaNotice: (notice: Parameters<WorkerOta['runner']['onNotice']>[0]) => ota.runner.onNotice(notice) }),
      });
      coreRef = core;
      if (ota !== undefined) await ota.runner.recover();
      const agent: RunningAgent = { deviceId, core, driver: undefined, startTimer: undefined, ...state, ota };
      agentRef = agent;
      agent.startTimer = systemScheduler.schedule(spec.startDelayMs, () => {
        agent.startTimer = undefined;
        if (this.#stopping) return;
        core.start();
        agent.driver = startWsAgentDriver({
          core: sentFramesTapped(core, (bytes) => this.#telemetry.sent(bytes)), urls: spec.gatewayUrls ?? identity.trust.gateway_urls, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, caPem: identity.trust.ca_pem,
          random, scheduler: systemScheduler, backoffMaxMs: settings.backoffMaxMs ?? 8_000,
        });
        this.#started += 1;
      });
      this.#agents.push(agent);
    }
  }

  status(): WorkerStatus {
    return {
      agents: this.#agents.length, started: this.#started, connected: this.#agents.reduce((n, a) => n + (a.core.isReady ? 1 : 0), 0),
      sessionsReady: this.#sessionsReady, sessionsClosed: this.#sessionsClosed, executions: this.#executions, rejections: this.#rejections,
      kernelCalls: this.#checker.kernelCalls + this.#earlierCalls, violations: this.#violations,
      telemetryFramesSent: this.#telemetry.framesSent, telemetryBatchFramesSent: this.#telemetry.batchFramesSent, telemetrySamplesSent: this.#telemetry.samplesSent,
      telemetrySamplesBuffered: this.#agents.reduce((n, a) => n + a.core.telemetrySamplesBuffered, 0),
      telemetrySamplesDropped: this.#agents.reduce((n, a) => n + a.core.telemetrySamplesDropped, 0),
    };
  }

  setKernelFaults(faults: { numerator: number; denominator: number; status: 'BUSY' | 'IO_ERROR' }): void {
    this.#switchable.status = faults.status;
    this.#switchable.ratio = { numerator: faults.numerator, denominator: faults.denominator };
  }

  setClockSkew(items: ReadonlyArray<readonly [string, number]>): void {
    const skews = new Map(items);
    for (const agent of this.#agents) {
      const skewMs = skews.get(agent.deviceId);
      if (skewMs !== undefined) agent.skewMs = skewMs;
    }
  }

  deviceFacts(deviceIds: readonly string[]): DeviceFacts[] {
    const wanted = new Set(deviceIds);
    return this.#agents.filter((a) => wanted.has(a.deviceId)).map((a) => ({
      deviceId: a.deviceId, ready: a.core.isReady, deliveries: a.deliveries, lastDeliveryAtMs: a.lastDeliveryAtMs, closeReasons: [...a.closeReasons],
    }));
  }

  setOtaUnhealthy(deviceIds: readonly string[]): void {
    for (const id of deviceIds) this.#unhealthy.add(id);
  }

  /** The update path of these devices (those of ours that run one). */
  async otaFacts(deviceIds: readonly string[]): Promise<OtaDeviceFacts[]> {
    const wanted = new Set(deviceIds);
    return Promise.all(this.#agents.filter((a) => wanted.has(a.deviceId) && a.ota !== undefined).map((a) => a.ota!.facts()));
  }

  /** [command id, kernel executions] for every command marked executing on one of our devices. */
  executionCounts(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const [deviceId, commandIds] of this.#marked) {
      const earlier = this.#earlier.get(deviceId);
      for (const commandId of commandIds) out.push([commandId, this.#checker.executions(deviceId, commandId) + (earlier?.get(commandId) ?? 0)]);
    }
    return out;
  }

  connectedDeviceIds(): string[] {
    return this.#agents.filter((a) => a.core.isReady).map((a) => a.deviceId);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled(this.#agents.map(async (agent) => {
      if (agent.startTimer) systemScheduler.cancel(agent.startTimer);
      if (agent.driver) await agent.driver.stop();
    }));
  }

  #violate(message: string): void {
    this.#violations += 1;
    if (this.#violations <= workerViolationsMax) this.#onViolation(message);
  }

  #onEvent(agent: RunningAgent, event: AgentCoreEvent): void {
    if (event.kind === 'ready') this.#sessionsReady += 1;
    else if (event.kind === 'closed') {
      this.#sessionsClosed += 1;
      agent.closeReasons.push(event.reason);
      if (agent.closeReasons.length > closeReasonsKept) agent.closeReasons.shift();
    } else if (event.kind === 'executed') this.#executions += 1;
    else if (event.kind === 'rejected') this.#rejections += 1;
    if (event.kind === 'executed' || event.kind === 'rejected') {
      agent.deliveries += 1;
      agent.lastDeliveryAtMs = Date.now();
    }
  }
}
