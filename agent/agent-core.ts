import { SdcError, type ErrorCode } from '../core/errors/index.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { DevicePosture } from '../core/protocol/messages/posture.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { Clock, RandomSource, Scheduler, SessionKeyCrypto, Sha256, TimerHandle } from '../core/ports/ports.js';
import { hexFromBytes } from '../core/crypto/bytes.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { AgentConnection, type AgentEvent } from '../core/protocol/session/agent-connection.js';
import type { FrameSigner } from '../core/protocol/session/codec.js';
import { verifyCommand } from '../core/protocol/signed-command.js';
import { clockOffsetLimits } from '../core/protocol/clock-offset.js';
import { telemetryBatchLimits } from '../core/protocol/limits.js';
import { lateTimerLimitsFor, stallDeferralMs } from '../core/time/late-timer.js';
import { traceLogFields } from '../core/trace/trace-context.js';
import type { CommandJournal, CommandResultBody } from './command-journal.js';
import { kernelBridgeLimits, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { executeOpcode, type OpcodeExecutorOptions } from './opcode-executor.js';
import { receivedBundleText, type ReceivedBundleText } from '../core/protocol/policy-bundle.js';
import { claimedBundleOrder, claimsNewer, createMemoryPolicyBundleStore, PolicyBundleGuard, type ClaimedBundleOrder, type PolicyBundleStore } from './policy-bundle-guard.js';
import { expiredOnOwnClock, issuedBeforeJournal } from './command-acceptance.js';
import { UnackedTelemetry } from './telemetry/unacked-telemetry.js';

export type TelemetryMetrics = MessageBody<'TELEMETRY'>['metrics'];

/** Where telemetry samples come from: the host (host-metrics.ts) or a seeded synthetic source. */
export interface TelemetrySource {
  sample(): Promise<TelemetryMetrics>;
}

/** One connection's byte pipe, supplied by the driver (ws-transport.ts, or the simulator's in-memory link). */
export interface AgentTransport {
  send(bytes: Uint8Array): void;
  close(): void;
}

/** What the driver calls for one connection. */
export interface AgentConnectionHandle {
  receive(bytes: Uint8Array): void;
  transportClosed(): void;
}

/** pino-compatible; the default is silent. */
export interface AgentLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** What the core reports to an observer (the simulator's oracle, tests). */
export type AgentCoreEvent =
  | { kind: 'ready'; sessionId: string; clockOffsetMs: number }
  | { kind: 'closed'; reason: string }
  | { kind: 'executed'; commandId: string; status: CommandResultBody['status'] }
  | { kind: 'rejected'; commandId: string; code: string }
  | { kind: 'interrupted'; commandId: string }
  /**
   * A pushed policy bundle taken or refused (policy-bundle-guard.ts). `unchanged`: the very bundle
   * held already, accepted again and not written; `dropped`: never checked, because a newer one
   * (or the same) was waiting already (POLICY_BUNDLE_VERSION_STALE, no report sent).
   */
  | { kind: 'policy_bundle'; status: 'accepted' | 'refused'; version: number; code?: string; unchanged?: true; dropped?: true };

export interface AgentCoreOptions {
  deviceId: string;
  /** The device key: kid deviceKid(deviceId). */
  signer: FrameSigner;
  resolveGatewayKey: (kid: string) => Uint8Array | undefined;
  resolveCommandKey: (kid: string) => Uint8Array | undefined;
  kernel: KernelBridge;
  journal: CommandJournal;
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  /** Hashes the TELEMETRY chain (prev_hash); default the pure @noble/hashes one, runtime passes node:crypto's. */
  sha256?: Sha256;
  /**
   * X25519, HKDF and HMAC for the session MAC (ADR 0004): offered at every AUTH, so HEARTBEAT and
   * TELEMETRY are MAC'd instead of signed when the gateway agrees. Absent: every frame is signed.
   */
  sessionCrypto?: SessionKeyCrypto;
  logger?: AgentLogger;
  telemetrySource: TelemetrySource;
  telemetryIntervalMs: number;
  agentVersion: string;
  /**
   * Samples kept while disconnected or while a batch fills; the oldest is dropped first (counted:
   * AgentCore.telemetrySamplesDropped). At least telemetrySamplesPerFrameMax.
   */
  telemetryBufferMax?: number;
  /**
   * Samples per TELEMETRY_BATCH frame (decision 0004, "Batches"): above 1 (and with sessionCrypto)
   * the agent asks for batches at AUTH and, when the gateway announces them, sends the buffered
   * samples as one frame once this many are buffered (or the gateway's announced bound, if lower)
   * or telemetryBatchDelayMs after the first of them. Default 1: one TELEMETRY frame per sample,
   * and AUTH as before. A gateway that announces none gets one TELEMETRY per sample.
   */
  telemetrySamplesPerFrameMax?: number;
  /** The longest a buffered sample waits for its batch to fill while connected (default agentCoreLimits.telemetryBatchDelayMs). */
  telemetryBatchDelayMs?: number;
  /**
   * Offer TELEMETRY_ACK at every AUTH (decision 0004, "Acknowledgements"; `sdc agent
   * --telemetry-acks`): when the gateway announces it, the samples sent are kept until
   * acknowledged, and those unacknowledged when the session ends are sent again, first, in the
   * next one. Default off: AUTH as before, samples forgotten once sent.
   */
  telemetryAcks?: boolean;
  /** Samples sent and not yet acknowledged kept at most (default agentCoreLimits.telemetryUnackedMax); past it the oldest are forgotten (counted). */
  telemetryUnackedMax?: number;
  /**
   * Deliveries waiting to be taken (checked, journaled, acknowledged); more are dropped (the
   * gateway retries). Taken commands wait for their turn to run in the journal, bounded by its
   * unfinishedMax.
   */
  deliveriesMax?: number;
  /** Time allowed from connection to AUTH_ACK. */
  authTimeoutMs?: number;
  /** Heartbeat intervals without any frame from the gateway before the connection is dropped. */
  silenceIntervalsMax?: number;
  artifactPath?: OpcodeExecutorOptions['artifactPath'];
  processEntriesMax?: number;
  /** EXEC_COLLECT_ARTIFACT's handler (agent/ota/artifact-collector.ts); absent: the opcode fails ARTIFACT_KIND_UNSUPPORTED. */
  collectArtifact?: OpcodeExecutorOptions['collectArtifact'];
  onEvent?: (event: AgentCoreEvent) => void;
  /** Compliance facts for each AUTH (messages/posture.ts), read at every connection; absent: none reported. */
  posture?: () => DevicePosture;
  /** Where the enforced policy bundle is kept across restarts (policy-bundle-file.ts); default in memory. */
  policyBundleStore?: PolicyBundleStore;
  /** Takes OTA_NOTICE bodies (agent/ota/update-runner.ts); absent: notices are logged and dropped. */
  onOtaNotice?: (notice: MessageBody<'OTA_NOTICE'>) => void;
}

export interface AgentCore {
  /** Starts telemetry sampling and recovers the journal (entries left by a previous run). */
  start(): void;
  /** A new connection: the previous one, if any, is closed first. */
  onConnected(transport: AgentTransport): AgentConnectionHandle;
  /**
   * Stops timers, closes the connection and waits for the command in progress (its result is
   * journaled). Commands waiting behind it do not start: they stay `received` for the next start.
   */
  stop(): Promise<void>;
  /** Resolves when no command work is queued (tests, the simulator). */
  idle(): Promise<void>;
  readonly isReady: boolean;
  /** Samples dropped since start because the buffer was full (telemetryBufferMax; the oldest go first), or because their frame could not be sent. */
  readonly telemetrySamplesDropped: number;
  /** Samples buffered now (not yet sent): kept across sessions, up to telemetryBufferMax. */
  readonly telemetrySamplesBuffered: number;
  /** Samples sent in this session and not yet acknowledged (telemetryAcks with a gateway that announced acks), up to telemetryUnackedMax. */
  readonly telemetrySamplesUnacked: number;
  /** Samples sent and forgotten unacknowledged because telemetryUnackedMax was reached (they may still have been stored; the guarantee was lost). */
  readonly telemetrySamplesUnackedDropped: number;
  /** Sends an OTA_REPORT on the current session; false when there is no ready session (the update runner sends it again later). */
  sendOtaReport(report: MessageBody<'OTA_REPORT'>): boolean;
  /** The held policy bundle's refusal of a signed command (an OTA rollout's STAGE or COMMIT); undefined when it allows it or none is held. */
  checkPolicyBundle(command: SignedCommand): SdcError | undefined;
  /** Pushed policy bundles waiting for their turn to be checked: 0 or 1 (the newest claim wins; see #onPolicyBundle). */
  readonly policyBundlesWaiting: number;
  /** Pushed policy bundles dropped unchecked since start, because one at least as new was waiting already. */
  readonly policyBundlesDropped: number;
}

const silentLogger: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Journal refusals of `received` that are back-pressure, not an answer (agent #handleDelivery). */
const journalNotTakenCodes: ReadonlySet<string> = new Set(['AGENT_JOURNAL_FULL', 'AGENT_JOURNAL_WRITE_FAILED', 'AGENT_JOURNAL_UNUSABLE']);

/** The agent core's defaults (each option above overrides its own) and its fixed bounds. */
export const agentCoreLimits = Object.freeze({
  /** A gateway that has not answered AUTH in 30 s is not coming back on this connection: reconnect. */
  authTimeoutMs: 30_000,
  /** Telemetry samples kept while disconnected (the oldest dropped first): a few KiB, minutes of history at the CLI's 5 s interval. */
  telemetryBufferMax: 64,
  /**
   * A batch's first sample waits at most this long for the batch to fill (when batching): 30 s is
   * a few samples at the CLI's 5 s interval, well inside the presence timeout, so a dashboard sees
   * a batching device at most half a minute late.
   */
  telemetryBatchDelayMs: 30_000,
  /**
   * Samples sent and awaiting TELEMETRY_ACK (telemetryAcks): a gateway acknowledges at least once
   * per heartbeat (10 s by default), so at the CLI's 5 s interval two or three wait; 64 (as many as
   * the disconnected buffer holds, which they go back to when the session ends) covers a batching
   * agent or a slow bus for minutes.
   */
  telemetryUnackedMax: 64,
  /** Deliveries waiting to be taken; the gateway retries a dropped one, so more would only use memory. */
  deliveriesMax: 64,
  /** Heartbeat intervals of silence before the connection is dropped: one or two lost heartbeats are tolerated. */
  silenceIntervalsMax: 3,
  /** Heartbeats awaiting their echo; older ones are forgotten (their results are re-sent at the next AUTH_ACK). */
  heartbeatsInFlightMax: 16,
  /** A result's error message is cut to this: the COMMAND_RESULT schema allows 512 characters. */
  errorMessageCharsMax: 512,
});

interface LiveConnection {
  readonly connection: AgentConnection;
  readonly transport: AgentTransport;
  heartbeatIntervalMs: number;
  heartbeatTimer?: TimerHandle;
  /** When `heartbeatTimer` was meant to fire, so a late tick is seen (core/time/late-timer.ts). */
  heartbeatDueMs: number;
  /** A late tick deferred its silence judgement and nothing was heard since: the next judgement is final. */
  silenceDeferred: boolean;
  authTimer?: TimerHandle;
  /** Results sent since the last heartbeat. */
  resultsSinceHeartbeat: string[];
  lastHeardMs: number;
  /** Heartbeats not yet echoed, with the results sent before each (see #onHeartbeatEcho). */
  heartbeatsInFlight: Array<{ uptimeMs: number; commandIds: string[] }>;
}

export function createAgentCore(options: AgentCoreOptions): AgentCore {
  return new DefaultAgentCore(options);
}

/**
 * The device agent without I/O: one AgentConnection per transport, the command pipeline over
 * the journal and the kernel bridge, heartbeats and telemetry on the Scheduler. Time, randomness
 * and bytes come in through ports, so the simulator runs thousands of these on virtual time.
 *
 * At most once: a command id is journaled (fsync) before it is acknowledged, marked executing
 * before the kernel sees it, and never executed again once marked: a redelivery is answered from
 * the journal, and an entry a crash left `executing` is reported as AGENT_INTERRUPTED.
 *
 * Two lanes: deliveries are taken (checked, journaled, acknowledged) as they arrive, so a command
 * waiting behind a long-running one is acknowledged at once and its gateway does not give up on
 * it; commands then run one at a time, in the order taken. Just before a command runs, its
 * deadline and device_seq are checked again: one whose deadline passed while it waited is
 * refused (a signed `rejected` result, AGENT_COMMAND_EXPIRED) and never runs.
 *
 * Clock: deadlines are judged on the gateway's clock (the device's minus the offset the gateway
 * measured at AUTH; clock-offset.ts), so a skewed device clock neither refuses live commands nor
 * runs dead ones. Before the first session the offset is 0.
 */
class DefaultAgentCore implements AgentCore {
  readonly #o: AgentCoreOptions;
  readonly #log: AgentLogger;
  readonly #startedAtMs: number;
  #live: LiveConnection | undefined;
  /** Commands running, one at a time, and the agent's other journal work (recovery, confirmations). */
  #work: Promise<void> = Promise.resolve();
  /** Deliveries being taken; starts after recovery, so a redelivery sees the recovered journal. */
  #intake: Promise<void> = Promise.resolve();
  #queued = 0;
  #intakeWaiting = 0;
  /** Device clock minus the gateway's, from the last AUTH_ACK. */
  #clockOffsetMs = 0;
  #telemetryTimer: TimerHandle | undefined;
  #sampling = false;
  #telemetryBuffer: Array<{ sampledAtMs: number; metrics: TelemetryMetrics }> = [];
  #telemetryPrevHash: string | undefined;
  /** Samples per batch this agent wants (1: no batches) and its buffer bound, resolved once. */
  readonly #samplesPerFrameMax: number;
  readonly #telemetryBufferMax: number;
  #telemetryBatchTimer: TimerHandle | undefined;
  #telemetryDropped = 0;
  /** Sent and not acknowledged (TELEMETRY_ACK): sent again, first, in the next session (decision 0004, "Acknowledgements"). */
  readonly #unacked: UnackedTelemetry<TelemetryMetrics>;
  #unackedDropped = 0;
  #lastUptimeMs = -1;
  #started = false;
  #stopped = false;
  /** The signed policy bundle enforced before every command, also while the control plane is down. */
  readonly #bundle: PolicyBundleGuard;
  /** The pushed bundle waiting on the intake lane, with what it claims to be; at most one (#onPolicyBundle). */
  #bundleWaiting: { signed: unknown; claim: ClaimedBundleOrder; bundleText: ReceivedBundleText | undefined } | undefined;
  /** Bundles dropped since the waiting one was queued (logged once each time, then summed when it is taken). */
  #bundleDropsWhileWaiting = 0;
  #bundlesDropped = 0;

  constructor(options: AgentCoreOptions) {
    if (!(options.telemetryIntervalMs > 0)) throw new SdcError('PROTO_INVALID_ARGUMENT', 'telemetryIntervalMs must be positive');
    this.#samplesPerFrameMax = options.telemetrySamplesPerFrameMax ?? 1;
    this.#telemetryBufferMax = options.telemetryBufferMax ?? agentCoreLimits.telemetryBufferMax;
    if (!Number.isSafeInteger(this.#samplesPerFrameMax) || this.#samplesPerFrameMax < 1 || this.#samplesPerFrameMax > telemetryBatchLimits.samplesPerFrameMax) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', `telemetrySamplesPerFrameMax must be an integer from 1 to ${telemetryBatchLimits.samplesPerFrameMax}`);
    }
    if (!Number.isSafeInteger(this.#telemetryBufferMax) || this.#telemetryBufferMax < this.#samplesPerFrameMax) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', 'telemetryBufferMax must be an integer of at least telemetrySamplesPerFrameMax');
    }
    const batchDelayMs = options.telemetryBatchDelayMs ?? agentCoreLimits.telemetryBatchDelayMs;
    if (!Number.isSafeInteger(batchDelayMs) || batchDelayMs < 1) throw new SdcError('PROTO_INVALID_ARGUMENT', 'telemetryBatchDelayMs must be a positive integer');
    this.#unacked = new UnackedTelemetry(options.telemetryUnackedMax ?? agentCoreLimits.telemetryUnackedMax);
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#startedAtMs = options.clock.nowMs();
    this.#bundle = new PolicyBundleGuard({
      deviceId: options.deviceId, resolveKey: options.resolveCommandKey, provider: options.signer.provider, sha256: options.sha256 ?? nobleSha256,
      store: options.policyBundleStore ?? createMemoryPolicyBundleStore(),
    });
  }

  /**
   * The held policy bundle's check of a signed command the agent did not get as a delivery: an
   * OTA rollout's STAGE and COMMIT (agent/ota/update-runner.ts), judged exactly as a delivered
   * command is, on the gateway's clock. Undefined when the bundle allows it or none is held.
   */
  checkPolicyBundle(command: SignedCommand): SdcError | undefined {
    return this.#bundle.check(command, this.#gatewayNowMs());
  }

  sendOtaReport(report: MessageBody<'OTA_REPORT'>): boolean {
    const live = this.#live;
    if (live === undefined || !this.isReady) return false;
    return this.#trySend(live, (c) => c.sendOtaReport(report, this.#o.clock.nowMs()));
  }

  get isReady(): boolean {
    return this.#live?.connection.state === 'ready';
  }

  get telemetrySamplesDropped(): number {
    return this.#telemetryDropped;
  }

  get telemetrySamplesBuffered(): number {
    return this.#telemetryBuffer.length;
  }

  get telemetrySamplesUnacked(): number {
    return this.#unacked.size;
  }

  get telemetrySamplesUnackedDropped(): number {
    return this.#unackedDropped;
  }

  get policyBundlesWaiting(): number {
    return this.#bundleWaiting === undefined ? 0 : 1;
  }

  get policyBundlesDropped(): number {
    return this.#bundlesDropped;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    // Before recovery: a journaled command left from the last run is checked against the bundle too.
    this.#enqueue(() => this.#loadPolicyBundle());
    this.#enqueue(() => this.#recover());
    this.#intake = this.#work;
    // A random phase, so a fleet started together does not sample in lockstep.
    this.#scheduleTelemetry(this.#o.random.intBelow(this.#o.telemetryIntervalMs) + 1);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#telemetryTimer) this.#o.scheduler.cancel(this.#telemetryTimer);
    this.#telemetryTimer = undefined;
    this.#cancelBatchTimer();
    // A clean stop (SIGTERM, an update's restart) sends a filling batch rather than dropping it with
    // the process: the buffer is memory only. Not connected: what is buffered goes with the process.
    if (this.#live && this.isReady && this.#samplesPerFrameMax > 1) this.#flushTelemetry(this.#live);
    if (this.#live) this.#closeLive(this.#live, 'agent stopping', true);
    await this.idle();
  }

  async idle(): Promise<void> {
    for (;;) {
      const work = this.#work;
      const intake = this.#intake;
      await Promise.all([work, intake]);
      if (work === this.#work && intake === this.#intake) return;
    }
  }

  /** The runtime's facts, with the policy bundle version enforced now (when one is held), for this AUTH. */
  #posture(facts: () => DevicePosture): DevicePosture {
    const version = this.#bundle.version;
    return { ...facts(), ...(version === undefined ? {} : { policy_bundle_version: version }) };
  }

  /** The gateway's clock now (the control plane's, for deadlines). */
  #gatewayNowMs(): number {
    return this.#o.clock.nowMs() - this.#clockOffsetMs;
  }

  onConnected(transport: AgentTransport): AgentConnectionHandle {
    if (this.#live) this.#closeLive(this.#live, 'replaced by a new connection', true);
    const connection = new AgentConnection({
      deviceId: this.#o.deviceId, signer: this.#o.signer, resolveGatewayKey: this.#o.resolveGatewayKey,
      agentVersion: this.#o.agentVersion, lastCommandSeq: this.#o.journal.highestExecutedSeq(), traceContext: true,
      // Asked only when batching is configured: AUTH is otherwise as before (older gateways, the simulator's traces).
      ...(this.#samplesPerFrameMax > 1 ? { telemetryBatch: true } : {}),
      // Offered only when configured: AUTH is otherwise byte for byte as before (older gateways, the simulator's traces).
      ...(this.#o.telemetryAcks === true ? { telemetryAck: true } : {}),
      // Announced by an agent that runs updates, which requires the signed state for cancel and the nonce; AUTH is otherwise as before.
      ...(this.#o.onOtaNotice === undefined ? {} : { otaNoticeState: true }),
      ...(this.#o.posture === undefined ? {} : { posture: this.#posture(this.#o.posture) }),
      ...(this.#o.sessionCrypto === undefined ? {} : { sessionMac: { crypto: this.#o.sessionCrypto, random: this.#o.random } }),
    });
    const live: LiveConnection = {
      connection, transport, heartbeatIntervalMs: 0, resultsSinceHeartbeat: [], heartbeatsInFlight: [], lastHeardMs: this.#o.clock.nowMs(),
      heartbeatDueMs: 0, silenceDeferred: false,
    };
    this.#live = live;
    live.authTimer = this.#o.scheduler.schedule(this.#o.authTimeoutMs ?? agentCoreLimits.authTimeoutMs, () => {
      live.authTimer = undefined;
      if (this.#live === live && !this.isReady) this.#closeLive(live, 'no AUTH_ACK before the authentication timeout', true);
    });
    return {
      receive: (bytes) => this.#receive(live, bytes),
      transportClosed: () => {
        if (this.#live !== live) return;
        live.connection.transportLost(this.#o.clock.nowMs());
        this.#closeLive(live, 'transport closed', false);
      },
    };
  }

  #receive(live: LiveConnection, bytes: Uint8Array): void {
    if (this.#live !== live) return;
    live.lastHeardMs = this.#o.clock.nowMs();
    live.silenceDeferred = false;
    let events: AgentEvent[];
    try {
      events = live.connection.receive(bytes, this.#o.clock.nowMs());
    } catch (error) {
      this.#log.error({ err: error }, 'session layer failed on a received frame');
      this.#closeLive(live, 'internal error', true);
      return;
    }
    this.#handleEvents(live, events);
  }

  #handleEvents(live: LiveConnection, events: AgentEvent[]): void {
    this.#flush(live);
    for (const event of events) {
      switch (event.kind) {
        case 'ready':
          this.#onReady(live, event.sessionId, event.heartbeatIntervalMs, event.clockOffsetMs);
          break;
        case 'auth_error':
          this.#log.warn({ code: event.code }, `gateway refused authentication: ${event.message}`);
          break;
        case 'refused':
          this.#log.warn({ code: event.error.code }, `refused a gateway frame: ${event.error.message}`);
          break;
        case 'closed':
          this.#closeLive(live, event.reason, true);
          break;
        case 'message':
          this.#onMessage(live, event.message.type, event.message.body, event.message.type === 'POLICY_BUNDLE' ? receivedBundleText(event.message) : undefined);
          break;
        case 'telemetry_ack':
          this.#unacked.acked(event.throughSeq);
          break;
      }
    }
  }

  /** `bundleText`: a POLICY_BUNDLE's bundle as received (receivedBundleText), when its frame was proven canonical. */
  #onMessage(live: LiveConnection, type: string, body: unknown, bundleText?: ReceivedBundleText): void {
    switch (type) {
      case 'COMMAND_DELIVERY': {
        const delivery = body as MessageBody<'COMMAND_DELIVERY'>;
        const command = delivery.command;
        if (!this.#enqueueIntake(() => this.#handleDelivery(command, delivery.traceparent))) {
          this.#log.warn({ commandId: command.id, code: 'AGENT_BUSY', ...traceLogFields(delivery.traceparent) }, 'delivery dropped: too many waiting');
        }
        return;
      }
      case 'POLICY_BUNDLE':
        this.#onPolicyBundle((body as MessageBody<'POLICY_BUNDLE'>).signed, bundleText);
        return;
      case 'OTA_NOTICE':
        if (this.#o.onOtaNotice === undefined) this.#log.warn({}, 'OTA notice dropped: this agent has no update runner');
        else this.#o.onOtaNotice(body as MessageBody<'OTA_NOTICE'>);
        return;
      case 'HEARTBEAT':
        this.#onHeartbeatEcho(live, (body as MessageBody<'HEARTBEAT'>).uptime_ms);
        return;
      case 'ALERT': {
        const alert = body as MessageBody<'ALERT'>;
        this.#log.warn({ kind: alert.kind, severity: alert.severity }, alert.message);
        return;
      }
      case 'ERROR': {
        const error = body as MessageBody<'ERROR'>;
        this.#log.warn({ code: error.code, refId: error.ref_id }, `gateway refused a frame: ${error.message}`);
        return;
      }
    }
  }

  #onReady(live: LiveConnection, sessionId: string, heartbeatIntervalMs: number, clockOffsetMs: number): void {
    if (live.authTimer) this.#o.scheduler.cancel(live.authTimer);
    live.authTimer = undefined;
    live.heartbeatIntervalMs = heartbeatIntervalMs;
    this.#clockOffsetMs = clockOffsetMs;
    this.#o.onEvent?.({ kind: 'ready', sessionId, clockOffsetMs });
    this.#log.info({ sessionId, clockOffsetMs }, 'session ready');
    if (Math.abs(clockOffsetMs) > clockOffsetLimits.alertMs) {
      this.#log.warn({ clockOffsetMs }, 'this device clock is off the gateway clock; deadlines are judged on the gateway clock');
    }
    this.#scheduleHeartbeat(live);
    this.#settleIssuedFloor();
    // What was buffered while disconnected (or waited for a batch when the last session ended) goes
    // now, batched or one TELEMETRY frame per sample (#flushTelemetry sends single samples when not
    // batching). Each sample leaves the buffer only as its frame is sent, and only while this same
    // session is ready: a send that fails closes the session, and the rest stays buffered for the
    // next one (taking the whole buffer first lost the rest on the closed connection, counted dropped).
    this.#flushTelemetry(live);
    // Results the gateway may not have received: re-sent; the control plane takes duplicates
    // idempotently. On the intake lane, so a long-running command does not hold them back.
    this.#enqueueIntake(async () => {
      for (const entry of this.#o.journal.entries()) {
        if (entry.stage === 'finished' && !entry.confirmed && entry.result) this.#sendResult(entry.result, true);
      }
    }, true);
  }

  /**
   * A journal created where none was has its floor pending (command-journal-file.ts): recorded now,
   * at the first AUTH_ACK, as the later of this device's clock and the gateway's. The session opened,
   * so the two are within clockOffsetLimits of each other; the later one, so that a gateway handing a
   * large offset cannot move the floor back (by up to 300 s) over commands that may have run; the
   * cost, a device clock up to 300 s ahead refuses the commands issued in that much after. A floor
   * later than that (an older file's, taken on a clock that ran ahead) is lowered to it. On the
   * intake lane, ahead of any delivery of this session, so none is judged before the floor is
   * durable; a failed write leaves it pending (every command refused) until the next AUTH_ACK.
   */
  #settleIssuedFloor(): void {
    const journal = this.#o.journal;
    if (journal.settleIssuedFloor === undefined) return;
    const floorAtMs = Math.max(this.#o.clock.nowMs(), this.#gatewayNowMs());
    const pending = journal.issuedFloorPending?.() ?? false;
    const previousMs = journal.issuedFloorMs?.() ?? 0;
    // Nothing to do (always, in the simulator): nothing is queued, so the lanes stay as they were.
    if (!pending && previousMs <= floorAtMs) return;
    this.#enqueueIntake(async () => {
      try {
        if (!(await journal.settleIssuedFloor!(floorAtMs))) return;
      } catch (error) {
        this.#log.error({ err: error }, 'the command journal floor was not recorded; commands stay refused until the next session');
        return;
      }
      if (pending) this.#log.info({ issuedFloorMs: floorAtMs }, 'command journal floor recorded: commands issued before it are refused (AGENT_COMMAND_BEFORE_JOURNAL)');
      else this.#log.warn({ issuedFloorMs: floorAtMs, previousMs }, 'command journal floor was in the future (taken on a clock that ran ahead): lowered to now');
    }, true);
  }

  /**
   * The heartbeat tick: judges the gateway's silence, then sends a heartbeat. A tick that fired
   * late (this process did not run: starved of CPU, GC, a blocked loop) runs before the frames that
   * arrived meanwhile are read, as Node runs due timers before it reads sockets; so it does not
   * drop the gateway then but judges again one deferral later (its lateness, at most an interval),
   * and that judgement is final (core/time/late-timer.ts, docs/gateway.md "Deadlines after a stall").
   */
  #scheduleHeartbeat(live: LiveConnection, delayMs = live.heartbeatIntervalMs): void {
    live.heartbeatDueMs = this.#o.clock.nowMs() + delayMs;
    live.heartbeatTimer = this.#o.scheduler.schedule(delayMs, () => {
      live.heartbeatTimer = undefined;
      if (this.#live !== live || !this.isReady) return;
      const nowMs = this.#o.clock.nowMs();
      const silenceMs = nowMs - live.lastHeardMs;
      let nextDelayMs = live.heartbeatIntervalMs;
      if (silenceMs > (this.#o.silenceIntervalsMax ?? agentCoreLimits.silenceIntervalsMax) * live.heartbeatIntervalMs) {
        const deferralMs = stallDeferralMs(live.heartbeatDueMs, nowMs, live.silenceDeferred, lateTimerLimitsFor(live.heartbeatIntervalMs));
        if (deferralMs === undefined) {
          this.#closeLive(live, `gateway silent for ${silenceMs} ms`, true);
          return;
        }
        // Still a heartbeat now (the gateway has not heard this process through the stall either); the next tick judges.
        live.silenceDeferred = true;
        nextDelayMs = deferralMs;
        this.#log.debug({ silence_ms: silenceMs, late_ms: nowMs - live.heartbeatDueMs, deferral_ms: deferralMs }, 'heartbeat tick fired late; judging the gateway after the stall');
      }
      this.#sendHeartbeat(live, nowMs);
      this.#scheduleHeartbeat(live, nextDelayMs);
    });
  }

  #sendHeartbeat(live: LiveConnection, nowMs: number): void {
    // Strictly increasing, so an echo names exactly one heartbeat.
    const uptimeMs = Math.max(nowMs - this.#startedAtMs, this.#lastUptimeMs + 1);
    this.#lastUptimeMs = uptimeMs;
    // Recorded before sending: an in-memory transport may deliver the echo within the send.
    const inFlight = { uptimeMs, commandIds: live.resultsSinceHeartbeat.splice(0) };
    live.heartbeatsInFlight.push(inFlight);
    if (live.heartbeatsInFlight.length > agentCoreLimits.heartbeatsInFlightMax) live.heartbeatsInFlight.shift();
    if (!this.#trySend(live, (c) => c.sendHeartbeat({ uptime_ms: uptimeMs, queue_depth: this.#queued }, nowMs))) {
      live.heartbeatsInFlight = live.heartbeatsInFlight.filter((h) => h !== inFlight);
      live.resultsSinceHeartbeat.unshift(...inFlight.commandIds);
    }
  }

  /**
   * The gateway echoes heartbeats in order on the same ordered stream, so an echo proves it read
   * every frame sent before that heartbeat, including those results: they are confirmed. A result
   * the gateway read but lost (crash before forwarding) comes back as a redelivery, answered from
   * the journal; an unconfirmed one is re-sent after the next AUTH_ACK.
   */
  #onHeartbeatEcho(live: LiveConnection, uptimeMs: number): void {
    const confirmed: string[] = [];
    while (live.heartbeatsInFlight.length > 0 && live.heartbeatsInFlight[0]!.uptimeMs <= uptimeMs) {
      confirmed.push(...live.heartbeatsInFlight.shift()!.commandIds);
    }
    if (confirmed.length === 0) return;
    this.#enqueue(() => this.#o.journal.confirmed(confirmed));
  }

  #scheduleTelemetry(delayMs: number): void {
    if (this.#stopped) return;
    this.#telemetryTimer = this.#o.scheduler.schedule(delayMs, () => {
      this.#telemetryTimer = undefined;
      this.#scheduleTelemetry(this.#o.telemetryIntervalMs);
      // A slow source skips a tick rather than piling up samples.
      if (this.#sampling) return;
      this.#sampling = true;
      const sampledAtMs = this.#gatewayNowMs();
      this.#o.telemetrySource.sample().then((metrics) => {
        const live = this.#live;
        if (this.#samplesPerFrameMax > 1) {
          this.#bufferSample(sampledAtMs, metrics);
          if (live && this.isReady) this.#onSampleBuffered(live);
        } else if (live && this.isReady) {
          this.#sendTelemetry(live, sampledAtMs, metrics);
        } else {
          this.#bufferSample(sampledAtMs, metrics);
        }
      }, (error: unknown) => {
        this.#log.warn({ err: error }, 'telemetry sample failed');
      }).finally(() => {
        this.#sampling = false;
      });
    });
  }

  /** Keeps a sample for later; past telemetryBufferMax the oldest goes (counted). */
  #bufferSample(sampledAtMs: number, metrics: TelemetryMetrics): void {
    this.#telemetryBuffer.push({ sampledAtMs, metrics });
    if (this.#telemetryBuffer.length > this.#telemetryBufferMax) {
      this.#telemetryBuffer.shift();
      this.#telemetryDropped += 1;
    }
  }

  /** Samples per frame in this session: this agent's wish within the gateway's announcement (0: the gateway takes no batches). */
  #samplesPerFrame(live: LiveConnection): number {
    return Math.min(this.#samplesPerFrameMax, live.connection.telemetrySamplesMax);
  }

  /** Batching, connected: a full batch goes now; otherwise the first buffered sample starts the batch delay. */
  #onSampleBuffered(live: LiveConnection): void {
    const perFrame = this.#samplesPerFrame(live);
    if (perFrame === 0 || this.#telemetryBuffer.length >= perFrame) {
      this.#flushTelemetry(live);
      return;
    }
    this.#telemetryBatchTimer ??= this.#o.scheduler.schedule(this.#o.telemetryBatchDelayMs ?? agentCoreLimits.telemetryBatchDelayMs, () => {
      this.#telemetryBatchTimer = undefined;
      const current = this.#live;
      // Not connected: the buffer waits for the next session's AUTH_ACK (#onReady flushes it).
      if (current !== undefined && this.isReady) this.#flushTelemetry(current);
    });
  }

  /**
   * Sends every buffered sample, in order: TELEMETRY_BATCH frames of up to the session's samples
   * per frame, a lone sample (or every sample, to a gateway that announced no batches) as
   * TELEMETRY. Samples leave the buffer only as their frame is handed to the transport.
   */
  #flushTelemetry(live: LiveConnection): void {
    this.#cancelBatchTimer();
    const perFrame = Math.max(1, this.#samplesPerFrame(live));
    const buffer = this.#telemetryBuffer;
    while (buffer.length > 0 && this.#live === live && this.isReady) {
      // A batch's sampled_at may not go back (the gateway refuses PROTO_TELEMETRY_BATCH_UNORDERED,
      // and every sample of the frame would be lost), but the device clock may step back (an NTP
      // correction) or a new session's clock offset differ: a sample earlier than the one before it
      // starts a new frame, so the samples keep the order they were taken in and all arrive.
      let count = 1;
      const countMax = Math.min(perFrame, buffer.length);
      while (count < countMax && buffer[count]!.sampledAtMs >= buffer[count - 1]!.sampledAtMs) count += 1;
      const taken = buffer.splice(0, count);
      if (taken.length === 1) this.#sendTelemetry(live, taken[0]!.sampledAtMs, taken[0]!.metrics);
      else this.#sendTelemetryBatch(live, taken);
    }
  }

  #cancelBatchTimer(): void {
    if (this.#telemetryBatchTimer !== undefined) this.#o.scheduler.cancel(this.#telemetryBatchTimer);
    this.#telemetryBatchTimer = undefined;
  }

  /** One TELEMETRY_BATCH, chained as a TELEMETRY frame is (prev_hash names the previous telemetry frame of either type). */
  #sendTelemetryBatch(live: LiveConnection, samples: ReadonlyArray<{ sampledAtMs: number; metrics: TelemetryMetrics }>): void {
    const body: MessageBody<'TELEMETRY_BATCH'> = {
      samples: samples.map((sample) => ({ sampled_at: sample.sampledAtMs, metrics: sample.metrics })),
      ...(this.#telemetryPrevHash ? { prev_hash: this.#telemetryPrevHash } : {}),
    };
    let seq: number;
    try {
      seq = live.connection.sendTelemetryBatch(body, this.#o.clock.nowMs());
    } catch (error) {
      this.#telemetryDropped += samples.length;
      this.#log.warn({ err: error, samples: samples.length }, 'telemetry batch not sent');
      return;
    }
    this.#keepUnacked(live, seq, samples);
    const frames = live.connection.takeOutgoing();
    const frame = frames[frames.length - 1];
    if (frame) this.#telemetryPrevHash = hexFromBytes((this.#o.sha256 ?? nobleSha256)(frame));
    this.#write(live, frames);
  }

  /** prev_hash is the SHA-256 of the previous TELEMETRY frame's bytes as sent (canonical JSON). */
  #sendTelemetry(live: LiveConnection, sampledAtMs: number, metrics: TelemetryMetrics): void {
    const body: MessageBody<'TELEMETRY'> = { sampled_at: sampledAtMs, metrics, ...(this.#telemetryPrevHash ? { prev_hash: this.#telemetryPrevHash } : {}) };
    let seq: number;
    try {
      seq = live.connection.sendTelemetry(body, this.#o.clock.nowMs());
    } catch (error) {
      this.#telemetryDropped += 1;
      this.#log.warn({ err: error }, 'telemetry not sent');
      return;
    }
    this.#keepUnacked(live, seq, [{ sampledAtMs, metrics }]);
    const frames = live.connection.takeOutgoing();
    const frame = frames[frames.length - 1];
    if (frame) this.#telemetryPrevHash = hexFromBytes((this.#o.sha256 ?? nobleSha256)(frame));
    this.#write(live, frames);
  }

  /** A telemetry frame sent on a session that agreed acks: its samples are kept until acknowledged (the oldest forgotten past telemetryUnackedMax, counted). */
  #keepUnacked(live: LiveConnection, seq: number, samples: ReadonlyArray<{ sampledAtMs: number; metrics: TelemetryMetrics }>): void {
    if (!live.connection.telemetryAckAgreed) return;
    const forgotten = this.#unacked.sent(seq, samples);
    if (forgotten > 0) {
      this.#unackedDropped += forgotten;
      this.#log.warn({ samples: forgotten }, 'unacknowledged telemetry forgotten: telemetryUnackedMax reached');
    }
  }

  /**
   * The session ended: its unacknowledged samples go back to the front of the buffer, ahead of
   * those taken since (they are older), to be sent first in the next session, unchanged. Past
   * telemetryBufferMax the oldest go, counted as any buffer overflow (telemetrySamplesDropped).
   */
  #requeueUnacked(): void {
    const resend = this.#unacked.takeAll();
    if (resend.length === 0) return;
    this.#telemetryBuffer.unshift(...resend);
    const excess = this.#telemetryBuffer.length - this.#telemetryBufferMax;
    if (excess > 0) {
      this.#telemetryBuffer.splice(0, excess);
      this.#telemetryDropped += excess;
    }
    this.#log.info({ samples: resend.length }, 'unacknowledged telemetry kept for the next session');
  }

  /** Work on the execution lane; not bounded here: each item is a journal entry or the agent's own bookkeeping. */
  #enqueue(work: () => Promise<void>): void {
    this.#queued += 1;
    this.#work = this.#chain(this.#work, work);
  }

  /** A delivery to take (or, `internal`, the agent's own answers); false when deliveriesMax deliveries are waiting already. */
  #enqueueIntake(work: () => Promise<void>, internal = false): boolean {
    if (!internal && this.#intakeWaiting >= (this.#o.deliveriesMax ?? agentCoreLimits.deliveriesMax)) return false;
    this.#intakeWaiting += 1;
    this.#queued += 1;
    this.#intake = this.#chain(this.#intake, work).finally(() => {
      this.#intakeWaiting -= 1;
    });
    return true;
  }

  #chain(lane: Promise<void>, work: () => Promise<void>): Promise<void> {
    return lane.then(work).catch((error: unknown) => {
      this.#log.error({ err: error }, 'agent work failed');
    }).finally(() => {
      this.#queued -= 1;
    });
  }

  async #loadPolicyBundle(): Promise<void> {
    const refusal = await this.#bundle.load();
    if (refusal) this.#log.error({ code: refusal.code }, `the saved policy bundle is not enforced: ${refusal.message}`);
    else if (this.#bundle.version !== undefined) this.#log.info({ version: this.#bundle.version }, 'policy bundle loaded');
  }

  /**
   * A pushed bundle goes on the intake lane, so a command delivered after it is checked against
   * it. At most one waits there: a frame is bounded work, never queued work without bound (the
   * lane's other internal items come once per session, not per frame). While one waits, a bundle
   * that claims to be newer (higher version, or the same version issued later) takes its place,
   * and one that does not is dropped unchecked: the waiting one, once checked, answers for it
   * (dropped, it gets no report: a refusal report would be audited, and alerted, against a
   * version the device is about to accept). A forged claim can only displace what a hostile
   * gateway could as well have withheld.
   */
  #onPolicyBundle(signed: unknown, bundleText: ReceivedBundleText | undefined): void {
    const claim = claimedBundleOrder(signed);
    const waiting = this.#bundleWaiting;
    if (waiting !== undefined) {
      const newer = claimsNewer(claim, waiting.claim);
      const dropped = newer ? waiting.claim : claim;
      if (newer) this.#bundleWaiting = { signed, claim, bundleText };
      this.#dropPolicyBundle(dropped, newer ? claim : waiting.claim);
      return;
    }
    this.#bundleWaiting = { signed, claim, bundleText };
    this.#enqueueIntake(() => {
      const next = this.#bundleWaiting!;
      this.#bundleWaiting = undefined;
      if (this.#bundleDropsWhileWaiting > 1) {
        this.#log.warn({ version: next.claim.version, dropped: this.#bundleDropsWhileWaiting, code: 'POLICY_BUNDLE_VERSION_STALE' }, 'policy bundles dropped unchecked while one waited');
      }
      this.#bundleDropsWhileWaiting = 0;
      return this.#acceptPolicyBundle(next.signed, next.bundleText);
    }, true);
  }

  #dropPolicyBundle(dropped: ClaimedBundleOrder, kept: ClaimedBundleOrder): void {
    this.#bundlesDropped += 1;
    this.#bundleDropsWhileWaiting += 1;
    const refusal = new SdcError('POLICY_BUNDLE_VERSION_STALE', `policy bundle version ${dropped.version} (issued at ${dropped.issuedAtMs}) is not newer than version ${kept.version} (issued at ${kept.issuedAtMs}) waiting to be checked; dropped`, {
      version: dropped.version, waitingVersion: kept.version,
    });
    // Logged once per waiting bundle; the rest are summed when it is taken (a flood of frames is not a flood of log lines).
    if (this.#bundleDropsWhileWaiting === 1) this.#log.warn({ version: dropped.version, code: refusal.code }, refusal.message);
    this.#o.onEvent?.({ kind: 'policy_bundle', status: 'refused', version: dropped.version, code: refusal.code, dropped: true });
  }

  /** Verified, saved, then enforced; the answer goes back to the gateway, which reports it to the control plane. */
  async #acceptPolicyBundle(signed: unknown, bundleText: ReceivedBundleText | undefined): Promise<void> {
    const { report, outcome } = await this.#bundle.offer(signed, this.#gatewayNowMs(), bundleText);
    const code = report.error?.code;
    this.#o.onEvent?.({ kind: 'policy_bundle', status: report.status, version: report.version, ...(code === undefined ? {} : { code }), ...(outcome === 'held' ? { unchanged: true } : {}) });
    if (outcome === 'saved') this.#log.info({ version: report.version }, 'policy bundle accepted');
    else if (outcome === 'held') this.#log.debug({ version: report.version }, 'policy bundle already held: acknowledged, not saved again');
    else this.#log.warn({ version: report.version, code }, `policy bundle refused: ${report.error?.message ?? ''}`);
    const live = this.#live;
    if (live && this.isReady) this.#trySend(live, (c) => c.sendPolicyBundleReport(report, this.#o.clock.nowMs()));
  }

  /** Entries a previous run left behind: `executing` ones are not run again; `received` ones may be. */
  async #recover(): Promise<void> {
    for (const entry of this.#o.journal.entries()) {
      if (this.#stopped) return;
      if (entry.stage === 'executing') {
        const result = this.#result(entry.command, 'failed', {}, { code: 'AGENT_INTERRUPTED', message: 'the agent stopped while the command was executing; it was not run again' });
        await this.#o.journal.finished(entry.command.id, result);
        this.#o.onEvent?.({ kind: 'interrupted', commandId: entry.command.id });
        this.#log.warn({ commandId: entry.command.id }, 'command interrupted by a restart; reported failed');
      } else if (entry.stage === 'received') {
        await this.#executeJournaled(entry.command, true, entry.traceparent);
      }
    }
  }

  /**
   * Takes a delivery: answered from the record if known, else checked, journaled, acknowledged and
   * queued to run. `traceparent` (the operation's W3C trace, when the gateway sent one) goes on
   * every log line, the kernel call and the ACK and RESULT frames, so the control plane and the
   * audit see the same trace id.
   */
  async #handleDelivery(command: SignedCommand, traceparent?: string): Promise<void> {
    // Not taken and not answered once stopped: the gateway redelivers it to the next run.
    if (this.#stopped) return;
    this.#log.info({ commandId: command.id, opcode: command.opcode, deviceSeq: command.device_seq, ...traceLogFields(traceparent) }, 'command delivery received');
    const known = this.#o.journal.get(command.id);
    if (known && known.command.sig.value === command.sig.value) {
      // A redelivery: answered from the record, never executed again.
      if (known.result) this.#sendResult(known.result, true);
      else this.#sendAck(command, known.stage === 'received' ? 'received' : 'executing', traceparent);
      return;
    }
    const refusal = this.#check(command, known !== undefined);
    if (refusal) return this.#reject(command, refusal, traceparent);
    try {
      await this.#o.journal.received(command, traceparent);
    } catch (error) {
      if (SdcError.is(error) && journalNotTakenCodes.has(error.code)) {
        // Back-pressure, not a refusal: not answered, so the gateway retries; a signed `rejected`
        // would tell the control plane it never runs, and a later delivery could run it (a full
        // disk passes, and a refusal not journaled is not remembered). After UNUSABLE the record
        // may be on disk: the next run answers from it, or takes the redelivery.
        this.#log.warn({ commandId: command.id, code: error.code }, `delivery not taken: ${error.message}`);
        return;
      }
      throw error;
    }
    this.#sendAck(command, 'received', traceparent);
    this.#enqueue(() => this.#executeJournaled(command, false, traceparent));
  }

  /** The device-side checks; undefined when the command may run. */
  #check(command: SignedCommand, idTaken: boolean): SdcError | undefined {
    try {
      verifyCommand({
        command, deviceId: this.#o.deviceId, resolveKey: this.#o.resolveCommandKey, provider: this.#o.signer.provider, nowMs: this.#gatewayNowMs(),
      });
    } catch (error) {
      return SdcError.is(error) ? error : new SdcError('AGENT_EXECUTION_FAILED', String(error));
    }
    // The deadline on the device's own clock too, and the journal's floor (agent/command-acceptance.ts).
    const ownRefusal = expiredOnOwnClock(command, this.#o.clock.nowMs(), 'COMMAND_EXPIRED') ?? issuedBeforeJournal(command, this.#o.journal.issuedFloorMs?.() ?? 0, this.#o.journal.issuedFloorPending?.() ?? false);
    if (ownRefusal) return ownRefusal;
    if (idTaken) return new SdcError('COMMAND_IDEMPOTENCY_CONFLICT', `command id ${command.id} was already used for a different command`);
    // Redeliveries after a gateway failure may arrive out of order: a lower seq that has not run
    // still runs (once); a seq that has run never runs again, whatever id it comes with.
    if (this.#o.journal.isSeqDone(command.device_seq)) {
      return new SdcError('COMMAND_SEQ_STALE', `device_seq ${command.device_seq} has already run`);
    }
    return this.#bundle.check(command, this.#gatewayNowMs());
  }

  /** Refused commands are answered but not journaled: an attacker's junk must not fill the journal. */
  #reject(command: SignedCommand, error: SdcError, traceparent: string | undefined): void {
    this.#o.onEvent?.({ kind: 'rejected', commandId: command.id, code: error.code });
    this.#log.warn({ commandId: command.id, code: error.code, ...traceLogFields(traceparent) }, `command rejected: ${error.message}`);
    this.#sendResult(this.#result(command, 'rejected', {}, { code: error.code, message: error.message.slice(0, agentCoreLimits.errorMessageCharsMax) }, traceparent), false);
  }

  /** `traceparent`: the delivery's, also for an entry recovered after a restart (the journal keeps it with the command). */
  async #executeJournaled(command: SignedCommand, recovered: boolean, traceparent?: string): Promise<void> {
    // After stop no command starts and none is refused: it stays `received` in the journal, and
    // the next run (which may share the journal while this one winds down) decides it. Writing a
    // refusal here raced that run: it could record COMMAND_SEQ_STALE over a run it had started.
    if (this.#stopped) return;
    const refusal = this.#refusalAtStart(command, recovered);
    if (refusal) {
      await this.#finish(command, this.#result(command, 'rejected', {}, { code: refusal.code, message: refusal.message.slice(0, agentCoreLimits.errorMessageCharsMax) }, traceparent));
      return;
    }
    // From here on the command counts as run, whatever happens next.
    if (!(await this.#markExecuting(command, traceparent))) return;
    this.#sendAck(command, 'executing', traceparent);
    let result: CommandResultBody;
    try {
      const output = await executeOpcode(command, {
        kernel: this.#o.kernel,
        artifactPath: this.#o.artifactPath ?? ((args) => `updates/${args.version}.bin`),
        processEntriesMax: this.#o.processEntriesMax ?? kernelBridgeLimits.processEntriesDefault,
        ...(traceparent === undefined ? {} : { traceparent }),
        ...(this.#o.collectArtifact === undefined ? {} : { collectArtifact: this.#o.collectArtifact }),
      });
      result = this.#result(command, 'succeeded', output, undefined, traceparent);
    } catch (error) {
      const typed = SdcError.is(error) ? error : new SdcError('AGENT_EXECUTION_FAILED', String(error));
      result = this.#result(command, 'failed', {}, { code: typed.code, message: typed.message.slice(0, agentCoreLimits.errorMessageCharsMax) }, traceparent);
    }
    this.#log.info({ commandId: command.id, status: result.status, code: result.error?.code, ...traceLogFields(traceparent) }, 'command finished');
    await this.#finish(command, result);
  }

  /**
   * The executing record, without which the command must not run (at most once). A write the
   * journal undid (AGENT_JOURNAL_WRITE_FAILED: disk full, an I/O error) leaves it not run: it is
   * finished rejected with that code, journaled, so the answer is final and a redelivery gets it.
   * If that write fails too the entry stays `received` and the next run decides it.
   */
  async #markExecuting(command: SignedCommand, traceparent: string | undefined): Promise<boolean> {
    try {
      await this.#o.journal.executing(command.id);
      return true;
    } catch (error) {
      if (!SdcError.is(error) || error.code !== 'AGENT_JOURNAL_WRITE_FAILED') throw error;
      this.#log.error({ commandId: command.id, code: error.code }, `command not started: ${error.message}`);
      await this.#finish(command, this.#result(command, 'rejected', {}, { code: error.code, message: error.message.slice(0, agentCoreLimits.errorMessageCharsMax) }, traceparent));
      return false;
    }
  }

  /**
   * The checks just before the kernel call, after any wait: the deadline (on the gateway's clock)
   * and device_seq (another command with this seq may have run meanwhile). An entry recovered
   * after a restart gets the delivery checks again too (signature, keys). Its seq did not run
   * when taken and this entry has not run since, so only another command's run makes it stale.
   */
  #refusalAtStart(command: SignedCommand, recovered: boolean): SdcError | undefined {
    const again = recovered ? this.#check(command, false) : undefined;
    if (again && again.code !== 'COMMAND_SEQ_STALE') return again;
    if (this.#o.journal.isSeqDone(command.device_seq)) {
      return new SdcError('COMMAND_SEQ_STALE', `device_seq ${command.device_seq} has already run`);
    }
    const lateMs = this.#gatewayNowMs() - command.expires_at;
    if (lateMs >= 0) return new SdcError('AGENT_COMMAND_EXPIRED', `the deadline passed ${lateMs} ms before the command could start; it was not run`);
    const lateOnOwnClock = expiredOnOwnClock(command, this.#o.clock.nowMs(), 'AGENT_COMMAND_EXPIRED');
    if (lateOnOwnClock) return lateOnOwnClock;
    // Again at the start: a bundle taken while the command waited decides it.
    return this.#bundle.check(command, this.#gatewayNowMs());
  }

  async #finish(command: SignedCommand, result: CommandResultBody): Promise<void> {
    await this.#o.journal.finished(command.id, result);
    this.#o.onEvent?.(result.status === 'rejected'
      ? { kind: 'rejected', commandId: command.id, code: result.error?.code ?? 'AGENT_EXECUTION_FAILED' }
      : { kind: 'executed', commandId: command.id, status: result.status });
    this.#sendResult(result, true);
  }

  #result(command: SignedCommand, status: CommandResultBody['status'], output: Record<string, unknown>, error?: { code: ErrorCode | string; message: string }, traceparent?: string): CommandResultBody {
    return {
      command_id: command.id, device_seq: command.device_seq, status, output,
      ...(error ? { error: { code: error.code, message: error.message } } : {}), finished_at: this.#gatewayNowMs(),
      ...(traceparent === undefined ? {} : { traceparent }),
    };
  }

  #sendAck(command: SignedCommand, stage: 'received' | 'executing', traceparent: string | undefined): void {
    const live = this.#live;
    if (!live || !this.isReady) return;
    const body = { command_id: command.id, device_seq: command.device_seq, stage, ...(traceparent === undefined ? {} : { traceparent }) };
    this.#trySend(live, (c) => c.sendCommandAck(body, this.#o.clock.nowMs()));
  }

  /**
   * Sent now if a session is ready; a journaled result not confirmed by a heartbeat echo is
   * re-sent after the next AUTH_ACK. A refusal that was never journaled is sent once.
   */
  #sendResult(result: CommandResultBody, journaled: boolean): void {
    const live = this.#live;
    if (!live || !this.isReady) return;
    const tracked = journaled;
    if (tracked) live.resultsSinceHeartbeat.push(result.command_id);
    if (!this.#trySend(live, (c) => c.sendCommandResult(result, this.#o.clock.nowMs())) && tracked) live.resultsSinceHeartbeat.pop();
  }

  #trySend(live: LiveConnection, send: (connection: AgentConnection) => void): boolean {
    try {
      send(live.connection);
    } catch (error) {
      this.#log.warn({ err: error }, 'frame not sent');
      return false;
    }
    this.#flush(live);
    return true;
  }

  #flush(live: LiveConnection): void {
    this.#write(live, live.connection.takeOutgoing());
  }

  #write(live: LiveConnection, frames: Uint8Array[]): void {
    for (const frame of frames) {
      try {
        live.transport.send(frame);
      } catch (error) {
        this.#log.warn({ err: error }, 'transport refused a frame');
        this.#closeLive(live, 'transport send failed', true);
        return;
      }
    }
  }

  #closeLive(live: LiveConnection, reason: string, closeTransport: boolean): void {
    if (live.heartbeatTimer) this.#o.scheduler.cancel(live.heartbeatTimer);
    if (live.authTimer) this.#o.scheduler.cancel(live.authTimer);
    live.heartbeatTimer = undefined;
    live.authTimer = undefined;
    if (this.#live !== live) return;
    this.#live = undefined;
    this.#requeueUnacked();
    const nowMs = this.#o.clock.nowMs();
    live.connection.close(reason, nowMs);
    this.#write(live, live.connection.takeOutgoing());
    if (closeTransport) {
      try {
        live.transport.close();
      } catch (error) {
        this.#log.debug({ err: error }, 'transport close failed');
      }
    }
    this.#o.onEvent?.({ kind: 'closed', reason });
    this.#log.info({ reason }, 'session closed');
  }
}
