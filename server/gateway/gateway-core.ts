import { hash } from 'node:crypto';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { pino } from 'pino';
import { gatewayCommandStream, groups, revocationChannel, streamMaxLen, streamNames, type RevocationNotice } from '../bus-contract/streams.js';
import { telemetryFramesLimits } from '../bus-contract/entries.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { pendingEntriesReadMax, type ServiceMetrics } from '../observability/metrics.js';
import { AgentReports } from '../observability/agent-reports.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { clockOffsetLimits } from '../../core/protocol/clock-offset.js';
import { telemetryBatchLimits } from '../../core/protocol/limits.js';
import type { DecodedMessage, FrameSigner } from '../../core/protocol/session/codec.js';
import { GatewayConnection, type GatewayEvent } from '../../core/protocol/session/gateway-connection.js';
import { closeCodes } from './close-codes.js';
import { CommandRouter, type DeliveryTarget } from './command-router.js';
import { DeviceSession, type SessionDriver } from './device-session.js';
import { forwardMessage, packTelemetryFrames, type ForwardTargets, type TelemetryItem } from './forward-message.js';
import { PolicyBundlePush } from './policy-bundle-push.js';
import { OtaNoticePush, type NoticeTarget } from './ota-notice-push.js';
import type { SignedPolicyBundle } from '../../core/protocol/policy-bundle-schema.js';
import { reportAlert, reportClockOffset } from './gateway-alerts.js';
import { createGatewayContext, type GatewayContext, type GatewayCoreOptions, type ResolvedGatewayOptions } from './gateway-context.js';
import { PeerWatch } from './peer-watch.js';
import { Presence, presenceTtlMs, type OnlineFacts, type PresenceRecord } from './presence.js';
import { PresenceRefreshWindow } from './presence-refresh-window.js';
import { PresenceOfflineOwed } from './presence-offline-owed.js';
import { createEnrollmentCheck } from './enrollment-check.js';
import { timerDelayMs } from './deadline-timer.js';
import { refuseConnection, type RefuseConnectionInput } from './refusal.js';
import { createRevocationCheck } from './revocation-check.js';
import { AppendBatcher } from './append-batcher.js';
import { WindowGate } from './window-gate.js';
import { busLimits } from '../stores/bus/bus-arguments.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import type { DeviceTransport } from './device-session.js';
import { gatewayDefaults, gatewayLimits } from './gateway-defaults.js';
import { checkProbeOptions, LivenessProbe, probeDefaults } from './liveness-probe.js';
import { lateTimerLimitsFor, stallDeferralMs, type LateTimerLimits } from '../../core/time/late-timer.js';
import type { SessionMacOptions } from '../../core/protocol/session/session-mac.js';

export type { GatewayCoreOptions } from './gateway-context.js';
export type { DeviceTransport } from './device-session.js';
export type { RefuseConnectionInput } from './refusal.js';

export interface AcceptConnectionInput extends DeviceTransport {
  /** From the verified client certificate. */
  deviceId: string;
  /** The certificate's Ed25519 key (32 raw bytes): AUTH must be signed with it. */
  devicePublicKey: Uint8Array;
  certSerialHex: string;
  /** The certificate's notAfter: the session is closed then (TRUST_CERT_EXPIRED). Absent: no expiry timer (the simulator's devices). */
  certNotAfterMs?: number;
}

export interface ConnectionHandle {
  receive(bytes: Uint8Array): void;
  /**
   * The transport ended. `code`: the typed code it closed for (GATEWAY_PEER_NOT_READING,
   * GATEWAY_RATE_LIMITED), which the session's offline then carries instead of 'transport lost',
   * so the presence history says why; the transport sent its own close frame, nothing more is sent.
   */
  transportClosed(code?: string): void;
  /**
   * The transport refused input it will not deliver (a message over its size bound): the device
   * gets the typed refusal frame first, then the transport is closed with `closeCode` and the code.
   * Optional so that test doubles of a gateway (agent contract suites) need not have it.
   */
  refuse?(error: SdcError, closeCode: number): void;
  /** The transport heard a pong (a WebSocket pong): the answer to the liveness probe (liveness-probe.ts). */
  pong?(): void;
  /**
   * True once the device's AUTH was accepted (set while the AUTH frame is received). The server
   * counts a socket against its unauthenticated-socket bounds until then (gateway-server.ts).
   * Absent on a refused connection's handle, which never authenticates.
   */
  readonly authenticated?: boolean;
}

export interface GatewayCore {
  readonly gatewayId: string;
  /** Creates the consumer group, hands back stale entries, starts the command loop and liveness. */
  start(): Promise<void>;
  /** Orderly stop: closes every session (their commands are handed back), removes the liveness key. */
  stop(): Promise<void>;
  /** Stops every timer and loop at once and writes nothing more: a crash, for tests and the simulator. */
  abort(): void;
  acceptConnection(input: AcceptConnectionInput): ConnectionHandle;
  /** Challenge + AUTH_ERROR with `error.code`, then close: for a client the adapter refused itself. */
  refuseConnection(input: RefuseConnectionInput): void;
  /** One pass of the dead-peer check (also run on its own timer); returns entries handed back. */
  checkPeers(): Promise<number>;
  stats(): { connections: number; sessions: number; pendingDeliveries: number };
}

const { noticeSerialsMax } = gatewayLimits;
/** A close reason that is one of our error codes. */
const errorCodePattern = /^[A-Z][A-Z0-9_]{1,63}$/;
/** The close reason (and presence offline reason) of a session that did not answer the liveness probe. */
export const probeUnansweredReason = 'peer did not answer the liveness probe';
const noopHandle: ConnectionHandle = { receive: () => undefined, transportClosed: () => undefined, refuse: () => undefined };
/** One-shot (no Hash object per frame): about half the CPU of createHash().update().digest() for a sample's 400 bytes here. */
const sha256Hex = (bytes: Uint8Array): string => hash('sha256', bytes, 'hex');
/**
 * At most one log line per this interval for frames forwarded after a failed presence refresh
 * (#refreshFailed): in a key/value outage every session's refresh fails, one line each was
 * hundreds a second at 10k sessions. 5 s: the outage is seen within seconds, and a long one
 * costs 12 lines a minute.
 */
export const refreshFailedLogIntervalMs = 5_000;

/**
 * The frequent frames (HEARTBEAT and telemetry, one sample or a batch): their presence refresh may
 * wait for the window shared with other sessions, and their re-check is issued when it closes; a
 * command's ACK or RESULT is never held up that way.
 */
const windowedFrameTypes: ReadonlySet<string> = new Set(['HEARTBEAT', 'TELEMETRY', 'TELEMETRY_BATCH']);
/** What a task that has nothing to wait for returns: one settled promise for all. */
const settled: Promise<void> = Promise.resolve();

/** What a session's AUTH left undone because a store call failed (the store down): done at its later refreshes (#refreshOwed). */
interface AuthOwed {
  readonly facts: OnlineFacts;
  /** The online event is still owed (the presence write or the entry failed). */
  online: boolean;
  /** The policy bundle push, the OTA notice push failed: done again once the online is reported. */
  bundle: boolean;
  notice: boolean;
}

export function resolveGatewayOptions(options: GatewayCoreOptions): ResolvedGatewayOptions {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.gatewayId)) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'gatewayId must be 1-64 of [A-Za-z0-9_.-]');
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? gatewayDefaults.heartbeatIntervalMs;
  const resolved: ResolvedGatewayOptions = {
    ...options,
    logger: options.logger ?? pino({ level: 'silent' }),
    isRevoked: options.isRevoked ?? createRevocationCheck({ kv: options.stores.kv }),
    checkEnrollment: options.checkEnrollment ?? createEnrollmentCheck({ kv: options.stores.kv }),
    sessionRecheckIntervalMs: options.sessionRecheckIntervalMs ?? gatewayDefaults.sessionRecheckIntervalMs,
    heartbeatIntervalMs,
    authTimeoutMs: options.authTimeoutMs ?? gatewayDefaults.authTimeoutMs,
    ackTimeoutMs: options.ackTimeoutMs ?? gatewayDefaults.ackTimeoutMs,
    deliveryAttemptsMax: options.deliveryAttemptsMax ?? gatewayDefaults.deliveryAttemptsMax,
    reportAttemptsMax: options.reportAttemptsMax ?? gatewayDefaults.reportAttemptsMax,
    backoff: options.backoff ?? gatewayDefaults.backoff,
    connectionsMax: options.connectionsMax ?? gatewayDefaults.connectionsMax,
    pendingDeliveriesPerDeviceMax: options.pendingDeliveriesPerDeviceMax ?? gatewayDefaults.pendingDeliveriesPerDeviceMax,
    pendingDeliveriesMax: options.pendingDeliveriesMax ?? gatewayDefaults.pendingDeliveriesMax,
    aliveRefreshIntervalMs: options.aliveRefreshIntervalMs ?? heartbeatIntervalMs,
    peerCheckIntervalMs: options.peerCheckIntervalMs ?? heartbeatIntervalMs,
    commandReadBlockMs: options.commandReadBlockMs ?? gatewayDefaults.commandReadBlockMs,
    refusalsMax: options.refusalsMax ?? gatewayDefaults.refusalsMax,
    telemetryBatchEntriesMax: options.telemetryBatchEntriesMax ?? gatewayDefaults.telemetryBatchEntriesMax,
    telemetryFramesPerEntryMax: options.telemetryFramesPerEntryMax ?? gatewayDefaults.telemetryFramesPerEntryMax,
    telemetrySamplesPerFrameMax: options.telemetrySamplesPerFrameMax ?? gatewayDefaults.telemetrySamplesPerFrameMax,
    telemetryAcks: options.telemetryAcks ?? gatewayDefaults.telemetryAcks,
    telemetryAckIntervalMs: options.telemetryAckIntervalMs ?? gatewayDefaults.telemetryAckIntervalMs,
    presenceRefreshWindowMs: options.presenceRefreshWindowMs ?? gatewayDefaults.presenceRefreshWindowMs,
    sessionCrypto: options.sessionCrypto === undefined ? createNodeSessionKeyCrypto() : options.sessionCrypto,
    probeGraceMs: options.probeGraceMs ?? probeDefaults(heartbeatIntervalMs).probeGraceMs,
    probeTimeoutMs: options.probeTimeoutMs ?? probeDefaults(heartbeatIntervalMs).probeTimeoutMs,
  };
  for (const name of ['heartbeatIntervalMs', 'authTimeoutMs', 'ackTimeoutMs', 'deliveryAttemptsMax', 'reportAttemptsMax', 'connectionsMax', 'pendingDeliveriesPerDeviceMax',
    'pendingDeliveriesMax', 'aliveRefreshIntervalMs', 'peerCheckIntervalMs', 'commandReadBlockMs', 'sessionRecheckIntervalMs', 'telemetryBatchEntriesMax',
    'telemetryAckIntervalMs', 'telemetryFramesPerEntryMax'] as const) {
    const value = resolved[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `${name} must be a positive integer`);
  }
  if (resolved.deliveryAttemptsMax > gatewayLimits.attemptsMax) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `deliveryAttemptsMax is at most ${gatewayLimits.attemptsMax}`);
  if (resolved.reportAttemptsMax > gatewayLimits.attemptsMax) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `reportAttemptsMax is at most ${gatewayLimits.attemptsMax}`);
  const { telemetrySamplesPerFrameMax } = resolved;
  if (!Number.isSafeInteger(telemetrySamplesPerFrameMax) || telemetrySamplesPerFrameMax < 0 || telemetrySamplesPerFrameMax > telemetryBatchLimits.samplesPerFrameMax) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', `telemetrySamplesPerFrameMax must be an integer from 0 to ${telemetryBatchLimits.samplesPerFrameMax}`);
  }
  if (resolved.telemetryBatchEntriesMax > busLimits.batchEntriesMax) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `telemetryBatchEntriesMax is at most ${busLimits.batchEntriesMax}`);
  if (resolved.telemetryFramesPerEntryMax > telemetryFramesLimits.framesPerEntryMax) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', `telemetryFramesPerEntryMax is at most ${telemetryFramesLimits.framesPerEntryMax}`);
  }
  if (resolved.telemetryFramesPerEntryMax > 1 && resolved.telemetryBatchEntriesMax === 1) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'telemetryFramesPerEntryMax above 1 needs telemetryBatchEntriesMax above 1 (frames are joined at a batch\'s flush)');
  }
  // Below the heartbeat/4 refresh spacing, so a refresh never waits past the next one's turn.
  const { presenceRefreshWindowMs } = resolved;
  if (!Number.isSafeInteger(presenceRefreshWindowMs) || presenceRefreshWindowMs < 0 || presenceRefreshWindowMs >= heartbeatIntervalMs / 4) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'presenceRefreshWindowMs must be an integer from 0 to below a quarter of the heartbeat interval');
  }
  checkProbeOptions(resolved);
  return resolved;
}

/**
 * Creates the transport-agnostic gateway: admits device connections (revocation, one session per
 * device), drives a GatewayConnection for each, keeps presence, forwards telemetry, alerts and
 * command progress, and routes commands from its stream (CommandRouter). The TLS/WebSocket
 * adapter (gateway-server.ts) and the simulator's in-memory transport both call acceptConnection.
 */
export function createGatewayCore(options: GatewayCoreOptions): GatewayCore {
  return new Gateway(resolveGatewayOptions(options));
}

/** The gateway's state and its named steps: admission, frames in, events out, close, stop. */
class Gateway implements GatewayCore {
  readonly gatewayId: string;
  readonly #options: ResolvedGatewayOptions;
  readonly #context: GatewayContext;
  readonly #frameSigner: FrameSigner;
  readonly #connections = new Set<DeviceSession>();
  /** Authenticated sessions by device id: one per device. */
  readonly #sessions = new Map<string, DeviceSession>();
  /** Each session's last HEARTBEAT figures, for /metrics. */
  readonly #agentReports = new AgentReports();
  readonly #presence: Presence;
  /** Presence refreshes of many sessions in one pipelined write (presence-refresh-window.ts). */
  readonly #presenceRefresh: PresenceRefreshWindow;
  readonly #router: CommandRouter;
  readonly #peers: PeerWatch;
  /** Encoded `telemetry` entries, or with telemetryFramesPerEntryMax above 1 TelemetryItems packed at the flush (ForwardTargets.packsTelemetry). */
  readonly #telemetry: AppendBatcher<object>;
  /** Frames forwarded after a failed presence refresh since the last log line of them (#refreshFailed). */
  #refreshFailures = 0;
  /** When that line was last logged (the gateway's clock); undefined: never. */
  #refreshFailedLoggedMs: number | undefined;
  /** Session re-checks of HEARTBEAT and TELEMETRY, issued when the presence window closes (#recheck). */
  readonly #recheckGate: WindowGate;
  readonly #probe: LivenessProbe;
  /** When a late session timer judges silence (late-timer.ts). */
  readonly #lateTimer: LateTimerLimits;
  /** Sends each device the policy bundle the control plane signed for it (policy-bundle-push.ts). */
  readonly #bundles: PolicyBundlePush;
  /** Sends each device its OTA notice (ota-notice-push.ts). */
  readonly #otaNotices: OtaNoticePush;
  /** What every session's handle calls: one object for all sessions (device-session.ts). */
  readonly #driver: SessionDriver = {
    receive: (session, bytes) => this.#receive(session, bytes),
    transportClosed: (session, code) => this.#transportClosed(session, code),
    refuseFromTransport: (session, error, closeCode) => this.#refuseFromTransport(session, error, closeCode),
    pong: (session) => this.#pong(session),
    taskFailed: (session, error) => {
      this.#options.logger.error({ err: error, device_id: session.deviceId, trace_id: this.#context.traceId() }, 'session task failed');
    },
  };
  /** The gateway's telemetry counter with its label bound once, not hashed again per sample (prom-client). */
  readonly #telemetrySamples: { inc(count?: number): void } | undefined;
  /** Where forwardMessage sends a frame: one object for every frame, not one per frame. */
  readonly #forwardTargets: ForwardTargets;
  /** The session MAC options, the same for every session: one object, not one per session. */
  readonly #sessionMac: SessionMacOptions | undefined;
  /**
   * Sessions whose AUTH work failed (the store was down): the `online` event (their presence write
   * failed), reported by the first refresh that finds the key theirs, and the policy bundle and
   * OTA notice pushes that failed, done after it (#refreshOwed); never once the session closed. At
   * most one entry per authenticated session, removed at its close (#finish): bounded by connectionsMax.
   */
  readonly #authOwed = new Map<DeviceSession, AuthOwed>();
  /** Offlines of closed sessions that failed, retried on the backoff (presence-offline-owed.ts). */
  readonly #offlineOwed: PresenceOfflineOwed;
  /** Authentications so far: each session's place in their order (DeviceSession.authSeq). */
  #authCount = 0;
  /** Requeue and presence-offline work of closed sessions, awaited by stop(); one per closed session. */
  readonly #closeBookkeeping = new Set<Promise<void>>();
  #accepting = true;
  #aborted = false;
  #unsubscribeRevocations: (() => Promise<void>) | undefined;

  constructor(options: ResolvedGatewayOptions) {
    this.#options = options;
    this.gatewayId = options.gatewayId;
    this.#context = createGatewayContext(options);
    this.#frameSigner = { kid: options.signer.kid, seed: options.signer.seed, provider: options.provider };
    this.#sessionMac = options.sessionCrypto === null ? undefined : { crypto: options.sessionCrypto, random: options.random };
    this.#presence = new Presence(this.#context);
    this.#presenceRefresh = new PresenceRefreshWindow({
      presence: this.#presence, heartbeatIntervalMs: options.heartbeatIntervalMs, windowMs: options.presenceRefreshWindowMs,
      waitingMax: options.connectionsMax, nowMs: () => options.clock.nowMs(),
      // The telemetry waiting for the window goes out with the refreshes (append-batcher.ts).
      schedule: (delayMs, run) => this.#context.schedule(delayMs, () => { this.#recheckGate.release(); run(); this.#telemetry.flushWindow(); }),
      aborted: () => this.#aborted,
    });
    // Sessions that close during one outage were open when it began (admission reads the store), so connectionsMax bounds them.
    this.#offlineOwed = new PresenceOfflineOwed({
      context: this.#context, presence: this.#presence, entriesMax: options.connectionsMax, aborted: () => this.#aborted,
      liveSessionOf: (deviceId) => this.#sessions.get(deviceId),
    });
    this.#router = new CommandRouter(this.#context, (deviceId) => this.#deliveryTarget(deviceId));
    this.#peers = new PeerWatch(this.#context, this.#router);
    this.#probe = new LivenessProbe(options);
    this.#lateTimer = lateTimerLimitsFor(options.heartbeatIntervalMs);
    this.#bundles = new PolicyBundlePush({ context: this.#context, targetOf: (deviceId) => this.#bundleTarget(deviceId), connectedDevices: () => this.#sessions.keys() });
    this.#otaNotices = new OtaNoticePush({ context: this.#context, targetOf: (deviceId) => this.#noticeTarget(deviceId) });
    options.metrics?.addCollector(() => this.#collectGauges(options.metrics!));
    this.#telemetrySamples = options.metrics?.telemetrySamples.labels({ role: 'gateway' });
    // Each session queues at most sessionTasksMax tasks, so this only bounds a bug.
    const telemetryWaitingMax = Math.max(options.connectionsMax, busLimits.batchEntriesMax);
    const framesPerEntryMax = options.telemetryFramesPerEntryMax;
    this.#telemetry = new AppendBatcher<object>({
      bus: options.stores.bus, stream: streamNames.telemetry, maxLen: streamMaxLen.telemetry, entriesMax: options.telemetryBatchEntriesMax,
      waitingMax: telemetryWaitingMax,
      // Frames of many sessions in one entry (decision 0023): a flush of up to batchEntriesMax frames packs into at most as many entries, one appendBatch.
      ...(framesPerEntryMax > 1 ? { pack: (items: readonly object[]) => packTelemetryFrames(items as readonly TelemetryItem[], framesPerEntryMax), itemsPerFlushMax: busLimits.batchEntriesMax } : {}),
      windowMs: options.presenceRefreshWindowMs, schedule: (delayMs, run) => this.#context.schedule(delayMs, run),
      cancel: (timer) => options.scheduler.cancel(timer), aborted: () => this.#aborted, logger: options.logger,
    });
    this.#forwardTargets = { context: this.#context, router: this.#router, telemetry: this.#telemetry, packsTelemetry: framesPerEntryMax > 1 };
    this.#recheckGate = new WindowGate({
      windowMs: options.presenceRefreshWindowMs, waitingMax: options.connectionsMax,
      schedule: (delayMs, run) => this.#context.schedule(delayMs, run), cancel: (timer) => options.scheduler.cancel(timer),
    });
  }

  async start(): Promise<void> {
    // First: a revocation announced while the rest starts must not be missed.
    this.#unsubscribeRevocations = await this.#options.stores.kv.subscribe(revocationChannel, (text) => this.#onRevocationNotice(text));
    await this.#router.start();
    await this.#peers.start();
    await this.#bundles.start();
    await this.#otaNotices.start();
  }

  async stop(): Promise<void> {
    this.#accepting = false;
    // Nothing waits for a presence window from here on: the sessions' close work must not hang on
    // an unref'd window timer (a stop that nothing else keeps alive would end the process first).
    this.#recheckGate.stop();
    this.#presenceRefresh.stopWaiting();
    this.#telemetry.stopWaiting();
    await this.#unsubscribe();
    this.#peers.stop();
    for (const session of [...this.#connections]) this.#endSession(session, closeCodes.goingAway, 'GATEWAY_SHUTTING_DOWN');
    await Promise.all([...this.#closeBookkeeping]);
    await this.#offlineOwed.stop();
    this.#router.stop();
    await this.#peers.retire().catch((error: unknown) => this.#options.logger.error({ err: error }, 'liveness key removal failed'));
  }

  abort(): void {
    this.#aborted = true;
    this.#accepting = false;
    void this.#unsubscribe();
    this.#peers.stop();
    this.#router.stop();
    this.#offlineOwed.abort();
    for (const session of this.#connections) session.cancelTimers((timer) => this.#options.scheduler.cancel(timer));
  }

  /** Scrape-time gauges: this gateway's command stream backlog and dead letters, the sessions it holds. */
  async #collectGauges(metrics: ServiceMetrics): Promise<void> {
    const { bus } = this.#options.stores;
    const stream = gatewayCommandStream(this.gatewayId);
    metrics.busPending.set({ stream, group: groups.gateway }, (await bus.pending(stream, groups.gateway, { count: pendingEntriesReadMax }).catch(() => [])).length);
    metrics.deadLetters.set({ stream }, await bus.length(deadLetterStream(stream)));
    metrics.agentsOnline.set({ role: 'gateway' }, this.#sessions.size);
    this.#agentReports.collect(metrics, this.#sessions.values(), this.#options.clock.nowMs());
  }

  checkPeers(): Promise<number> {
    return this.#peers.checkPeers();
  }

  stats(): { connections: number; sessions: number; pendingDeliveries: number } {
    return { connections: this.#connections.size, sessions: this.#sessions.size, pendingDeliveries: this.#router.pendingDeliveries };
  }

  refuseConnection(input: RefuseConnectionInput): void {
    this.#options.metrics?.websocketErrors.inc({ code: input.error.code });
    refuseConnection(this.#context, this.#frameSigner, input);
  }

  acceptConnection(input: AcceptConnectionInput): ConnectionHandle {
    const refusal = this.#admissionRefusal();
    if (refusal !== undefined) {
      this.refuseConnection({ ...input, error: refusal });
      return noopHandle;
    }
    const session = this.#newSession(input);
    this.#connections.add(session);
    // A certificate already past its notAfter ends the session at once (its timer is armed after admission).
    if (input.certNotAfterMs !== undefined && input.certNotAfterMs <= this.#options.clock.nowMs()) {
      this.#expire(session);
      return session;
    }
    this.#queue(session, () => this.#admit(session));
    return session;
  }

  /** Refused before any check of the device: stopping, or full. */
  #admissionRefusal(): SdcError | undefined {
    if (!this.#accepting || this.#aborted) return new SdcError('GATEWAY_SHUTTING_DOWN', 'the gateway is stopping');
    const { connectionsMax } = this.#options;
    if (this.#connections.size >= connectionsMax) return new SdcError('GATEWAY_CONNECTIONS_FULL', `the gateway holds ${connectionsMax} connections`);
    return undefined;
  }

  #newSession(input: AcceptConnectionInput): DeviceSession {
    const { random } = this.#options;
    const connection = new GatewayConnection({
      gatewayId: this.gatewayId,
      sessionId: `s_${base64urlFromBytes(random.bytes(16))}`,
      deviceId: input.deviceId,
      devicePublicKey: input.devicePublicKey,
      signer: this.#frameSigner,
      random,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
      authTimeoutMs: this.#options.authTimeoutMs,
      // Opaque and random: it names the session to the agent; nothing in this version redeems it.
      sessionToken: base64urlFromBytes(random.bytes(32)),
      telemetrySha256Hex: sha256Hex,
      telemetrySamplesPerFrameMax: this.#options.telemetrySamplesPerFrameMax,
      telemetryAcks: this.#options.telemetryAcks,
      ...(this.#sessionMac === undefined ? {} : { sessionMac: this.#sessionMac }),
      refusalsMax: this.#options.refusalsMax,
      ...(this.#options.limits === undefined ? {} : { limits: this.#options.limits }),
    });
    return new DeviceSession(connection, input, this.#driver, input);
  }

  /** Revocation and enrollment checks, then the challenge; a refused device gets AUTH_ERROR and a close. */
  async #admit(session: DeviceSession): Promise<void> {
    const refusal = await this.#admissionCheck(session);
    if (session.closed || this.#aborted) return;
    if (refusal !== undefined) {
      session.closed = true;
      this.#connections.delete(session);
      this.refuseConnection({ deviceId: session.deviceId, error: refusal, send: (b) => session.transport.send(b), close: (c, r) => session.transport.close(c, r) });
      return;
    }
    const nowMs = this.#options.clock.nowMs();
    session.lastRecheckMs = nowMs;
    session.connection.start(nowMs);
    this.#flush(session);
    this.#armTimer(session);
  }

  /** Undefined when admitted; a store failure refuses (fail closed) with GATEWAY_OVERLOADED. */
  async #admissionCheck(session: DeviceSession): Promise<SdcError | undefined> {
    try {
      if (await this.#options.isRevoked(session.certSerialHex)) return new SdcError('TRUST_CERT_REVOKED', `certificate ${session.certSerialHex} is revoked`);
      return await this.#options.checkEnrollment(session.deviceId, session.certSerialHex);
    } catch (error) {
      this.#options.logger.error({ err: error, trace_id: this.#context.traceId() }, 'admission check failed');
      return new SdcError('GATEWAY_OVERLOADED', 'admission checks are unavailable');
    }
  }

  #receive(session: DeviceSession, bytes: Uint8Array): void {
    if (session.closed || this.#aborted) return;
    let events: GatewayEvent[];
    // One reading for the frame: its deadline and the timer's delay from the same instant, so a held
    // session's delay is the same every frame and its timer is moved, not made again (#armTimer).
    const nowMs = this.#options.clock.nowMs();
    try {
      events = session.connection.receive(bytes, nowMs);
    } catch (error) {
      // GatewayConnection turns bad frames into refusals; anything thrown here is our bug. Contain it to this session.
      this.#options.logger.error({ err: error, device_id: session.deviceId, trace_id: this.#context.traceId() }, 'frame handling failed');
      this.#endSession(session, closeCodes.overloaded, 'GATEWAY_OVERLOADED');
      return;
    }
    this.#probe.heard(session);
    session.stallDeferred = false;
    this.#flush(session);
    this.#handleEvents(session, events);
    this.#armTimer(session, nowMs);
  }

  /** Probed: ready, on a transport that can ping (the simulator's in-memory pipe cannot). */
  #probing(session: DeviceSession): boolean {
    return session.transport.ping !== undefined && session.connection.state === 'ready';
  }

  /** The answer to our probe: the deadline moves, and presence is refreshed (a quiet device sends no frame that would). */
  #pong(session: DeviceSession): void {
    if (session.closed || this.#aborted) return;
    const nowMs = this.#options.clock.nowMs();
    if (!this.#probe.pong(session, nowMs)) return;
    this.#armTimer(session);
    this.#queue(session, async () => {
      if (session.closed) return;
      session.lastRefreshMs = nowMs;
      if (!(await this.#refreshKey(session, nowMs, true))) this.#endSession(session, closeCodes.replaced, 'GATEWAY_SESSION_REPLACED');
    });
  }

  #refuseFromTransport(session: DeviceSession, error: SdcError, closeCode: number): void {
    if (session.closed || this.#aborted) return;
    const events = session.connection.refuseAndClose(error, this.#options.clock.nowMs());
    this.#flush(session);
    // Our close code (1009 for a message too large), with the typed code as the reason.
    this.#finish(session, closeCode, error.code);
    this.#handleEvents(session, events);
  }

  #transportClosed(session: DeviceSession, code?: string): void {
    if (session.closed) return;
    const events = session.connection.transportLost(this.#options.clock.nowMs());
    // Finished with the transport's code before its 'closed' event would finish it as 'transport
    // lost' (as #refuseFromTransport does). 1008: the transport's own close; the code was counted there.
    if (code !== undefined) this.#finish(session, closeCodes.policyViolation, code);
    this.#handleEvents(session, events);
    this.#finish(session, closeCodes.normal, 'transport lost');
  }

  #deliveryTarget(deviceId: string): DeliveryTarget | undefined {
    const session = this.#sessions.get(deviceId);
    if (session === undefined || session.closed || session.connection.state !== 'ready') return undefined;
    return {
      sessionId: session.sessionId,
      deliver: (command, attempt, traceparent) => {
        if (session.closed || session.connection.state !== 'ready') return false;
        session.connection.deliverCommand(command, attempt, this.#options.clock.nowMs(), traceparent);
        this.#flush(session);
        return true;
      },
    };
  }

  #bundleTarget(deviceId: string): ((signed: SignedPolicyBundle) => boolean) | undefined {
    const session = this.#sessions.get(deviceId);
    if (session === undefined || session.closed || session.connection.state !== 'ready') return undefined;
    return (signed) => {
      if (session.closed || session.connection.state !== 'ready') return false;
      session.connection.sendPolicyBundle({ signed }, this.#options.clock.nowMs());
      this.#flush(session);
      return true;
    };
  }

  #noticeTarget(deviceId: string): NoticeTarget | undefined {
    const session = this.#sessions.get(deviceId);
    if (session === undefined || session.closed || session.connection.state !== 'ready') return undefined;
    return (notice) => {
      if (session.closed || session.connection.state !== 'ready') return false;
      session.connection.sendOtaNotice(notice, this.#options.clock.nowMs());
      this.#flush(session);
      return true;
    };
  }

  /** Writes the connection's queued frames; a closing transport may refuse them (logged). */
  #flush(session: DeviceSession): void {
    for (const frame of session.connection.takeOutgoing()) {
      try {
        session.transport.send(frame);
      } catch (error) {
        this.#options.logger.debug({ err: error, device_id: session.deviceId }, 'send on a closing transport');
      }
    }
  }

  /**
   * One timer per session, at its next deadline (pollTimeoutMs, as in quinn): the connection's, the
   * liveness probe's or the certificate's notAfter, whichever comes first. One timer, not one per
   * purpose: each costs a Timeout, its handle and closures, per session.
   */
  #armTimer(session: DeviceSession, nowMs = this.#options.clock.nowMs()): void {
    const { scheduler } = this.#options;
    const pending = session.timer;
    session.timer = undefined;
    const deadlineMs = session.closed || this.#aborted ? undefined : this.#nextDeadlineMs(session);
    if (deadlineMs === undefined) {
      if (pending !== undefined) scheduler.cancel(pending);
      return;
    }
    const delayMs = timerDelayMs(deadlineMs, nowMs);
    // A held session's frames each move its deadline by the same delay (the probe's, from the frame
    // heard), so the pending timer is moved where the scheduler can: no new timer per frame.
    if (pending !== undefined && scheduler.reschedule?.(pending, delayMs) === true) {
      session.timer = pending;
      session.timerDueMs = nowMs + delayMs;
      return;
    }
    if (pending !== undefined) scheduler.cancel(pending);
    this.#scheduleTimer(session, delayMs, nowMs);
  }

  #scheduleTimer(session: DeviceSession, delayMs: number, nowMs = this.#options.clock.nowMs()): void {
    session.timerDueMs = nowMs + delayMs;
    session.timer = this.#context.schedule(delayMs, () => this.#onTimer(session));
  }

  #nextDeadlineMs(session: DeviceSession): number | undefined {
    const connectionDeadlineMs = session.connection.pollTimeoutMs();
    const notAfterMs = session.certNotAfterMs;
    if (connectionDeadlineMs === undefined) return notAfterMs;
    const deadlineMs = this.#probing(session) ? this.#probe.deadlineMs(session, connectionDeadlineMs) : connectionDeadlineMs;
    return notAfterMs === undefined ? deadlineMs : Math.min(deadlineMs, notAfterMs);
  }

  #onTimer(session: DeviceSession): void {
    session.timer = undefined;
    if (session.closed || this.#aborted) return;
    const nowMs = this.#options.clock.nowMs();
    if (session.certNotAfterMs !== undefined && nowMs >= session.certNotAfterMs) {
      this.#expire(session);
      return;
    }
    // Fired late: the gateway was not running, and what the peer sent meanwhile is not read yet (timers run before I/O).
    const deferralMs = stallDeferralMs(session.timerDueMs, nowMs, session.stallDeferred, this.#lateTimer);
    if (deferralMs !== undefined) {
      session.stallDeferred = true;
      this.#options.logger.debug({ device_id: session.deviceId, late_ms: nowMs - session.timerDueMs, deferral_ms: deferralMs }, 'session timer fired late; judging after the stall');
      this.#scheduleTimer(session, deferralMs);
      return;
    }
    const connectionDeadlineMs = session.connection.pollTimeoutMs();
    if (connectionDeadlineMs !== undefined && this.#probing(session)) {
      const step = this.#probe.step(session, connectionDeadlineMs, this.#options.clock.nowMs(), () => this.#ping(session));
      if (step === 'unresponsive') {
        this.#options.logger.info({ device_id: session.deviceId, session_id: session.sessionId, bound_ms: this.#probe.boundMs }, 'no answer to the liveness probe; closing');
        this.#endSession(session, closeCodes.timeout, probeUnansweredReason);
        return;
      }
      if (step === 'wait') {
        session.stallDeferred = false;
        this.#armTimer(session);
        return;
      }
    }
    const events = session.connection.handleTimeout(this.#options.clock.nowMs());
    this.#flush(session);
    this.#handleEvents(session, events);
    if (!session.closed) session.stallDeferred = false;
    this.#armTimer(session);
  }

  #ping(session: DeviceSession): void {
    try {
      session.transport.ping?.();
    } catch (error) {
      this.#options.logger.debug({ err: error, device_id: session.deviceId }, 'ping on a closing transport');
    }
  }

  /** The session is over: timers stop, the transport closes, and its commands and presence are handed back. */
  #finish(session: DeviceSession, code: number, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    this.#authOwed.delete(session);
    // A close we decided with a typed code (overload, replaced, revoked, expired, too large); a refusal's code was counted when refused.
    if (code !== closeCodes.normal && code !== closeCodes.policyViolation && errorCodePattern.test(reason)) this.#options.metrics?.websocketErrors.inc({ code: reason });
    session.cancelTimers((timer) => this.#options.scheduler.cancel(timer));
    try {
      session.transport.close(code, reason.slice(0, 120));
    } catch (error) {
      this.#options.logger.debug({ err: error }, 'transport close failed');
    }
    this.#connections.delete(session);
    if (this.#sessions.get(session.deviceId) === session) this.#sessions.delete(session.deviceId);
    if (!session.authenticated || this.#aborted) return;
    this.#trackBookkeeping(this.#closeBookkeeping, this.#handBack(session, reason));
  }

  #trackBookkeeping(set: Set<Promise<void>>, done: Promise<void>): void {
    set.add(done);
    void done.finally(() => set.delete(done));
  }

  /** After the session's queued work: its commands back to the control plane, presence offline. */
  async #handBack(session: DeviceSession, reason: string): Promise<void> {
    // Not bounded by the queue limit: the hand-back must run even for a session closed for overload.
    await session.tasks.drained();
    if (this.#aborted) return;
    try {
      await this.#router.onSessionClosed(session.sessionId);
    } catch (error) {
      this.#options.logger.error({ err: error, device_id: session.deviceId, trace_id: this.#context.traceId() }, 'session close bookkeeping failed');
    }
    // Tried even when the hand-back failed; a failure leaves the offline owed, retried on the backoff.
    try {
      await this.#presence.offline(session, reason);
    } catch (error) {
      if (!this.#aborted) this.#offlineOwed.owe(session, reason, session.authSeq, error);
    }
  }

  /** Closes a live session from our side (replaced, overloaded, stopping). */
  #endSession(session: DeviceSession, code: number, reason: string): void {
    if (session.closed) return;
    session.connection.close(reason, this.#options.clock.nowMs());
    this.#flush(session);
    this.#finish(session, code, reason);
  }

  #queue(session: DeviceSession, task: () => Promise<void>): void {
    if (session.closed || this.#aborted) return;
    if (!session.tasks.push(task)) {
      this.#options.logger.warn({ device_id: session.deviceId, trace_id: this.#context.traceId() }, 'session work queue full; closing');
      session.dropQueuedFrames = true;
      this.#endSession(session, closeCodes.overloaded, 'GATEWAY_OVERLOADED');
    }
  }

  #handleEvents(session: DeviceSession, events: readonly GatewayEvent[]): void {
    for (const event of events) {
      switch (event.kind) {
        case 'authenticated':
          session.authenticated = true;
          session.sinceMs = this.#options.clock.nowMs();
          this.#queue(session, () => this.#onAuthenticated(session, {
            lastCommandSeq: event.lastCommandSeq, clockOffsetMs: event.clockOffsetMs, agentVersion: event.agentVersion, ...(event.posture === undefined ? {} : { posture: event.posture }),
          }));
          break;
        case 'message':
          this.#queue(session, () => this.#onMessage(session, event.message));
          // A command's ACK or RESULT ends its ACK wait on arrival, not at its queued turn (CommandRouter.answerHeard).
          if (!session.closed && (event.message.type === 'COMMAND_ACK' || event.message.type === 'COMMAND_RESULT')) {
            this.#router.answerHeard(session.deviceId, (event.message.body as { command_id: string }).command_id);
          }
          break;
        case 'refused':
          this.#onRefused(session, event.error);
          break;
        case 'closed':
          this.#finish(session, closeCodeFor(event), event.code ?? event.reason);
          break;
      }
    }
  }

  /** A frame the connection refused: logged; clock skew and a broken telemetry chain are alerted. */
  #onRefused(session: DeviceSession, error: SdcError): void {
    this.#options.metrics?.websocketErrors.inc({ code: error.code });
    this.#options.logger.info({ code: error.code, device_id: session.deviceId, session_id: session.sessionId, trace_id: this.#context.traceId() }, 'frame refused');
    if (SdcError.is(error, 'PROTO_CLOCK_SKEW')) void reportClockOffset(this.#context, session, Number(error.details.clockOffsetMs), 'refused');
    if (error.code === 'PROTO_TELEMETRY_CHAIN_BROKEN') this.#queue(session, () => reportAlert(this.#context, session, 'telemetry_chain_broken', error.message));
  }

  async #onAuthenticated(session: DeviceSession, facts: OnlineFacts): Promise<void> {
    // Closed before this queued task ran: it must not claim the device's presence or its session slot.
    if (session.closed) return;
    const previous = this.#sessions.get(session.deviceId);
    this.#sessions.set(session.deviceId, session);
    session.authSeq = ++this.#authCount;
    // An older session's owed offline must never follow this session's online.
    this.#offlineOwed.supersede(session.deviceId);
    session.lastRefreshMs = this.#options.clock.nowMs();
    // The key names the new session before the old one closes, so the old one's close reports no offline.
    await this.#goOnline(session, facts);
    // Ended even when that write failed (the store down): both sessions are this gateway's and the
    // device proved itself in the newer one's AUTH, so the older one is stale whatever the store
    // holds; choosing between two sessions of one gateway needs no shared state. Safe with two
    // gateways: the close touches the key only by delete-if-equal on the older session's own record,
    // and reports offline only if no other session's record is there (Presence.offline), so a
    // session on another gateway keeps its key and its online. If the store answers again before
    // that close's bookkeeping runs, the older session may be reported offline just before the
    // newer one's owed online: the honest order.
    if (previous !== undefined && previous !== session) this.#endSession(previous, closeCodes.replaced, 'GATEWAY_SESSION_REPLACED');
    if (Math.abs(facts.clockOffsetMs) > clockOffsetLimits.alertMs) await reportClockOffset(this.#context, session, facts.clockOffsetMs, 'corrected');
    const bundleSent = await this.#bundles.onAuthenticated(session.deviceId);
    const noticeSent = await this.#otaNotices.send(session.deviceId);
    if (!bundleSent || !noticeSent) this.#owePushes(session, facts, !bundleSent, !noticeSent);
  }

  /** A push at AUTH failed (the store down): done again at the session's next refresh, after its owed online if any (#refreshOwed). */
  #owePushes(session: DeviceSession, facts: OnlineFacts, bundle: boolean, notice: boolean): void {
    if (session.closed || this.#aborted) return;
    const owed = this.#authOwed.get(session) ?? { facts, online: false, bundle: false, notice: false };
    owed.bundle = bundle;
    owed.notice = notice;
    this.#authOwed.set(session, owed);
  }

  /**
   * Not async: a frame with neither a presence refresh nor a re-check due (most telemetry at
   * telemetry rates) is forwarded in this call, and its task waits on what forwardMessage returns
   * (a sample: its append batch's one promise), not on an async function's promise, a Promise.all
   * and the awaits between them (issue 17: about 6 promises fewer per sample, counted by the
   * ingest bench's promises_per_sample). Frames with a refresh or re-check due take #onMessageChecked.
   */
  #onMessage(session: DeviceSession, message: DecodedMessage): Promise<void> {
    const nowMs = this.#options.clock.nowMs();
    if (message.type === 'TELEMETRY' && !session.dropQueuedFrames) this.#telemetrySamples?.inc();
    else if (message.type === 'TELEMETRY_BATCH' && !session.dropQueuedFrames) this.#telemetrySamples?.inc((message as DecodedMessage<'TELEMETRY_BATCH'>).body.samples.length);
    if (message.type === 'HEARTBEAT' && !session.closed) this.#agentReports.record(session, (message as DecodedMessage<'HEARTBEAT'>).body, nowMs);
    if (session.closed) {
      // A closed session never touches presence: its device may hold a newer session by now.
      // Closed for overload (the stores are behind already) or revocation, its queued frames stop
      // here; a lost ACK or result is asked for again by redelivery. Otherwise what it verified is forwarded.
      if (session.dropQueuedFrames) return settled;
      return forwardMessage(this.#forwardTargets, session, message, nowMs);
    }
    const recheckDue = nowMs - session.lastRecheckMs >= this.#options.sessionRecheckIntervalMs;
    if (!recheckDue && !this.#refreshDue(session, message, nowMs)) return this.#forward(session, message, nowMs);
    return this.#onMessageChecked(session, message, nowMs, recheckDue);
  }

  async #onMessageChecked(session: DeviceSession, message: DecodedMessage, nowMs: number, recheckDue: boolean): Promise<void> {
    try {
      await this.#refreshedAndForwarded(session, message, nowMs, recheckDue);
    } catch (error) {
      // A telemetry frame lost here (its refresh refused, GATEWAY_OVERLOADED, or any error not the
      // store's) must never be covered by a later cumulative ack.
      if (session.connection.telemetryAckAgreed && (message.type === 'TELEMETRY' || message.type === 'TELEMETRY_BATCH')) this.#telemetryFrameLost(session);
      throw error;
    }
  }

  async #refreshedAndForwarded(session: DeviceSession, message: DecodedMessage, nowMs: number, recheckDue: boolean): Promise<void> {
    // The refresh and a due re-check are issued together, not one after the other: on Redis both
    // are on the key/value client, and commands issued in the same turn go out in one pipelined
    // write (ioredis autopipelining), so the re-check (every session, every minute) costs no write
    // and no round trip of its own. Either one that fails the session closes it; the other is then moot.
    // A refresh the store could not answer (an outage) forwards the frame all the same (#refreshFailed).
    const refreshed = this.#refreshPresence(session, message, nowMs).then(undefined, (error: unknown) => this.#refreshFailed(session, message, error));
    const revoked = recheckDue ? this.#recheck(session, message, nowMs) : false;
    const [present, revokedNow] = await Promise.all([refreshed, revoked]);
    if (!present || revokedNow) return;
    await this.#forward(session, message, nowMs);
  }

  /**
   * forwardMessage for an open session, and its telemetry acknowledgement (decision 0004,
   * "Acknowledgements"), only on a session that agreed acks: the others (every agent that did not
   * offer them) take forwardMessage's promise as before. A telemetry frame's task resolves once
   * its append batch is written (AppendBatcher: after the bus took it, an outage's retries
   * included), and the session's tasks run in frame order, so its seq then covers every earlier
   * telemetry frame of the session. A HEARTBEAT's turn sends what is owed: its task runs after
   * those of the frames before it.
   */
  #forward(session: DeviceSession, message: DecodedMessage, nowMs: number): Promise<void> {
    const forwarded = forwardMessage(this.#forwardTargets, session, message, nowMs);
    if (!session.connection.telemetryAckAgreed) return forwarded;
    if (message.type === 'HEARTBEAT') {
      this.#sendTelemetryAck(session);
      return forwarded;
    }
    if (message.type !== 'TELEMETRY' && message.type !== 'TELEMETRY_BATCH') return forwarded;
    const seq = message.envelope.seq;
    return forwarded.then(() => this.#telemetryAppended(session, seq), (error: unknown) => {
      this.#telemetryFrameLost(session);
      throw error;
    });
  }

  /** The session's frames through `seq` are on the bus: acknowledged now if the last ack is telemetryAckIntervalMs old, else at the next turn. */
  #telemetryAppended(session: DeviceSession, seq: number): void {
    if (session.telemetryLost) return;
    session.telemetryAppendedSeq = seq;
    if (this.#options.clock.nowMs() - session.telemetryAckSentMs >= this.#options.telemetryAckIntervalMs) this.#sendTelemetryAck(session);
  }

  /** Sends what is appended and not yet acknowledged, if anything; never after a failed append of the session, nor once it is closed. */
  #sendTelemetryAck(session: DeviceSession): void {
    if (session.closed || this.#aborted || session.telemetryLost || session.telemetryAppendedSeq < 0) return;
    const nowMs = this.#options.clock.nowMs();
    if (!session.connection.sendTelemetryAck(session.telemetryAppendedSeq, nowMs)) return;
    session.telemetryAckSentMs = nowMs;
    this.#flush(session);
  }

  /**
   * A telemetry frame of a session that takes acks was not appended: its append failed (not an
   * outage, which AppendBatcher holds and retries, but a refusal such as STORE_LIMIT, or the
   * gateway aborting), or its task failed before the append (a presence refresh refused
   * GATEWAY_OVERLOADED by the refresh window). An ack is cumulative, so none may be sent in this
   * session any more, and the session is closed so that the agent sends its unacknowledged samples
   * again on its next one (the store keeps one of each).
   */
  #telemetryFrameLost(session: DeviceSession): void {
    session.telemetryLost = true;
    if (session.closed || this.#aborted) return;
    this.#options.logger.warn({ device_id: session.deviceId, session_id: session.sessionId, trace_id: this.#context.traceId() },
      'telemetry append failed on a session with acknowledgements; closing it so the agent sends its unacknowledged samples again');
    this.#endSession(session, closeCodes.overloaded, 'GATEWAY_OVERLOADED');
  }

  /**
   * A presence refresh that failed with a store error (the key/value store down): the frame is
   * still forwarded. The session authenticated it, and the refresh only asks whether another
   * session took the device's key, which the store could not say; the session is kept (as before)
   * and its next refresh is due a quarter interval on, or at its next HEARTBEAT, as after any
   * refresh. Before this, the frame was lost with the failed task (telemetry, and also an ACK,
   * RESULT, ALERT or OTA_REPORT), in every store cut (docs/chaos.md, redis-cut). An answer that
   * another session holds the key (false) or that the device is revoked still drops the frame.
   * Not if the session was closed meanwhile for revocation or overload (dropQueuedFrames), as
   * for its queued frames. Any other error (not the store's) fails the task as before.
   */
  #refreshFailed(session: DeviceSession, message: DecodedMessage, error: unknown): boolean {
    if (!(error instanceof SdcError) || !error.code.startsWith('STORE_')) throw error;
    // No gateway metric counts store failures (metrics.ts): the log line is the record. One line
    // per refreshFailedLogIntervalMs at most, not one per frame (every session's refresh fails in
    // an outage: hundreds of lines a second at 10k sessions), with the frames since the last line;
    // the device and session named are this frame's, one example of them.
    this.#refreshFailures += 1;
    const nowMs = this.#options.clock.nowMs();
    if (this.#refreshFailedLoggedMs === undefined || nowMs - this.#refreshFailedLoggedMs >= refreshFailedLogIntervalMs) {
      this.#options.logger.warn({
        err: error, frames: this.#refreshFailures, interval_ms: refreshFailedLogIntervalMs,
        device_id: session.deviceId, session_id: session.sessionId, type: message.type, trace_id: this.#context.traceId(),
      }, 'presence refresh failed; frames forwarded since the last such line, refresh tried again at the next one due');
      this.#refreshFailures = 0;
      this.#refreshFailedLoggedMs = nowMs;
    }
    return !session.dropQueuedFrames;
  }

  /** Writes presence and reports online; a failure (the store down) leaves the online owed (#authOwed). */
  async #goOnline(session: DeviceSession, facts: OnlineFacts): Promise<void> {
    try {
      await this.#presence.online(session, facts);
    } catch (error) {
      // Closed meanwhile: nothing is owed (its offline follows), and an entry added now would never be removed.
      if (session.closed || this.#aborted) return;
      this.#authOwed.set(session, { facts, online: true, bundle: false, notice: false });
      this.#options.logger.warn({ err: error, device_id: session.deviceId, session_id: session.sessionId, trace_id: this.#context.traceId() },
        'presence online write failed; reported once a refresh finds the key');
    }
  }

  /** The session's presence refresh (false: another session holds the key); a session owing AUTH work reclaims the key and does it. */
  #refreshKey(session: DeviceSession, heardMs: number, canWait: boolean): Promise<boolean> {
    const owed = this.#authOwed.get(session);
    return owed === undefined ? this.#presenceRefresh.refresh(session, heardMs, canWait) : this.#refreshOwed(session, owed, heardMs);
  }

  /**
   * The refresh of a session that owes AUTH work: sent at once (such sessions are few), and once
   * the key is the session's, the online event, exactly once, then the pushes AUTH could not do,
   * in AUTH's order (a push that fails again is tried at the next refresh). Not once the session
   * closed: its offline follows its tasks (this one included), so an online reported here before
   * the close still comes first, and none may come after it.
   */
  async #refreshOwed(session: DeviceSession, owed: AuthOwed, heardMs: number): Promise<boolean> {
    const ttlMs = Math.max(1, presenceTtlMs(this.#options.heartbeatIntervalMs) - (this.#options.clock.nowMs() - heardMs));
    const held = await this.#presence.reclaim(session, ttlMs, (holder) => this.#supersededHere(session, holder), owed.online);
    if (!held || session.closed) return held;
    if (owed.online) {
      try {
        await this.#presence.reportOnline(session, owed.facts);
        owed.online = false;
      } catch (error) {
        this.#options.logger.warn({ err: error, device_id: session.deviceId, session_id: session.sessionId, trace_id: this.#context.traceId() },
          'owed presence online not reported; tried again at the next refresh');
        return true;
      }
    }
    if (owed.bundle && !session.closed) owed.bundle = !(await this.#bundles.onAuthenticated(session.deviceId));
    if (owed.notice && !session.closed) owed.notice = !(await this.#otaNotices.send(session.deviceId));
    if (!owed.online && !owed.bundle && !owed.notice) this.#authOwed.delete(session);
    return true;
  }

  /**
   * Whether a session owing its online may take the key from `holder`: a record of this gateway
   * naming another session of the device, while `session` is still the device's newest here. This
   * gateway holds one session per device and the newest AUTH wins, so such a record is a session
   * that this one (or one before it) replaced, left there because its close could not delete it
   * while the store was down; a newer session here is in #sessions before it writes. Another
   * gateway's record is never taken: which AUTH came later cannot be told from here, so this
   * session ends as replaced (as any refresh would) and the device's next AUTH, whose write is
   * unconditional, decides.
   */
  #supersededHere(session: DeviceSession, holder: PresenceRecord): boolean {
    return holder.gateway_id === this.gatewayId && holder.session_id !== session.sessionId && this.#sessions.get(session.deviceId) === session;
  }

  /** Refresh at most 5 times per presence TTL: enough margin, and a telemetry burst costs no extra writes. A HEARTBEAT always refreshes. */
  #refreshDue(session: DeviceSession, message: DecodedMessage, nowMs: number): boolean {
    return message.type === 'HEARTBEAT' || nowMs - session.lastRefreshMs >= Math.floor(this.#options.heartbeatIntervalMs / 4);
  }

  /** False (and the session closed) if another session took the device's presence key. */
  async #refreshPresence(session: DeviceSession, message: DecodedMessage, nowMs: number): Promise<boolean> {
    if (!this.#refreshDue(session, message, nowMs)) return true;
    session.lastRefreshMs = nowMs;
    // HEARTBEAT and TELEMETRY may wait for other sessions' refreshes; a command's ACK or RESULT is not held up.
    const canWait = windowedFrameTypes.has(message.type);
    if (await this.#refreshKey(session, nowMs, canWait)) return true;
    this.#endSession(session, closeCodes.replaced, 'GATEWAY_SESSION_REPLACED');
    return false;
  }

  /**
   * The re-check due with a frame. A HEARTBEAT or TELEMETRY waits for its presence refresh's window
   * anyway, so its re-check is issued when that window closes, with the refreshes (window-gate.ts):
   * one write and one read for all, not a write and a wake-up of its own. A crashed gateway reads nothing more.
   */
  #recheck(session: DeviceSession, message: DecodedMessage, nowMs: number): Promise<boolean> {
    if (!windowedFrameTypes.has(message.type)) return this.#revokedSince(session, nowMs);
    return new Promise<boolean>((resolve) => {
      const run = () => resolve(this.#aborted ? false : this.#revokedSince(session, nowMs));
      if (!this.#recheckGate.defer(run)) run();
    });
  }

  /**
   * The session re-check: true (and the session closed) if its certificate was revoked since
   * admission. A store failure keeps the session: the next frame tries again. It also forwards the
   * frame (false): the device was authenticated and not revoked at its last check, a revocation
   * notice still closes the session at once (#onRevocationNotice), and the control plane's writer
   * verifies each frame again with the device's cached key row and its revoked flag (decision 0008),
   * so a frame forwarded while the re-check could not run is refused there if the device is revoked.
   */
  async #revokedSince(session: DeviceSession, nowMs: number): Promise<boolean> {
    try {
      const revoked = await this.#options.isRevoked(session.certSerialHex);
      session.lastRecheckMs = nowMs;
      if (revoked) this.#closeRevoked(session, 'session re-check');
      return revoked;
    } catch (error) {
      this.#options.logger.warn({ err: error, device_id: session.deviceId, trace_id: this.#context.traceId() }, 'session re-check failed; retried at the next frame');
      return false;
    }
  }

  #closeRevoked(session: DeviceSession, why: string): void {
    if (session.closed) return;
    this.#options.logger.warn({ device_id: session.deviceId, serial: session.certSerialHex, why, trace_id: this.#context.traceId() }, 'session closed: its certificate was revoked');
    session.dropQueuedFrames = true;
    this.#endSession(session, closeCodes.revoked, 'TRUST_CERT_REVOKED');
  }

  /** A RevocationNotice from the control plane: every session (authenticated or not) using a named certificate ends now. */
  #onRevocationNotice(text: string): void {
    if (this.#aborted) return;
    const notice = parseRevocationNotice(text);
    if (notice === undefined) {
      this.#options.logger.warn({ trace_id: this.#context.traceId() }, 'malformed revocation notice ignored');
      return;
    }
    for (const session of [...this.#connections]) {
      if (session.deviceId === notice.device_id && notice.serials.includes(session.certSerialHex)) this.#closeRevoked(session, 'revocation notice');
    }
  }

  /** The certificate reached its notAfter: the session ends (TRUST_CERT_EXPIRED), logged and alerted. */
  #expire(session: DeviceSession): void {
    const notAfterMs = session.certNotAfterMs ?? 0;
    if (session.closed || this.#aborted) return;
    this.#options.logger.warn({ device_id: session.deviceId, serial: session.certSerialHex, not_after_ms: notAfterMs, trace_id: this.#context.traceId() }, 'session closed: its certificate expired');
    if (session.authenticated) void reportAlert(this.#context, session, 'certificate_expired', `certificate ${session.certSerialHex} expired at ${new Date(notAfterMs).toISOString()}; session closed`);
    this.#endSession(session, closeCodes.certificateExpired, 'TRUST_CERT_EXPIRED');
  }

  async #unsubscribe(): Promise<void> {
    await this.#bundles.stop();
    await this.#otaNotices.stop();
    const done = this.#unsubscribeRevocations;
    this.#unsubscribeRevocations = undefined;
    await done?.().catch((error: unknown) => this.#options.logger.warn({ err: error }, 'revocation channel unsubscribe failed'));
  }
}

function closeCodeFor(event: Extract<GatewayEvent, { kind: 'closed' }>): number {
  if (event.code !== undefined) return closeCodes.policyViolation;
  return event.reason === 'timeout' || event.reason.startsWith('peer silent') ? closeCodes.timeout : closeCodes.normal;
}

/** A RevocationNotice from the channel, checked field by field; undefined if it is not one. */
export function parseRevocationNotice(text: string): RevocationNotice | undefined {
  try {
    const value = JSON.parse(text) as { device_id?: unknown; serials?: unknown };
    if (typeof value.device_id !== 'string' || !Array.isArray(value.serials) || value.serials.length > noticeSerialsMax) return undefined;
    if (!value.serials.every((serial): serial is string => typeof serial === 'string')) return undefined;
    return { device_id: value.device_id, serials: value.serials.map(normalizeSerialHex) };
  } catch {
    return undefined;
  }
}
