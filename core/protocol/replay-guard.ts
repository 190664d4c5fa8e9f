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

/** A session tracked beside the first one (its own Map entry; a gateway session's guard never has one). */
interface SessionWindow {
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
   * The first open session's window, as three fields of the guard, and a Map only for a second
   * session at once: a gateway session's guard tracks one session, and its window as an object of
   * its own cost a plain object per gateway session (docs/benchmarks.md, 2026-12-04 night; a
   * one-entry Map, before that, about 400 bytes). Undefined: no first session open.
   */
  #firstSessionId: string | undefined;
  /** Highest accepted seq of the first session, or its startSeq - 1 before its first frame. */
  #firstHighestSeq = 0;
  /** Bit i set: seq (#firstHighestSeq - i) of the first session was accepted. Bit 0 is #firstHighestSeq itself. */
  #firstSeen = 0n;
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
    return (this.#firstSessionId === undefined ? 0 : 1) + (this.#others?.size ?? 0);
  }

  /** Starts tracking a session whose first frame must carry seq >= startSeq. */
  open(sessionId: string, startSeq: number): void {
    if (!Number.isSafeInteger(startSeq) || startSeq < 0) throw new SdcError('PROTO_INVALID_ARGUMENT', 'startSeq must be a non-negative safe integer');
    const tracked = this.#firstSessionId === sessionId || this.#others?.has(sessionId) === true;
    if (!tracked && this.sessionCount >= this.#sessionsMax) {
      throw new SdcError('PROTO_REPLAY_CAPACITY', `replay guard tracks ${this.#sessionsMax} sessions already`);
    }
    if (this.#firstSessionId === sessionId || (this.#firstSessionId === undefined && !tracked)) {
      this.#firstSessionId = sessionId;
      this.#firstHighestSeq = startSeq - 1;
      this.#firstSeen = 0n;
      return;
    }
    (this.#others ??= new Map()).set(sessionId, { highestSeq: startSeq - 1, seen: 0n });
  }

  close(sessionId: string): void {
    if (this.#firstSessionId === sessionId) this.#firstSessionId = undefined;
    else this.#others?.delete(sessionId);
  }

  /**
   * Accepts the frame (and remembers its seq) or throws: PROTO_SESSION_MISMATCH (session not open),
   * PROTO_TS_IN_FUTURE, PROTO_TS_TOO_OLD, PROTO_REPLAY, PROTO_SEQ_OUT_OF_ORDER.
   * Nothing is remembered for a refused frame.
   */
  accept(frame: ReplayCheckInput, nowMs: number): void {
    const first = this.#firstSessionId !== undefined && this.#firstSessionId === frame.sessionId;
    const other = first ? undefined : this.#others?.get(frame.sessionId);
    if (!first && other === undefined) throw new SdcError('PROTO_SESSION_MISMATCH', 'frame for a session that is not open');
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
    const seen = this.#seenAfter(seq, first ? this.#firstHighestSeq : other!.highestSeq, first ? this.#firstSeen : other!.seen);
    if (first) {
      this.#firstHighestSeq = seq;
      this.#firstSeen = seen;
    } else {
      other!.highestSeq = seq;
      other!.seen = seen;
    }
  }

  /** The window's bitmap once `seq` is accepted as its new highest; throws when `seq` is not above `highestSeq`. */
  #seenAfter(seq: number, highestSeq: number, seen: bigint): bigint {
    if (seq > highestSeq) {
      const shift = seq - highestSeq;
      const mask = (1n << BigInt(this.#windowSize)) - 1n;
      return shift >= this.#windowSize ? 1n : ((seen << BigInt(shift)) | 1n) & mask;
    }
    const offset = highestSeq - seq;
    if (offset < this.#windowSize && (seen >> BigInt(offset)) & 1n) {
      throw new SdcError('PROTO_REPLAY', `seq ${seq} was already accepted`, { seq });
    }
    // Below the highest and not remembered as accepted: either skipped or older than the window.
    // Older-than-window seqs may be replays we no longer remember; refusing them either way is safe.
    throw new SdcError('PROTO_SEQ_OUT_OF_ORDER', `seq ${seq} is not above ${highestSeq}`, { seq, highestSeq });
  }
}
