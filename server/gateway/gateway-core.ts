import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { revocationChannel, streamMaxLen, streamNames, type RevocationNotice } from '../bus-contract/streams.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError, type ErrorCode } from '../../core/errors/index.js';
import { encodeEnvelope } from '../../core/protocol/envelope.js';
import { clockOffsetLimits } from '../../core/protocol/clock-offset.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import { encodeMessage, type DecodedMessage, type FrameSigner } from '../../core/protocol/session/codec.js';
import { GatewayConnection, type GatewayEvent } from '../../core/protocol/session/gateway-connection.js';
import { closeCodes } from './close-codes.js';
import { CommandRouter, type DeliveryTarget } from './command-router.js';
import { createGatewayContext, type GatewayContext, type GatewayCoreOptions, type ResolvedGatewayOptions } from './gateway-context.js';
import { PeerWatch } from './peer-watch.js';
import { Presence } from './presence.js';
import { createEnrollmentCheck } from './enrollment-check.js';
import { armDeadline, type DeadlineTimer } from './deadline-timer.js';
import { createRevocationCheck } from './revocation-check.js';
import { SerialTasks } from './serial-tasks.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';

export type { GatewayCoreOptions } from './gateway-context.js';

/** How the core writes to one device's transport (a TLS WebSocket, or the simulator's in-memory pipe). */
export interface DeviceTransport {
  send(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
}

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
  transportClosed(): void;
}

export interface RefuseConnectionInput extends DeviceTransport {
  deviceId: string;
  error: SdcError;
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

const sessionTasksMax = 256;
/** Serials a revocation notice may name (a device has at most a few unexpired certificates). */
const noticeSerialsMax = 64;
const noopHandle: ConnectionHandle = { receive: () => undefined, transportClosed: () => undefined };
const textDecoder = new TextDecoder();
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export function resolveGatewayOptions(options: GatewayCoreOptions): ResolvedGatewayOptions {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.gatewayId)) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'gatewayId must be 1-64 of [A-Za-z0-9_.-]');
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
  const resolved: ResolvedGatewayOptions = {
    ...options,
    logger: options.logger ?? pino({ level: 'silent' }),
    isRevoked: options.isRevoked ?? createRevocationCheck({ kv: options.stores.kv }),
    checkEnrollment: options.checkEnrollment ?? createEnrollmentCheck({ kv: options.stores.kv }),
    sessionRecheckIntervalMs: options.sessionRecheckIntervalMs ?? 60_000,
    heartbeatIntervalMs,
    authTimeoutMs: options.authTimeoutMs ?? 10_000,
    ackTimeoutMs: options.ackTimeoutMs ?? 5_000,
    deliveryAttemptsMax: options.deliveryAttemptsMax ?? 5,
    reportAttemptsMax: options.reportAttemptsMax ?? 6,
    backoff: options.backoff ?? { baseMs: 1_000, maxMs: 30_000 },
    connectionsMax: options.connectionsMax ?? 10_000,
    pendingDeliveriesPerDeviceMax: options.pendingDeliveriesPerDeviceMax ?? 64,
    pendingDeliveriesMax: options.pendingDeliveriesMax ?? 10_000,
    aliveRefreshIntervalMs: options.aliveRefreshIntervalMs ?? heartbeatIntervalMs,
    peerCheckIntervalMs: options.peerCheckIntervalMs ?? heartbeatIntervalMs,
    commandReadBlockMs: options.commandReadBlockMs ?? 1_000,
    refusalsMax: options.refusalsMax ?? 8,
  };
  for (const name of ['heartbeatIntervalMs', 'authTimeoutMs', 'ackTimeoutMs', 'deliveryAttemptsMax', 'reportAttemptsMax', 'connectionsMax', 'pendingDeliveriesPerDeviceMax',
    'pendingDeliveriesMax', 'aliveRefreshIntervalMs', 'peerCheckIntervalMs', 'commandReadBlockMs', 'sessionRecheckIntervalMs'] as const) {
    const value = resolved[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `${name} must be a positive integer`);
  }
  if (resolved.deliveryAttemptsMax > 100) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'deliveryAttemptsMax is at most 100');
  if (resolved.reportAttemptsMax > 100) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'reportAttemptsMax is at most 100');
  return resolved;
}

/** One device connection: the sans-IO GatewayConnection plus what the driver keeps beside it. */
class DeviceSession {
  readonly tasks: SerialTasks;
  /** Normalized, as revocation notices and keys name it. */
  readonly certSerialHex: string;
  timer: TimerHandle | undefined;
  expiry: DeadlineTimer | undefined;
  authenticated = false;
  closed = false;
  sinceMs = 0;
  lastRefreshMs = 0;
  lastRecheckMs = 0;

  constructor(readonly connection: GatewayConnection, readonly transport: DeviceTransport, certSerialHex: string, onTaskError: (error: unknown) => void) {
    this.tasks = new SerialTasks(sessionTasksMax, onTaskError);
    this.certSerialHex = normalizedSerial(certSerialHex);
  }

  get deviceId(): string {
    return this.connection.deviceId;
  }

  get sessionId(): string {
    return this.connection.id;
  }
}

/**
 * The transport-agnostic gateway: admits device connections (revocation, one session per
 * device), drives a GatewayConnection for each, keeps presence, forwards telemetry, alerts and
 * command progress, and routes commands from its stream (CommandRouter). The TLS/WebSocket
 * adapter (gateway-server.ts) and the simulator's in-memory transport both call acceptConnection.
 */
export function createGatewayCore(options: GatewayCoreOptions): GatewayCore {
  const resolved = resolveGatewayOptions(options);
  const context = createGatewayContext(resolved);
  const { logger, clock, scheduler } = resolved;
  const frameSigner: FrameSigner = { kid: resolved.signer.kid, seed: resolved.signer.seed, provider: resolved.provider };
  const connections = new Set<DeviceSession>();
  const sessions = new Map<string, DeviceSession>();
  const presence = new Presence(context);
  const router = new CommandRouter(context, (deviceId) => deliveryTarget(deviceId));
  const peers = new PeerWatch(context, router);
  /** Requeue and presence-offline work of closed sessions, awaited by stop(); one per closed session. */
  const closeBookkeeping = new Set<Promise<void>>();
  let accepting = true;
  let aborted = false;

  function deliveryTarget(deviceId: string): DeliveryTarget | undefined {
    const session = sessions.get(deviceId);
    if (session === undefined || session.closed || session.connection.state !== 'ready') return undefined;
    return {
      sessionId: session.sessionId,
      deliver(command, attempt) {
        if (session.closed || session.connection.state !== 'ready') return false;
        session.connection.deliverCommand(command, attempt, clock.nowMs());
        flush(session);
        return true;
      },
    };
  }

  function flush(session: DeviceSession): void {
    for (const frame of session.connection.takeOutgoing()) {
      try {
        session.transport.send(frame);
      } catch (error) {
        logger.debug({ err: error, device_id: session.deviceId }, 'send on a closing transport');
      }
    }
  }

  function armTimer(session: DeviceSession): void {
    if (session.timer !== undefined) scheduler.cancel(session.timer);
    session.timer = undefined;
    if (session.closed || aborted) return;
    const deadline = session.connection.pollTimeoutMs();
    if (deadline === undefined) return;
    session.timer = context.schedule(deadline - clock.nowMs(), () => {
      session.timer = undefined;
      if (session.closed || aborted) return;
      const events = session.connection.handleTimeout(clock.nowMs());
      flush(session);
      handleEvents(session, events);
      armTimer(session);
    });
  }

  function closeCodeFor(event: Extract<GatewayEvent, { kind: 'closed' }>): number {
    if (event.code !== undefined) return closeCodes.policyViolation;
    return event.reason === 'timeout' || event.reason.startsWith('peer silent') ? closeCodes.timeout : closeCodes.normal;
  }

  function finish(session: DeviceSession, code: number, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    if (session.timer !== undefined) scheduler.cancel(session.timer);
    session.timer = undefined;
    session.expiry?.cancel();
    session.expiry = undefined;
    try {
      session.transport.close(code, reason.slice(0, 120));
    } catch (error) {
      logger.debug({ err: error }, 'transport close failed');
    }
    connections.delete(session);
    if (sessions.get(session.deviceId) === session) sessions.delete(session.deviceId);
    if (!session.authenticated || aborted) return;
    // Not bounded by the queue limit: the hand-back must run even for a session closed for overload.
    const done = session.tasks.drained().then(async () => {
      if (aborted) return;
      try {
        await router.onSessionClosed(session.sessionId);
        await presence.offline(session, reason);
      } catch (error) {
        logger.error({ err: error, device_id: session.deviceId, trace_id: context.traceId() }, 'session close bookkeeping failed');
      }
    });
    closeBookkeeping.add(done);
    void done.finally(() => closeBookkeeping.delete(done));
  }

  /** Closes a live session from our side (replaced, overloaded, stopping). */
  function endSession(session: DeviceSession, code: number, reason: string): void {
    if (session.closed) return;
    session.connection.close(reason, clock.nowMs());
    flush(session);
    finish(session, code, reason);
  }

  function queue(session: DeviceSession, task: () => Promise<void>): void {
    if (session.closed || aborted) return;
    if (!session.tasks.push(task)) {
      logger.warn({ device_id: session.deviceId, trace_id: context.traceId() }, 'session work queue full; closing');
      endSession(session, closeCodes.overloaded, 'GATEWAY_OVERLOADED');
    }
  }

  function handleEvents(session: DeviceSession, events: readonly GatewayEvent[]): void {
    for (const event of events) {
      switch (event.kind) {
        case 'authenticated':
          session.authenticated = true;
          session.sinceMs = clock.nowMs();
          queue(session, () => onAuthenticated(session, event.lastCommandSeq, event.clockOffsetMs));
          break;
        case 'message':
          queue(session, () => onMessage(session, event.message));
          break;
        case 'refused':
          logger.info({ code: event.error.code, device_id: session.deviceId, session_id: session.sessionId, trace_id: context.traceId() }, 'frame refused');
          if (SdcError.is(event.error, 'PROTO_CLOCK_SKEW')) void reportClockOffset(session, Number(event.error.details.clockOffsetMs), 'refused');
          if (event.error.code === 'PROTO_TELEMETRY_CHAIN_BROKEN') queue(session, () => reportAlert(session, 'telemetry_chain_broken', event.error.message));
          break;
        case 'closed':
          finish(session, closeCodeFor(event), event.code ?? event.reason);
          break;
      }
    }
  }

  async function onAuthenticated(session: DeviceSession, lastCommandSeq: number, clockOffsetMs: number): Promise<void> {
    const previous = sessions.get(session.deviceId);
    sessions.set(session.deviceId, session);
    session.lastRefreshMs = clock.nowMs();
    // The key names the new session before the old one closes, so the old one's close reports no offline.
    await presence.online(session, lastCommandSeq, clockOffsetMs);
    if (previous !== undefined && previous !== session) endSession(previous, closeCodes.replaced, 'GATEWAY_SESSION_REPLACED');
    if (Math.abs(clockOffsetMs) > clockOffsetLimits.alertMs) await reportClockOffset(session, clockOffsetMs, 'corrected');
  }

  /**
   * A `clock_skew` alert carrying the offset (the control plane records it on the device): a
   * warning when the session corrects it, critical when AUTH was refused for it. Never throws.
   */
  async function reportClockOffset(session: DeviceSession, clockOffsetMs: number, outcome: 'corrected' | 'refused'): Promise<void> {
    const { alertMs, offsetMsMax } = clockOffsetLimits;
    const message = outcome === 'corrected'
      ? `device clock is ${clockOffsetMs} ms off the gateway's (alert above ${alertMs} ms); corrected for this session`
      : `device clock is ${clockOffsetMs} ms off the gateway's, beyond the ${offsetMsMax} ms a session tolerates; AUTH refused`;
    try {
      await context.report('alert', {
        device_id: session.deviceId, gateway_id: resolved.gatewayId, at_ms: clock.nowMs(), severity: outcome === 'corrected' ? 'warning' : 'critical',
        kind: 'clock_skew', message, clock_offset_ms: clockOffsetMs,
      });
    } catch (error) {
      logger.error({ err: error, device_id: session.deviceId, trace_id: context.traceId() }, 'clock_skew alert not reported');
    }
  }

  async function onMessage(session: DeviceSession, message: DecodedMessage): Promise<void> {
    const nowMs = clock.nowMs();
    // Refresh at most 5 times per presence TTL: enough margin, and a telemetry burst costs no extra writes.
    if (nowMs - session.lastRefreshMs >= Math.floor(resolved.heartbeatIntervalMs / 4) || message.type === 'HEARTBEAT') {
      session.lastRefreshMs = nowMs;
      if (!(await presence.refresh(session))) {
        endSession(session, closeCodes.replaced, 'GATEWAY_SESSION_REPLACED');
        return;
      }
    }
    if (nowMs - session.lastRecheckMs >= resolved.sessionRecheckIntervalMs && (await revokedSince(session, nowMs))) return;
    const frame = textDecoder.decode(encodeEnvelope(message.envelope));
    const { gatewayId, stores } = resolved;
    switch (message.type) {
      case 'TELEMETRY':
        await stores.bus.append(streamNames.telemetry, encodeBusEntry('telemetry', {
          device_id: session.deviceId, gateway_id: gatewayId, received_at_ms: nowMs, frame,
        }), { maxLen: streamMaxLen.telemetry });
        break;
      case 'COMMAND_ACK':
        await router.onAck(session.deviceId, message.body as MessageBody<'COMMAND_ACK'>, frame);
        break;
      case 'COMMAND_RESULT':
        await router.onResult(session.deviceId, message.body as MessageBody<'COMMAND_RESULT'>, frame);
        break;
      case 'ALERT': {
        const alert = message.body as MessageBody<'ALERT'>;
        await context.report('alert', { device_id: session.deviceId, gateway_id: gatewayId, at_ms: nowMs, frame, severity: alert.severity, kind: alert.kind, message: alert.message });
        break;
      }
      case 'ERROR': {
        const error = message.body as MessageBody<'ERROR'>;
        logger.info({ device_id: session.deviceId, code: error.code, ref_id: error.ref_id }, 'device reported an error');
        break;
      }
      default:
        break;
    }
  }

  /**
   * The session re-check: true (and the session closed) if its certificate was revoked since
   * admission. A store failure keeps the session: the next frame tries again.
   */
  async function revokedSince(session: DeviceSession, nowMs: number): Promise<boolean> {
    try {
      const revoked = await resolved.isRevoked(session.certSerialHex);
      session.lastRecheckMs = nowMs;
      if (revoked) closeRevoked(session, 'session re-check');
      return revoked;
    } catch (error) {
      logger.warn({ err: error, device_id: session.deviceId, trace_id: context.traceId() }, 'session re-check failed; retried at the next frame');
      return false;
    }
  }

  function closeRevoked(session: DeviceSession, why: string): void {
    if (session.closed) return;
    logger.warn({ device_id: session.deviceId, serial: session.certSerialHex, why, trace_id: context.traceId() }, 'session closed: its certificate was revoked');
    endSession(session, closeCodes.revoked, 'TRUST_CERT_REVOKED');
  }

  /** A RevocationNotice from the control plane: every session (authenticated or not) using a named certificate ends now. */
  function onRevocationNotice(text: string): void {
    if (aborted) return;
    const notice = parseRevocationNotice(text);
    if (notice === undefined) {
      logger.warn({ trace_id: context.traceId() }, 'malformed revocation notice ignored');
      return;
    }
    for (const session of [...connections]) {
      if (session.deviceId === notice.device_id && notice.serials.includes(session.certSerialHex)) closeRevoked(session, 'revocation notice');
    }
  }

  /** The certificate reached its notAfter: the session ends (TRUST_CERT_EXPIRED), logged and alerted. */
  function expire(session: DeviceSession, notAfterMs: number): void {
    session.expiry = undefined;
    if (session.closed || aborted) return;
    logger.warn({ device_id: session.deviceId, serial: session.certSerialHex, not_after_ms: notAfterMs, trace_id: context.traceId() }, 'session closed: its certificate expired');
    if (session.authenticated) void reportAlert(session, 'certificate_expired', `certificate ${session.certSerialHex} expired at ${new Date(notAfterMs).toISOString()}; session closed`);
    endSession(session, closeCodes.certificateExpired, 'TRUST_CERT_EXPIRED');
  }

  /** A gateway-raised alert about the device (no device frame): never throws, a failure is logged. */
  async function reportAlert(session: DeviceSession, kind: string, message: string): Promise<void> {
    try {
      await context.report('alert', { device_id: session.deviceId, gateway_id: resolved.gatewayId, at_ms: clock.nowMs(), severity: 'warning', kind, message: message.slice(0, 1024) });
    } catch (error) {
      logger.error({ err: error, device_id: session.deviceId, kind, trace_id: context.traceId() }, 'alert not reported');
    }
  }

  function refusalFrames(deviceId: string, error: SdcError): Uint8Array[] {
    const nowMs = clock.nowMs();
    const sessionId = `r_${base64urlFromBytes(resolved.random.bytes(12))}`;
    const address = { deviceId, sessionId, ts: nowMs };
    // A challenge first, so the agent is in the state where AUTH_ERROR is the expected answer.
    const challenge = encodeMessage('AUTH_CHALLENGE', { nonce: base64urlFromBytes(resolved.random.bytes(32)), gateway_id: resolved.gatewayId, server_time_ms: nowMs },
      { ...address, id: 'g0', seq: 0 }, frameSigner);
    const refusal = encodeMessage('AUTH_ERROR', { code: error.code, message: error.message.slice(0, 512) }, { ...address, id: 'g1', seq: 1 }, frameSigner);
    return [challenge.bytes, refusal.bytes];
  }

  function refuseConnection(input: RefuseConnectionInput): void {
    logger.info({ device_id: input.deviceId, code: input.error.code, trace_id: context.traceId() }, 'connection refused');
    try {
      for (const frame of refusalFrames(input.deviceId, input.error)) input.send(frame);
    } catch (error) {
      // A device id the protocol cannot carry: there is no frame to send, only the close.
      logger.debug({ err: error }, 'no AUTH_ERROR frame for this connection');
    }
    try {
      input.close(closeCodes.policyViolation, input.error.code);
    } catch (error) {
      logger.debug({ err: error }, 'transport close failed');
    }
  }

  async function admit(session: DeviceSession): Promise<void> {
    let refusal: SdcError | undefined;
    try {
      if (await resolved.isRevoked(session.certSerialHex)) {
        refusal = new SdcError('TRUST_CERT_REVOKED', `certificate ${session.certSerialHex} is revoked`);
      } else {
        refusal = await resolved.checkEnrollment(session.deviceId, session.certSerialHex);
      }
    } catch (error) {
      logger.error({ err: error, trace_id: context.traceId() }, 'admission check failed');
      refusal = new SdcError('GATEWAY_OVERLOADED', 'admission checks are unavailable');
    }
    if (session.closed || aborted) return;
    if (refusal !== undefined) {
      session.closed = true;
      connections.delete(session);
      refuseConnection({ deviceId: session.deviceId, error: refusal, send: (b) => session.transport.send(b), close: (c, r) => session.transport.close(c, r) });
      return;
    }
    session.lastRecheckMs = clock.nowMs();
    session.connection.start(clock.nowMs());
    flush(session);
    armTimer(session);
  }

  function acceptConnection(input: AcceptConnectionInput): ConnectionHandle {
    const refuseWith = (code: ErrorCode, message: string): ConnectionHandle => {
      refuseConnection({ ...input, error: new SdcError(code, message) });
      return noopHandle;
    };
    if (!accepting || aborted) return refuseWith('GATEWAY_SHUTTING_DOWN', 'the gateway is stopping');
    if (connections.size >= resolved.connectionsMax) return refuseWith('GATEWAY_CONNECTIONS_FULL', `the gateway holds ${resolved.connectionsMax} connections`);
    const connection = new GatewayConnection({
      gatewayId: resolved.gatewayId,
      sessionId: `s_${base64urlFromBytes(resolved.random.bytes(16))}`,
      deviceId: input.deviceId,
      devicePublicKey: input.devicePublicKey,
      signer: frameSigner,
      random: resolved.random,
      heartbeatIntervalMs: resolved.heartbeatIntervalMs,
      authTimeoutMs: resolved.authTimeoutMs,
      // Opaque and random: it names the session to the agent; nothing in this version redeems it.
      sessionToken: base64urlFromBytes(resolved.random.bytes(32)),
      telemetrySha256Hex: sha256Hex,
      refusalsMax: resolved.refusalsMax,
      ...(resolved.limits === undefined ? {} : { limits: resolved.limits }),
    });
    const session = new DeviceSession(connection, input, input.certSerialHex, (error) => {
      logger.error({ err: error, device_id: input.deviceId, trace_id: context.traceId() }, 'session task failed');
    });
    connections.add(session);
    const notAfterMs = input.certNotAfterMs;
    if (notAfterMs !== undefined) session.expiry = armDeadline({ clock, scheduler, deadlineMs: notAfterMs, run: () => expire(session, notAfterMs) });
    queue(session, () => admit(session));
    return {
      receive(bytes) {
        if (session.closed || aborted) return;
        let events: GatewayEvent[];
        try {
          events = session.connection.receive(bytes, clock.nowMs());
        } catch (error) {
          // GatewayConnection turns bad frames into refusals; anything thrown here is our bug. Contain it to this session.
          logger.error({ err: error, device_id: session.deviceId, trace_id: context.traceId() }, 'frame handling failed');
          endSession(session, closeCodes.overloaded, 'GATEWAY_OVERLOADED');
          return;
        }
        flush(session);
        handleEvents(session, events);
        armTimer(session);
      },
      transportClosed() {
        if (session.closed) return;
        const events = session.connection.transportLost(clock.nowMs());
        handleEvents(session, events);
        finish(session, closeCodes.normal, 'transport lost');
      },
    };
  }

  let unsubscribeRevocations: (() => Promise<void>) | undefined;
  const unsubscribe = async (): Promise<void> => {
    const done = unsubscribeRevocations;
    unsubscribeRevocations = undefined;
    await done?.().catch((error: unknown) => logger.warn({ err: error }, 'revocation channel unsubscribe failed'));
  };

  return {
    gatewayId: resolved.gatewayId,
    async start() {
      // First: a revocation announced while the rest starts must not be missed.
      unsubscribeRevocations = await resolved.stores.kv.subscribe(revocationChannel, onRevocationNotice);
      await router.start();
      await peers.start();
    },
    async stop() {
      accepting = false;
      await unsubscribe();
      peers.stop();
      const closing = [...connections];
      for (const session of closing) endSession(session, closeCodes.goingAway, 'GATEWAY_SHUTTING_DOWN');
      await Promise.all([...closeBookkeeping]);
      router.stop();
      await peers.retire().catch((error: unknown) => logger.error({ err: error }, 'liveness key removal failed'));
    },
    abort() {
      aborted = true;
      accepting = false;
      void unsubscribe();
      peers.stop();
      router.stop();
      for (const session of connections) {
        if (session.timer !== undefined) scheduler.cancel(session.timer);
        session.expiry?.cancel();
        session.timer = undefined;
        session.expiry = undefined;
      }
    },
    acceptConnection,
    refuseConnection,
    checkPeers: () => peers.checkPeers(),
    stats: () => ({ connections: connections.size, sessions: sessions.size, pendingDeliveries: router.pendingDeliveries }),
  };
}

/** One spelling per serial; a serial that is not hex (never from a verified certificate) is kept lower-cased, and matches no key. */
function normalizedSerial(serialHex: string): string {
  try {
    return normalizeSerialHex(serialHex);
  } catch {
    return serialHex.toLowerCase();
  }
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
