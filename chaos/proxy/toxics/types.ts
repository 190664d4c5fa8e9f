import type { RandomSource } from '../../../core/ports/ports.js';
import type { ChaosLimits } from '../limits.js';
import type { ChaosTime } from '../time.js';

/** `upstream` is client -> server, `downstream` is server -> client (Toxiproxy's words). */
export type ToxicStream = 'upstream' | 'downstream';

/**
 * Where a stage sends what it lets through. The link resolves "the next stage" at each call, so
 * toxics can be added to and removed from a connection while bytes flow.
 */
export interface StageOutput {
  write(chunk: Buffer): void;
  end(): void;
}

/** What a stage may use and ask of its connection; given by the link that owns the stage. */
export interface StageContext {
  readonly time: ChaosTime;
  /** For jitter and slice sizes; never for toxicity, which has its own stream. */
  readonly random: RandomSource;
  readonly output: StageOutput;
  /** The stage's held bytes changed: the link re-checks backpressure. */
  heldChanged(): void;
  /**
   * False while a stage after this one (or the writing socket) is at its limit. A stage that cuts
   * one chunk into many (slicer) stops passing on then and waits for `resume`: pausing the reading
   * socket stops new chunks, not the pieces of one already read.
   */
  outputHasRoom(): boolean;
  /** Ends the whole connection: `close` sends FIN after the bytes already let through, `reset` sends RST. */
  closeConnection(how: 'close' | 'reset'): void;
}

/** What a removed or replaced stage hands back, in arrival order, so that no byte is lost. */
export interface HeldData {
  readonly chunks: readonly Buffer[];
  /** The end of the stream arrived and was not passed on yet. */
  readonly ended: boolean;
}

/** One toxic on one direction of one connection. */
export interface ToxicStage {
  /** A chunk from the previous stage (or the reading socket). */
  write(chunk: Buffer): void;
  /** The previous stage ended the stream. */
  end(): void;
  /** Payload bytes held now. */
  readonly heldBytes: number;
  /**
   * Pieces (buffers) held now: each costs heap beyond its bytes, so the link counts
   * heldPieceOverheadBytes for each against the limit too (1-byte pieces cost 100+ times their size).
   */
  readonly heldPieces: number;
  /** The link has room again after outputHasRoom said no: pass on what waited. */
  resume?(): void;
  /** The toxic is removed or replaced: cancel timers and hand back what is held. */
  release(): HeldData;
  /** The connection closed: cancel timers; what is held is dropped with the connection. */
  dispose(): void;
}

/** Toxic attributes: every Toxiproxy attribute of the implemented toxics is an integer. */
export type AttributeValues = Readonly<Record<string, number>>;

export interface AttributeSpec {
  readonly name: string;
  readonly min: number;
  readonly max: (limits: ChaosLimits) => number;
  /** Toxiproxy's default: the value a Go struct field has when the JSON omits it. */
  readonly fallback: number;
}

/** Everything about one toxic type (jose's one-module-per-algorithm). */
export interface ToxicKind {
  readonly type: string;
  readonly attributes: readonly AttributeSpec[];
  /** A check across attributes after each is in range; returns the refusal message, if any. */
  readonly crossCheck?: (values: AttributeValues) => string | undefined;
  createStage(values: AttributeValues, context: StageContext): ToxicStage;
}

/** A stage that lets everything through: the toxic did not apply to this connection (toxicity). */
export function passthroughStage(output: StageOutput): ToxicStage {
  return {
    write: (chunk) => output.write(chunk),
    end: () => output.end(),
    heldBytes: 0,
    heldPieces: 0,
    release: () => ({ chunks: [], ended: false }),
    dispose: () => {},
  };
}

/** Reads an attribute that validation guaranteed (see attributes.ts). */
export function attribute(values: AttributeValues, name: string): number {
  const value = values[name];
  if (value === undefined) throw new RangeError(`toxic attribute ${name} is missing after validation`);
  return value;
}
