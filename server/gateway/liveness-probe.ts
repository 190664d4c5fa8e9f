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

interface ProbeState {
  /** Our clock when the last pong to an outstanding probe arrived; -Infinity before any. */
  lastPongMs: number;
  /** When the outstanding probe was sent; undefined when none is outstanding. */
  sentMs: number | undefined;
}

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

/** Per-session probe state, kept beside the sessions (weakly: a forgotten session takes its state with it). */
export class LivenessProbe {
  readonly #o: LivenessProbeOptions;
  readonly #silenceMs: number;
  readonly #states = new WeakMap<object, ProbeState>();

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
  deadlineMs(session: object, connectionDeadlineMs: number): number {
    const state = this.#state(session);
    const lastFrameMs = connectionDeadlineMs - this.#silenceMs;
    const probeMs = state.sentMs === undefined ? Math.max(lastFrameMs, state.lastPongMs) + this.#o.heartbeatIntervalMs + this.#o.probeGraceMs : state.sentMs + this.#o.probeTimeoutMs;
    return state.lastPongMs > lastFrameMs ? probeMs : Math.min(probeMs, connectionDeadlineMs);
  }

  /** At the session timer: sends the ping when it is due (`ping`), and says what the caller does next. */
  step(session: object, connectionDeadlineMs: number, nowMs: number, ping: () => void): ProbeStep {
    const state = this.#state(session);
    if (state.sentMs !== undefined && nowMs >= state.sentMs + this.#o.probeTimeoutMs) return 'unresponsive';
    const lastFrameMs = connectionDeadlineMs - this.#silenceMs;
    if (state.lastPongMs <= lastFrameMs && nowMs >= connectionDeadlineMs) return 'connection';
    if (state.sentMs === undefined && nowMs >= Math.max(lastFrameMs, state.lastPongMs) + this.#o.heartbeatIntervalMs + this.#o.probeGraceMs) {
      state.sentMs = nowMs;
      ping();
    }
    return 'wait';
  }

  /** A frame arrived: any probe outstanding is answered (the connection moved its own deadline). */
  heard(session: object): void {
    this.#state(session).sentMs = undefined;
  }

  /** A pong arrived. True if it answered our outstanding probe; an unsolicited pong counts for nothing. */
  pong(session: object, nowMs: number): boolean {
    const state = this.#state(session);
    if (state.sentMs === undefined) return false;
    state.sentMs = undefined;
    state.lastPongMs = nowMs;
    return true;
  }

  #state(session: object): ProbeState {
    let state = this.#states.get(session);
    if (state === undefined) {
      state = { lastPongMs: Number.NEGATIVE_INFINITY, sentMs: undefined };
      this.#states.set(session, state);
    }
    return state;
  }
}
