import { SdcError } from '../errors/index.js';

/**
 * Refuses replayed, reordered, stale and future frames, per session, in bounded memory.
 *
 * Sequence numbers must strictly increase within a session. Besides the highest accepted
 * seq, a sliding bitmap of the last `windowSize` seqs (as IPsec's anti-replay window) tells a
 * replay (seq already accepted) from a reordering (seq never seen but below the highest):
 * the two get different codes, which matters when diagnosing a lossy link vs an attacker.
 * Both are refused: the protocol runs over an ordered transport, so a gap is never filled.
 *
 * Timestamps: `ts` may be at most `skewMs` ahead of `nowMs` (clock drift), and at most
 * `ttlMs` behind it (a frame older than that is stale even if its seq is fresh).
 */
export interface ReplayGuardOptions {
  /** Maximum tolerated clock difference for frames from the future. */
  skewMs: number;
  /** Maximum age of a frame on arrival. */
  ttlMs: number;
  /** Sessions tracked at once; opening one more is refused (never silently evicted). */
  sessionsMax: number;
  /** Seqs below the highest remembered individually (1..1024). */
  windowSize?: number;
}

export const defaultReplayGuardOptions: Readonly<ReplayGuardOptions> = Object.freeze({
  skewMs: 30_000,
  ttlMs: 60_000,
  sessionsMax: 100_000,
  windowSize: 64,
});

interface SessionWindow {
  readonly sessionId: string;
  /** Highest accepted seq, or startSeq - 1 before the first frame. */
  highestSeq: number;
  /** Bit i set: seq (highestSeq - i) was accepted. Bit 0 is highestSeq itself. */
  seen: bigint;
}

export interface ReplayCheckInput {
  sessionId: string;
  seq: number;
  ts: number;
}

export class ReplayGuard {
  // The options as fields, not a merged object: every gateway session has its own guard
  // (connection-core.ts), so an object per guard is paid tens of thousands of times.
  readonly #skewMs: number;
  readonly #ttlMs: number;
  readonly #sessionsMax: number;
  readonly #windowSize: number;
  /**
   * The first open session is kept here and a Map is made only for a second one at once: a
   * session's guard tracks one session, and a one-entry Map cost about 400 bytes of heap per
   * gateway session (docs/benchmarks.md, 2026-12-04 "memory per session").
   */
  #first: SessionWindow | undefined;
  #others: Map<string, SessionWindow> | undefined;

  constructor(options: Partial<ReplayGuardOptions> = {}) {
    const merged = { ...defaultReplayGuardOptions, ...options } as Required<ReplayGuardOptions>;
    if (!(merged.windowSize >= 1 && merged.windowSize <= 1024 && Number.isInteger(merged.windowSize))) {
      throw new SdcError('PROTO_INVALID_ARGUMENT', 'windowSize must be an integer from 1 to 1024');
    }
    for (const key of ['skewMs', 'ttlMs', 'sessionsMax'] as const) {
      if (!(Number.isSafeInteger(merged[key]) && merged[key] >= 0)) throw new SdcError('PROTO_INVALID_ARGUMENT', `${key} must be a non-negative integer`);
    }
    this.#skewMs = merged.skewMs;
    this.#ttlMs = merged.ttlMs;
    this.#sessionsMax = merged.sessionsMax;
    this.#windowSize = merged.windowSize;
  }

  get sessionCount(): number {
    return (this.#first === undefined ? 0 : 1) + (this.#others?.size ?? 0);
  }

  #window(sessionId: string): SessionWindow | undefined {
    return this.#first?.sessionId === sessionId ? this.#first : this.#others?.get(sessionId);
  }

  /** Starts tracking a session whose first frame must carry seq >= startSeq. */
  open(sessionId: string, startSeq: number): void {
    if (!Number.isSafeInteger(startSeq) || startSeq < 0) throw new SdcError('PROTO_INVALID_ARGUMENT', 'startSeq must be a non-negative safe integer');
    const window: SessionWindow = { sessionId, highestSeq: startSeq - 1, seen: 0n };
    if (this.#first?.sessionId === sessionId) {
      this.#first = window;
      return;
    }
    if (this.#others?.has(sessionId) !== true && this.sessionCount >= this.#sessionsMax) {
      throw new SdcError('PROTO_REPLAY_CAPACITY', `replay guard tracks ${this.#sessionsMax} sessions already`);
    }
    if (this.#first === undefined && this.#others?.has(sessionId) !== true) this.#first = window;
    else (this.#others ??= new Map()).set(sessionId, window);
  }

  close(sessionId: string): void {
    if (this.#first?.sessionId === sessionId) this.#first = undefined;
    else this.#others?.delete(sessionId);
  }

  /**
   * Accepts the frame (and remembers its seq) or throws: PROTO_SESSION_MISMATCH (session not open),
   * PROTO_TS_IN_FUTURE, PROTO_TS_TOO_OLD, PROTO_REPLAY, PROTO_SEQ_OUT_OF_ORDER.
   * Nothing is remembered for a refused frame.
   */
  accept(frame: ReplayCheckInput, nowMs: number): void {
    const session = this.#window(frame.sessionId);
    if (session === undefined) throw new SdcError('PROTO_SESSION_MISMATCH', 'frame for a session that is not open');
    const { seq, ts } = frame;
    if (!Number.isSafeInteger(seq) || seq < 0 || !Number.isSafeInteger(ts) || ts < 0) {
      throw new SdcError('PROTO_SCHEMA_INVALID', 'seq and ts must be non-negative safe integers');
    }
    if (ts > nowMs + this.#skewMs) {
      throw new SdcError('PROTO_TS_IN_FUTURE', `frame is ${ts - nowMs} ms in the future`, { skewMs: this.#skewMs });
    }
    if (ts < nowMs - this.#ttlMs) {
      throw new SdcError('PROTO_TS_TOO_OLD', `frame is ${nowMs - ts} ms old`, { ttlMs: this.#ttlMs });
    }
    const { highestSeq } = session;
    if (seq > highestSeq) {
      const shift = seq - highestSeq;
      const mask = (1n << BigInt(this.#windowSize)) - 1n;
      session.seen = shift >= this.#windowSize ? 1n : ((session.seen << BigInt(shift)) | 1n) & mask;
      session.highestSeq = seq;
      return;
    }
    const offset = highestSeq - seq;
    if (offset < this.#windowSize && (session.seen >> BigInt(offset)) & 1n) {
      throw new SdcError('PROTO_REPLAY', `seq ${seq} was already accepted`, { seq });
    }
    // Below the highest and not remembered as accepted: either skipped or older than the window.
    // Older-than-window seqs may be replays we no longer remember; refusing them either way is safe.
    throw new SdcError('PROTO_SEQ_OUT_OF_ORDER', `seq ${seq} is not above ${highestSeq}`, { seq, highestSeq });
  }
}
