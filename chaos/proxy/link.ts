import type { Socket } from 'node:net';
import type { RandomSource } from '../../core/ports/ports.js';
import type { ChaosTime } from './time.js';
import type { ToxicState } from './toxic-state.js';
import { passthroughStage, type HeldData, type StageContext, type ToxicStage, type ToxicStream } from './toxics/types.js';

/** Toxicity is drawn as parts per million: integer ratios, so a seeded run replays exactly. */
export const toxicityScale = 1_000_000;

/**
 * What one held piece (a Buffer, and latency's entry for it) costs beyond its bytes, counted
 * against toxicHeldBytesMax with the bytes. Measured on node 20: a Buffer view about 105 bytes of
 * heap, latency's entry 40 more. Counting bytes only, 1-byte pieces (a slicer of average_size 1,
 * or a sender's 1-byte writes) held 671 KB in 109 MB of heap (review h2, finding 2).
 */
export const heldPieceOverheadBytes = 128;

/** What a stage holds, as counted against toxicHeldBytesMax: its bytes plus heldPieceOverheadBytes per piece. */
function heldCostBytes(stage: { readonly heldBytes: number; readonly heldPieces: number }): number {
  return stage.heldBytes + stage.heldPieces * heldPieceOverheadBytes;
}

export interface LinkOptions {
  readonly stream: ToxicStream;
  readonly source: Socket;
  readonly sink: Socket;
  readonly time: ChaosTime;
  /** Draws whether each toxic applies to this link: one draw per toxic, in order. */
  readonly toxicityRandom: RandomSource;
  /** Jitter and slice sizes. */
  readonly toxicRandom: RandomSource;
  readonly toxicHeldBytesMax: number;
  /** A toxic's close reached the sink: close the whole connection. */
  onCloseRequested(): void;
  /** A toxic resets the connection. */
  onResetRequested(): void;
}

interface Slot {
  readonly toxic: ToxicState;
  readonly stage: ToxicStage;
}

export interface LinkStats {
  readonly stream: ToxicStream;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly heldBytes: number;
  /** Pieces (buffers) the stages hold: each is counted as heldPieceOverheadBytes against the limit. */
  readonly heldPieces: number;
  readonly paused: boolean;
  /** The reading socket ended (its FIN reached the first stage). */
  readonly sourceEnded: boolean;
  /** The writing socket was ended (FIN sent after its queued bytes). */
  readonly sinkEnded: boolean;
}

/**
 * One direction of one proxied connection: the reading socket, the chain of toxic stages (in the
 * order the toxics were added) and the writing socket. Backpressure: when any stage holds
 * `toxicHeldBytesMax` (its bytes plus heldPieceOverheadBytes per piece) or the writing socket's
 * buffer is full, the reading socket is paused until every stage is below the limit and the
 * writer drained; so one stage holds at most the limit plus one socket read. A stage that cuts a
 * read into many pieces (slicer) also stops passing on while a later stage is full
 * (outputHasRoom), so one read's pieces do not pile up past the limit either.
 */
export class Link {
  readonly #slots: Slot[] = [];
  /**
   * Stages that asked outputHasRoom and were told no: each is resumed once its own output has
   * room, whether or not the reading socket's pause changes then. A stopped slicer may itself
   * hold the limit (latency released into it while the socket was full), so the link stays
   * "full" until that stage goes on (review h13).
   */
  readonly #waiting = new Set<Slot>();
  #paused = false;
  #bytesIn = 0;
  #bytesOut = 0;
  #sourceEnded = false;
  #sinkEnded = false;
  #closeAtSinkEnd = false;

  constructor(private readonly options: LinkOptions, toxics: readonly ToxicState[]) {
    for (const toxic of toxics) this.#slots.push(this.#createSlot(toxic));
    options.source.on('data', (chunk: Buffer) => {
      this.#bytesIn += chunk.length;
      this.#writeAt(0, chunk);
      this.#checkPressure();
    });
    options.source.on('end', () => {
      this.#sourceEnded = true;
      this.#endAt(0);
    });
    options.sink.on('drain', () => this.#checkPressure());
  }

  stats(): LinkStats {
    const heldBytes = this.#slots.reduce((sum, slot) => sum + slot.stage.heldBytes, 0);
    const heldPieces = this.#slots.reduce((sum, slot) => sum + slot.stage.heldPieces, 0);
    const { stream } = this.options;
    return { stream, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, heldBytes, heldPieces, paused: this.#paused, sourceEnded: this.#sourceEnded, sinkEnded: this.#sinkEnded };
  }

  /** A toxic added under live traffic goes to the end of the chain (Toxiproxy's order). */
  addToxic(toxic: ToxicState): void {
    this.#slots.push(this.#createSlot(toxic));
  }

  /** Removes a toxic; what it held goes on to the next stage, in order. */
  removeToxic(name: string): void {
    const index = this.#slots.findIndex((s) => s.toxic.name === name);
    if (index < 0) return;
    const [slot] = this.#slots.splice(index, 1);
    this.#waiting.delete(slot!);
    this.#passOn(index, slot!.stage.release());
  }

  /** An updated toxic: a new stage in the same place takes over what the old one held. */
  replaceToxic(toxic: ToxicState): void {
    const index = this.#slots.findIndex((s) => s.toxic.name === toxic.name);
    if (index < 0) return;
    const old = this.#slots[index]!;
    this.#waiting.delete(old);
    this.#slots[index] = this.#createSlot(toxic);
    this.#passOn(index, old.stage.release());
  }

  /** What a stage that left handed back goes to the stage now at `index`, in order. */
  #passOn(index: number, held: HeldData): void {
    for (const chunk of held.chunks) this.#writeAt(index, chunk);
    if (held.ended) this.#endAt(index);
    this.#checkPressure();
  }

  /** The connection is gone: cancel every stage's timers. */
  dispose(): void {
    for (const slot of this.#slots) slot.stage.dispose();
  }

  #createSlot(toxic: ToxicState): Slot {
    const applies = this.options.toxicityRandom.intBelow(toxicityScale) < toxic.toxicityPpm;
    const slot: { toxic: ToxicState; stage?: ToxicStage } = { toxic };
    const context: StageContext = {
      time: this.options.time,
      random: this.options.toxicRandom,
      output: { write: (chunk) => this.#forward(slot, chunk), end: () => this.#forwardEnd(slot) },
      heldChanged: () => this.#checkPressure(),
      outputHasRoom: () => {
        const index = this.#slots.indexOf(slot as Slot);
        if (index < 0 || !this.#fullAfter(index)) return true;
        this.#waiting.add(slot as Slot);
        return false;
      },
      closeConnection: (how) => (how === 'reset' ? this.options.onResetRequested() : this.#closeAfter(slot)),
    };
    slot.stage = applies ? toxic.kind.createStage(toxic.attributes, context) : passthroughStage(context.output);
    return slot as Slot;
  }

  /** The index after `slot`, or undefined when the slot was removed (it released its data then). */
  #nextIndex(slot: object): number | undefined {
    const index = this.#slots.indexOf(slot as Slot);
    return index < 0 ? undefined : index + 1;
  }

  #forward(slot: object, chunk: Buffer): void {
    const next = this.#nextIndex(slot);
    if (next !== undefined) this.#writeAt(next, chunk);
  }

  #forwardEnd(slot: object): void {
    const next = this.#nextIndex(slot);
    if (next !== undefined) this.#endAt(next);
  }

  /** A toxic closes the connection: its end travels behind what it let through, then everything closes. */
  #closeAfter(slot: object): void {
    this.#closeAtSinkEnd = true;
    this.#forwardEnd(slot);
  }

  #writeAt(index: number, chunk: Buffer): void {
    const slot = this.#slots[index];
    if (slot !== undefined) return slot.stage.write(chunk);
    const sink = this.options.sink;
    if (this.#sinkEnded || sink.destroyed) return;
    this.#bytesOut += chunk.length;
    sink.write(chunk);
  }

  #endAt(index: number): void {
    const slot = this.#slots[index];
    if (slot !== undefined) return slot.stage.end();
    if (this.#sinkEnded) return;
    this.#sinkEnded = true;
    if (!this.options.sink.destroyed) this.options.sink.end();
    if (this.#closeAtSinkEnd) this.options.onCloseRequested();
  }

  /** True when a stage after `index` (-1: any stage) is at its limit or the writing socket is full. */
  #fullAfter(index: number): boolean {
    if (this.options.sink.writableNeedDrain) return true;
    for (let i = index + 1; i < this.#slots.length; i++) {
      if (heldCostBytes(this.#slots[i]!.stage) >= this.options.toxicHeldBytesMax) return true;
    }
    return false;
  }

  #checkPressure(): void {
    this.#resumeWaiting();
    const full = this.#fullAfter(-1);
    if (full === this.#paused) return;
    this.#paused = full;
    if (full) this.options.source.pause();
    else this.options.source.resume();
  }

  /**
   * Resumes each stopped stage whose output has room now, the last in the chain first, so room
   * made at the end is taken from the back. A stage leaves the set before its resume: if it stops
   * again it joins again, and it is resumed only after its output changes, so this does not loop
   * (a resume's own heldChanged re-enters #checkPressure and finds nothing more to do).
   */
  #resumeWaiting(): void {
    if (this.#waiting.size === 0) return;
    for (let i = this.#slots.length - 1; i >= 0; i--) {
      const slot = this.#slots[i]!;
      if (!this.#waiting.has(slot) || this.#fullAfter(i)) continue;
      this.#waiting.delete(slot);
      slot.stage.resume?.();
    }
  }
}
