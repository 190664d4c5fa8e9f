/**
 * Which accepted TCP sockets may start their TLS handshake now, which wait, and which are dropped.
 *
 * Why a queue: when every socket starts its handshake the moment it arrives, a reconnect storm of
 * thousands of agents shares the CPU among thousands of half-done handshakes; each then takes
 * longer than the handshake timeout and is destroyed after its CPU was spent, so almost none
 * finishes (a 5,000-agent storm got 251 back in 150 s, docs/benchmarks.md). With at most
 * `handshakesInFlightMax` at once, each finishes in a few milliseconds of CPU and the rest wait
 * their turn in order, unread (their ClientHello stays in the kernel's buffer), costing a file
 * descriptor each and no CPU.
 *
 * Bounds: the queue holds at most `handshakeQueueMax` sockets; one source address has at most
 * `pendingHandshakesPerSourceMax` sockets waiting or in the handshake (so one address cannot fill
 * the queue); a socket that waited longer than `handshakeQueueWaitMsMax` is dropped when its turn
 * comes (its client has most likely given up, and a handshake with it would be wasted).
 *
 * The bound adapts (`handshakesInFlightMin` below the max): a fixed bound is wrong whenever the
 * gateway gets less CPU than it was sized for. The handshakes in flight share the CPU, so each
 * takes about (in flight / handshakes per second) to finish; on a starved gateway 256 at once
 * each outlasted the handshake timeout, and the storm collapsed as it did with no bound
 * (docs/benchmarks.md, 2026-12-03 evening). So a handshake that timed out halves the bound (at most
 * once per round: only one that started after the last cut counts, as TCP's congestion window
 * does), down to the min; each one that finished in under a quarter of `handshakeQueueWaitMsMax`
 * raises it by one, up to the max.
 *
 * Pure bookkeeping over opaque keys, no sockets or timers, so the order is tested directly.
 */

export interface HandshakeAdmissionLimits {
  readonly handshakesInFlightMax: number;
  /** The floor of the adaptive bound; default (and equal to the max): a fixed bound. */
  readonly handshakesInFlightMin?: number;
  readonly handshakeQueueMax: number;
  readonly handshakeQueueWaitMsMax: number;
  readonly pendingHandshakesPerSourceMax: number;
}

export type AdmissionRefusal = 'GATEWAY_SOURCE_LIMIT' | 'GATEWAY_HANDSHAKE_QUEUE_FULL';

export type AdmissionDecision = 'start' | 'queued' | AdmissionRefusal;

/** How a socket left: its handshake finished, passed the handshake timeout, or the socket went (closed, refused, never started). */
export type AdmissionOutcome = 'finished' | 'timedOut' | 'gone';

/** What a released slot lets happen: keys to hand to TLS now, and keys that waited too long. */
export interface AdmissionTurn<K> {
  readonly start: K[];
  readonly expired: K[];
}

interface Waiting<K> {
  readonly key: K;
  readonly source: string;
  readonly arrivedMs: number;
}

export class HandshakeAdmission<K> {
  readonly #limits: HandshakeAdmissionLimits;
  readonly #inFlightMin: number;
  /** The bound now, between the min and the max. */
  #inFlightMax: number;
  /** When the bound was last halved; a timeout of a handshake started before it does not halve it again. */
  #lastCutMs = Number.NEGATIVE_INFINITY;
  /** Running handshakes: source and when each started. */
  readonly #inFlight = new Map<K, { source: string; startedMs: number }>();
  /** FIFO; an entry released while waiting stays here until reached (a lazy delete): it is live only while #waiting maps its key to it. */
  #queue: Array<Waiting<K>> = [];
  #queueHead = 0;
  /** By key, the entry itself (not a flag), since a key (address and port) can come back after its socket closed. */
  readonly #waiting = new Map<K, Waiting<K>>();
  readonly #perSource = new Map<string, number>();

  constructor(limits: HandshakeAdmissionLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (value === undefined) continue;
      if (!Number.isInteger(value) || value < (name === 'handshakeQueueMax' ? 0 : 1)) throw new RangeError(`${name} must be a positive integer`);
    }
    this.#limits = limits;
    this.#inFlightMin = Math.min(limits.handshakesInFlightMin ?? limits.handshakesInFlightMax, limits.handshakesInFlightMax);
    this.#inFlightMax = limits.handshakesInFlightMax;
  }

  get inFlight(): number { return this.#inFlight.size; }
  /** The adaptive bound on handshakes at once, now. */
  get inFlightMax(): number { return this.#inFlightMax; }
  get queued(): number { return this.#waiting.size; }

  /** A new socket from `source`. 'start': hand it to TLS now; 'queued': keep it paused until a turn names it. */
  admit(key: K, source: string, nowMs: number): AdmissionDecision {
    const fromSource = this.#perSource.get(source) ?? 0;
    if (fromSource >= this.#limits.pendingHandshakesPerSourceMax) return 'GATEWAY_SOURCE_LIMIT';
    // Nobody waits while a slot is free (every release fills the free slots from the queue), so this keeps arrival order.
    if (this.#inFlight.size < this.#inFlightMax) {
      this.#perSource.set(source, fromSource + 1);
      this.#inFlight.set(key, { source, startedMs: nowMs });
      return 'start';
    }
    if (this.#waiting.size >= this.#limits.handshakeQueueMax) return 'GATEWAY_HANDSHAKE_QUEUE_FULL';
    this.#perSource.set(source, fromSource + 1);
    const entry = { key, source, arrivedMs: nowMs };
    this.#waiting.set(key, entry);
    this.#queue.push(entry);
    return 'queued';
  }

  /**
   * The socket's handshake finished, failed, or the socket closed while waiting; idempotent, and
   * a key never admitted is ignored. Returns the sockets that may start now (in arrival order)
   * and those dropped for waiting too long.
   */
  release(key: K, nowMs: number, outcome: AdmissionOutcome = 'gone'): AdmissionTurn<K> {
    const running = this.#inFlight.get(key);
    if (running !== undefined) {
      this.#inFlight.delete(key);
      this.#countOut(running.source);
      this.#adapt(outcome, running.startedMs, nowMs);
    } else {
      const waiting = this.#waiting.get(key);
      if (waiting !== undefined) {
        this.#waiting.delete(key);
        this.#countOut(waiting.source);
      }
    }
    return this.#fill(nowMs);
  }

  #adapt(outcome: AdmissionOutcome, startedMs: number, nowMs: number): void {
    // Raised only by a handshake that took under a quarter of the wait bound (the handshake timeout by default):
    // one that finished slowly says the bound is about right, not that there is room.
    if (outcome === 'finished') {
      if (nowMs - startedMs < this.#limits.handshakeQueueWaitMsMax / 4) this.#inFlightMax = Math.min(this.#limits.handshakesInFlightMax, this.#inFlightMax + 1);
    } else if (outcome === 'timedOut' && startedMs >= this.#lastCutMs) {
      this.#inFlightMax = Math.max(this.#inFlightMin, Math.floor(this.#inFlightMax / 2));
      this.#lastCutMs = nowMs;
    }
  }

  #fill(nowMs: number): AdmissionTurn<K> {
    const turn: AdmissionTurn<K> = { start: [], expired: [] };
    while (this.#inFlight.size < this.#inFlightMax && this.#queueHead < this.#queue.length) {
      const next = this.#queue[this.#queueHead]!;
      this.#queueHead += 1;
      if (this.#waiting.get(next.key) !== next) continue; // released while it waited
      this.#waiting.delete(next.key);
      if (nowMs - next.arrivedMs > this.#limits.handshakeQueueWaitMsMax) {
        this.#countOut(next.source);
        turn.expired.push(next.key);
        continue;
      }
      this.#inFlight.set(next.key, { source: next.source, startedMs: nowMs });
      turn.start.push(next.key);
    }
    this.#compact();
    return turn;
  }

  #countOut(source: string): void {
    const count = (this.#perSource.get(source) ?? 1) - 1;
    if (count <= 0) this.#perSource.delete(source);
    else this.#perSource.set(source, count);
  }

  /** Drops the consumed head once it is most of the array, so memory follows the queue's length. */
  #compact(): void {
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }
}
