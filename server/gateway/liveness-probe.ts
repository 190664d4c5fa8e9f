import { SdcError } from '../../core/errors/index.js';

/**
 * The active liveness probe (issue 12, TRMM #1348: a half-open connection that stays "online").
 * A ready session whose last sign of life (a frame, or a pong to our probe) is a heartbeat
 * interval plus `probeGraceMs` old gets a WebSocket ping; no pong and no frame within
 * `probeTimeoutMs` and the session is closed and reported offline. A healthy device that is only
 * quiet answers the ping (ws answers pings itself) and stays online: its pong counts as a sign of
 * life, so the connection's own silence deadline (1.5 intervals after its last frame) no longer
 * applies to it. Transports without `ping` (the simulator's in-memory pipe) keep that silence
 * deadline alone.
 *
 * The bound: a peer that stops answering is closed at most heartbeatIntervalMs + probeGraceMs +
 * probeTimeoutMs after its last sign of life. grace + timeout is held to at most half an interval,
 * so the probe decides within the connection's 1.5-interval silence deadline, never after it.
 * Sans-IO like the connection: every call takes `nowMs`; the gateway core owns timers and I/O.
 */
export interface LivenessProbeOptions {
  readonly heartbeatIntervalMs: number;
  readonly probeGraceMs: number;
  readonly probeTimeoutMs: number;
}

/** What the session timer does now: close it (no answer), let the connection judge its own deadline, or keep waiting. */
export type ProbeStep = 'unresponsive' | 'connection' | 'wait';

/**
 * A session's probe state, kept as two fields of the session itself (DeviceSession): kept beside
 * the sessions instead (a WeakMap entry and an object each), it cost every session a gateway
 * holds about 100 bytes (docs/benchmarks.md, 2026-12-04 night).
 */
export interface ProbedSession {
  /** Our clock when the last pong to an outstanding probe arrived; -Infinity before any. */
  probeLastPongMs: number;
  /** When the outstanding probe was sent; undefined when none is outstanding. */
  probeSentMs: number | undefined;
}

/** What a session starts with: no probe sent, no pong heard. */
export const probeStateInitial: Readonly<ProbedSession> = Object.freeze({ probeLastPongMs: Number.NEGATIVE_INFINITY, probeSentMs: undefined });

/** The connection's silence bound (GatewayConnection.pollTimeoutMs): 1.5 heartbeat intervals. */
export function silenceMsOf(heartbeatIntervalMs: number): number {
  return Math.ceil(heartbeatIntervalMs * 1.5);
}

/** Defaults: a quarter interval each, so the bound is 1.5 intervals, as it was without the probe. */
export function probeDefaults(heartbeatIntervalMs: number): { probeGraceMs: number; probeTimeoutMs: number } {
  return { probeGraceMs: Math.floor(heartbeatIntervalMs / 4), probeTimeoutMs: Math.max(1, Math.floor(heartbeatIntervalMs / 4)) };
}

/** GATEWAY_INVALID_ARGUMENT unless grace >= 0, timeout >= 1, and both fit in the half interval past the heartbeat. */
export function checkProbeOptions(o: LivenessProbeOptions): void {
  if (!Number.isSafeInteger(o.probeGraceMs) || o.probeGraceMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'probeGraceMs must be an integer of at least 0');
  if (!Number.isSafeInteger(o.probeTimeoutMs) || o.probeTimeoutMs < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'probeTimeoutMs must be a positive integer');
  const roomMs = silenceMsOf(o.heartbeatIntervalMs) - o.heartbeatIntervalMs;
  if (o.probeGraceMs + o.probeTimeoutMs > roomMs) {
    throw new SdcError('GATEWAY_INVALID_ARGUMENT', `probeGraceMs + probeTimeoutMs must be at most ${roomMs} ms (half a heartbeat interval), so the probe decides within the silence deadline`);
  }
}

/** The probe's decisions over each session's own probe state (ProbedSession). */
export class LivenessProbe {
  readonly #o: LivenessProbeOptions;
  readonly #silenceMs: number;

  constructor(options: LivenessProbeOptions) {
    checkProbeOptions(options);
    this.#o = options;
    this.#silenceMs = silenceMsOf(options.heartbeatIntervalMs);
  }

  /** The stated bound from the last sign of life to the close of an unresponsive peer. */
  get boundMs(): number {
    return this.#o.heartbeatIntervalMs + this.#o.probeGraceMs + this.#o.probeTimeoutMs;
  }

  /**
   * When the session's timer must fire, given the connection's own silence deadline: the probe's
   * next step, and the connection's deadline unless a pong since its last frame has superseded it.
   */
  deadlineMs(session: ProbedSession, connectionDeadlineMs: number): number {
    const lastFrameMs = connectionDeadlineMs - this.#silenceMs;
    const probeMs = session.probeSentMs === undefined ? Math.max(lastFrameMs, session.probeLastPongMs) + this.#o.heartbeatIntervalMs + this.#o.probeGraceMs : session.probeSentMs + this.#o.probeTimeoutMs;
    return session.probeLastPongMs > lastFrameMs ? probeMs : Math.min(probeMs, connectionDeadlineMs);
  }

  /** At the session timer: sends the ping when it is due (`ping`), and says what the caller does next. */
  step(session: ProbedSession, connectionDeadlineMs: number, nowMs: number, ping: () => void): ProbeStep {
    if (session.probeSentMs !== undefined && nowMs >= session.probeSentMs + this.#o.probeTimeoutMs) return 'unresponsive';
    const lastFrameMs = connectionDeadlineMs - this.#silenceMs;
    if (session.probeLastPongMs <= lastFrameMs && nowMs >= connectionDeadlineMs) return 'connection';
    if (session.probeSentMs === undefined && nowMs >= Math.max(lastFrameMs, session.probeLastPongMs) + this.#o.heartbeatIntervalMs + this.#o.probeGraceMs) {
      session.probeSentMs = nowMs;
      ping();
    }
    return 'wait';
  }

  /** A frame arrived: any probe outstanding is answered (the connection moved its own deadline). */
  heard(session: ProbedSession): void {
    session.probeSentMs = undefined;
  }

  /** A pong arrived. True if it answered our outstanding probe; an unsolicited pong counts for nothing. */
  pong(session: ProbedSession, nowMs: number): boolean {
    if (session.probeSentMs === undefined) return false;
    session.probeSentMs = undefined;
    session.probeLastPongMs = nowMs;
    return true;
  }
}
