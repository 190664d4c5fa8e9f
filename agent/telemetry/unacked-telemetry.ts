import { SdcError } from '../../core/errors/index.js';

/** One telemetry sample as the agent keeps it: its sampled_at (the gateway's clock) and metrics, as sent. */
export interface KeptSample<M> {
  readonly sampledAtMs: number;
  readonly metrics: M;
}

/**
 * The samples this agent sent in the current session and the gateway has not acknowledged yet
 * (TELEMETRY_ACK, decision 0004 "Acknowledgements"), by the seq of the frame that carried them.
 * An ack names a seq: every frame up to it is on the bus, so its samples are forgotten. When the
 * session ends, what is left is handed back (`takeAll`, oldest first) to be sent again, unchanged,
 * in the next session: the store keeps one row per (device, sampled_at, metrics).
 *
 * Bounded in samples (`samplesMax`): past it the oldest frame's samples are forgotten (counted by
 * the caller, from `sent`'s return). They were sent, so they may well be stored; only the
 * guarantee is lost. Pure: no clock, no timers.
 */
export class UnackedTelemetry<M> {
  readonly #frames: Array<{ readonly seq: number; readonly samples: ReadonlyArray<KeptSample<M>> }> = [];
  #samples = 0;

  constructor(readonly samplesMax: number) {
    if (!Number.isSafeInteger(samplesMax) || samplesMax < 1) throw new SdcError('PROTO_INVALID_ARGUMENT', 'telemetryUnackedMax must be a positive integer');
  }

  /** Samples kept now. */
  get size(): number {
    return this.#samples;
  }

  /** A frame sent with `seq` (increasing within a session); returns the samples forgotten to stay within samplesMax. */
  sent(seq: number, samples: ReadonlyArray<KeptSample<M>>): number {
    this.#frames.push({ seq, samples });
    this.#samples += samples.length;
    let forgotten = 0;
    while (this.#samples > this.samplesMax && this.#frames.length > 0) {
      const oldest = this.#frames[0]!;
      const excess = this.#samples - this.samplesMax;
      if (oldest.samples.length <= excess) {
        this.#frames.shift();
        this.#samples -= oldest.samples.length;
        forgotten += oldest.samples.length;
      } else {
        // Part of a batch: its oldest samples go, the rest stay under the frame's seq.
        this.#frames[0] = { seq: oldest.seq, samples: oldest.samples.slice(excess) };
        this.#samples -= excess;
        forgotten += excess;
      }
    }
    return forgotten;
  }

  /** A checked TELEMETRY_ACK (cumulative): every frame with seq <= throughSeq is on the bus. Returns the samples forgotten. */
  acked(throughSeq: number): number {
    let acknowledged = 0;
    while (this.#frames.length > 0 && this.#frames[0]!.seq <= throughSeq) {
      acknowledged += this.#frames.shift()!.samples.length;
    }
    this.#samples -= acknowledged;
    return acknowledged;
  }

  /** The session ended: every unacknowledged sample, oldest first, and the buffer emptied (a new session numbers its frames anew). */
  takeAll(): Array<KeptSample<M>> {
    const samples = this.#frames.flatMap((frame) => frame.samples);
    this.#frames.length = 0;
    this.#samples = 0;
    return samples;
  }
}
