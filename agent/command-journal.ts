import { SdcError } from '../core/errors/index.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import { parseTraceparent } from '../core/trace/trace-context.js';

export type CommandResultBody = MessageBody<'COMMAND_RESULT'>;

/** received: persisted, not started. executing: handed to the kernel. finished: has a result. */
export type JournalStage = 'received' | 'executing' | 'finished';

export interface JournalEntry {
  readonly command: SignedCommand;
  /**
   * The delivery's W3C traceparent, kept so that a command recovered after a restart still runs
   * and reports under the operation's trace (issue 12); absent when the delivery had none.
   */
  readonly traceparent?: string;
  readonly stage: JournalStage;
  readonly result?: CommandResultBody;
  /** The gateway provably received the result (agent-core: a later heartbeat was echoed). */
  readonly confirmed: boolean;
}

/**
 * The agent's record of every command it took, so that each command id takes effect at most
 * once across redeliveries, reconnects and restarts. Every mutation is durable when its promise
 * resolves (the file journal fsyncs); the agent acknowledges a command only after `received`.
 */
export interface CommandJournal {
  get(commandId: string): JournalEntry | undefined;
  /** Entries in the order the commands were received (compacted entries are gone). */
  entries(): JournalEntry[];
  /** Highest device_seq that reached `executing`; survives compaction. */
  highestExecutedSeq(): number;
  /**
   * True when a command with this device_seq has run (or counts as run): such a seq is never
   * executed again, whatever its id. Survives compaction and restarts. Seqs below the highest
   * that have not run stay open, so a command redelivered out of order still runs once.
   */
  isSeqDone(seq: number): boolean;
  /**
   * Commands issued (issued_at) before this are refused (agent/command-acceptance.ts): for a
   * journal file created where none was (command-journal-file.ts), the time of the first session
   * after (settleIssuedFloor); 0 when none was recorded. Optional: a journal that records none (the
   * simulator's) refuses nothing by it.
   */
  issuedFloorMs?(): number;
  /**
   * True while the journal was created where none was and its floor is not known yet: every
   * command is refused (AGENT_COMMAND_BEFORE_JOURNAL) until settleIssuedFloor records one.
   */
  issuedFloorPending?(): boolean;
  /**
   * Records `nowMs` as the floor when it is pending, or when the recorded floor is later than
   * `nowMs` (a floor in the future is certainly wrong: it was taken on a clock that ran ahead);
   * otherwise does nothing. The agent calls it at each AUTH_ACK with the later of its own clock
   * and the gateway's (agent-core #onReady). Durable when it resolves; true when it wrote.
   */
  settleIssuedFloor?(nowMs: number): Promise<boolean>;
  /** Throws AGENT_JOURNAL_FULL when `unfinishedMax` commands are not finished yet. */
  received(command: SignedCommand, traceparent?: string): Promise<void>;
  executing(commandId: string): Promise<void>;
  finished(commandId: string, result: CommandResultBody): Promise<void>;
  confirmed(commandIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export interface JournalLimits {
  /** Commands received but not finished; more are refused (the journal must not grow without bound). */
  unfinishedMax: number;
  /**
   * Finished entries kept to answer redeliveries from the record. Beyond it the oldest confirmed
   * ones are dropped first; past twice the number, the oldest finished ones regardless (a
   * redelivery of those is refused as COMMAND_SEQ_STALE, never executed again).
   */
  finishedRetain: number;
  /**
   * Bytes the live entries' records may take (each entry's received and finished lines, plus room
   * for its executing record or its id in the confirmed list), counted only when the journal passes
   * record sizes to `check` and `apply` (the file journal does; the memory journal does not, so it
   * has no byte bound). Unfinished commands may take half: past it `received` is
   * AGENT_JOURNAL_FULL. Past the whole, finished entries are dropped as past twice finishedRetain
   * (confirmed first, then the oldest). The file journal derives it from its file bound so that a
   * compacted file always fits (command-journal-file.ts).
   */
  entryBytesMax?: number;
}

export const defaultJournalLimits: Readonly<JournalLimits> = Object.freeze({ unfinishedMax: 256, finishedRetain: 1024 });

/**
 * Run seqs remembered above the watermark. Gaps (commands delivered out of order, or expired
 * before delivery) keep the watermark from advancing; past this many remembered seqs it is
 * raised to the lowest of them, and anything older that has not arrived yet is refused as stale.
 */
export const executedSeqsAboveWatermarkMax = 4096;

/**
 * Bytes a snapshot needs besides its entries: the watermark, floor and confirmed-list wrapper
 * lines, and executed_seqs at its bound (each seq a safe integer: at most 16 digits and a comma).
 */
export const snapshotFixedBytesMax = 256 + executedSeqsAboveWatermarkMax * 17;

/** An entry's executing record or its place in the confirmed list; an id char is at most 6 bytes of JSON (a \uXXXX escape). */
function entryOverheadBytes(id: string): number {
  return 32 + 6 * id.length;
}

/** One line of the file journal; the memory journal applies the same records. */
export type JournalRecord =
  | { r: 'received'; command: SignedCommand; traceparent?: string }
  | { r: 'executing'; id: string }
  | { r: 'finished'; id: string; result: CommandResultBody }
  | { r: 'confirmed'; ids: string[] }
  /** Every seq at or below `seq` counts as run. */
  | { r: 'watermark'; seq: number }
  /** Seqs above the watermark that have run (written by compaction). */
  | { r: 'executed_seqs'; seqs: number[] }
  /**
   * Commands issued before `at_ms` are refused: the journal was created where none was (what ran
   * before is unknown), and `at_ms` is the time of its first session (the later of the device's and
   * the gateway's clock then). Sets the floor (the last record wins) and ends a pending one.
   */
  | { r: 'issued_floor'; at_ms: number }
  /** The journal was created where none was and its floor is not known yet: every command is refused until an issued_floor record. */
  | { r: 'issued_floor_pending' };

interface MutableEntry {
  command: SignedCommand;
  traceparent?: string;
  stage: JournalStage;
  result?: CommandResultBody;
  confirmed: boolean;
}

/**
 * The journal's state as a fold over records: both implementations share it, so they cannot
 * disagree about what a sequence of mutations means. `apply` checks each transition; a record
 * that breaks one is corruption (file) or a bug in the caller (memory).
 */
export class JournalState {
  // Map iteration order is insertion order: the order commands were received.
  readonly #entries = new Map<string, MutableEntry>();
  #highestExecutedSeq = 0;
  /** Every seq at or below it counts as run. */
  #watermark = 0;
  /** Seqs above the watermark that have run. */
  readonly #executedSeqs = new Set<number>();
  #unfinished = 0;
  #finished = 0;
  #issuedFloorMs = 0;
  #issuedFloorPending = false;
  /** Bytes charged to each entry (entryBytesMax); only entries applied with a size are here. */
  readonly #bytesById = new Map<string, number>();
  #entryBytes = 0;
  #unfinishedBytes = 0;

  constructor(readonly limits: JournalLimits) {}

  get(commandId: string): JournalEntry | undefined {
    const entry = this.#entries.get(commandId);
    return entry ? { ...entry } : undefined;
  }

  entries(): JournalEntry[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  highestExecutedSeq(): number {
    return this.#highestExecutedSeq;
  }

  isSeqDone(seq: number): boolean {
    return seq <= this.#watermark || this.#executedSeqs.has(seq);
  }

  issuedFloorMs(): number {
    return this.#issuedFloorMs;
  }

  issuedFloorPending(): boolean {
    return this.#issuedFloorPending;
  }

  /** The issued_floor record settleIssuedFloor would write at `nowMs`; undefined when the floor stands. */
  issuedFloorToSettle(nowMs: number): JournalRecord | undefined {
    const atMs = Math.max(0, Math.floor(nowMs));
    if (this.#issuedFloorPending || this.#issuedFloorMs > atMs) return { r: 'issued_floor', at_ms: atMs };
    return undefined;
  }

  #markExecuted(seq: number): void {
    this.#highestExecutedSeq = Math.max(this.#highestExecutedSeq, seq);
    if (seq > this.#watermark) this.#executedSeqs.add(seq);
    while (this.#executedSeqs.delete(this.#watermark + 1)) this.#watermark += 1;
    if (this.#executedSeqs.size > executedSeqsAboveWatermarkMax) {
      const lowest = Math.min(...this.#executedSeqs);
      this.#raiseWatermark(lowest);
    }
  }

  #raiseWatermark(seq: number): void {
    if (seq <= this.#watermark) return;
    this.#watermark = seq;
    this.#highestExecutedSeq = Math.max(this.#highestExecutedSeq, seq);
    for (const done of this.#executedSeqs) if (done <= seq) this.#executedSeqs.delete(done);
    while (this.#executedSeqs.delete(this.#watermark + 1)) this.#watermark += 1;
  }

  /**
   * Throws before anything is written when `record` is not a legal next step. `bytes`: the
   * record's size on disk, counted against entryBytesMax (0: not counted).
   */
  check(record: JournalRecord, bytes = 0): void {
    switch (record.r) {
      case 'received': {
        if (this.#entries.has(record.command.id)) throw bad(`command ${record.command.id} is already in the journal`);
        if (this.#unfinished >= this.limits.unfinishedMax) {
          throw new SdcError('AGENT_JOURNAL_FULL', `${this.limits.unfinishedMax} commands are not finished yet`);
        }
        const unfinishedBytesMax = this.limits.entryBytesMax === undefined ? Infinity : Math.floor(this.limits.entryBytesMax / 2);
        if (bytes > 0 && this.#unfinishedBytes + bytes + entryOverheadBytes(record.command.id) > unfinishedBytesMax) {
          throw new SdcError('AGENT_JOURNAL_FULL', `unfinished commands would take more than ${unfinishedBytesMax} bytes of the journal`);
        }
        return;
      }
      case 'executing': {
        const entry = this.#entries.get(record.id);
        if (entry?.stage !== 'received') throw bad(`command ${record.id} cannot start from ${entry?.stage ?? 'nothing'}`);
        return;
      }
      case 'finished': {
        const entry = this.#entries.get(record.id);
        if (!entry || entry.stage === 'finished') throw bad(`command ${record.id} cannot finish from ${entry?.stage ?? 'nothing'}`);
        if (record.result.command_id !== record.id) throw bad(`result names ${record.result.command_id}, not ${record.id}`);
        return;
      }
      case 'confirmed':
        // Confirming an entry that compaction already dropped is harmless.
        return;
      case 'watermark':
        if (!Number.isSafeInteger(record.seq) || record.seq < 0) throw bad('watermark is not a sequence number');
        return;
      case 'executed_seqs':
        if (!Array.isArray(record.seqs) || record.seqs.length > executedSeqsAboveWatermarkMax
          || !record.seqs.every((seq) => Number.isSafeInteger(seq) && seq > 0)) throw bad('executed_seqs is not a list of sequence numbers');
        return;
      case 'issued_floor':
        if (!Number.isSafeInteger(record.at_ms) || record.at_ms < 0) throw bad('issued_floor is not a time in ms');
        return;
      case 'issued_floor_pending':
        return;
    }
  }

  /** `bytes`: the record's size on disk, counted against entryBytesMax (0: not counted). */
  apply(record: JournalRecord, bytes = 0): void {
    this.check(record, bytes);
    switch (record.r) {
      case 'received':
        this.#entries.set(record.command.id, {
          command: record.command, stage: 'received', confirmed: false,
          ...(record.traceparent === undefined ? {} : { traceparent: record.traceparent }),
        });
        this.#unfinished += 1;
        if (bytes > 0) this.#charge(record.command.id, bytes + entryOverheadBytes(record.command.id), true);
        return;
      case 'executing': {
        const entry = this.#entries.get(record.id)!;
        entry.stage = 'executing';
        this.#markExecuted(entry.command.device_seq);
        return;
      }
      case 'finished': {
        const entry = this.#entries.get(record.id)!;
        entry.stage = 'finished';
        entry.result = record.result;
        this.#unfinished -= 1;
        this.#finished += 1;
        this.#unfinishedBytes -= this.#bytesById.get(record.id) ?? 0;
        if (bytes > 0) this.#charge(record.id, bytes, false);
        this.#trimFinished();
        return;
      }
      case 'confirmed':
        for (const id of record.ids) {
          const entry = this.#entries.get(id);
          if (entry?.stage === 'finished') entry.confirmed = true;
        }
        this.#trimFinished();
        return;
      case 'watermark':
        this.#raiseWatermark(record.seq);
        return;
      case 'executed_seqs':
        for (const seq of record.seqs) this.#markExecuted(seq);
        return;
      case 'issued_floor':
        // Set, not only raised: settleIssuedFloor lowers a floor that lies in the future (taken on a
        // clock that ran ahead), which would otherwise refuse every command until that time.
        this.#issuedFloorMs = record.at_ms;
        this.#issuedFloorPending = false;
        return;
      case 'issued_floor_pending':
        this.#issuedFloorPending = true;
        return;
    }
  }

  /** The shortest record sequence that rebuilds this state (what compaction writes). */
  snapshot(): JournalRecord[] {
    const records: JournalRecord[] = [{ r: 'watermark', seq: this.#watermark }];
    if (this.#issuedFloorMs > 0) records.push({ r: 'issued_floor', at_ms: this.#issuedFloorMs });
    if (this.#issuedFloorPending) records.push({ r: 'issued_floor_pending' });
    if (this.#executedSeqs.size > 0) records.push({ r: 'executed_seqs', seqs: [...this.#executedSeqs].sort((a, b) => a - b) });
    const confirmedIds: string[] = [];
    for (const entry of this.#entries.values()) {
      records.push({ r: 'received', command: entry.command, ...(entry.traceparent === undefined ? {} : { traceparent: entry.traceparent }) });
      if (entry.stage !== 'received' && entry.result === undefined) records.push({ r: 'executing', id: entry.command.id });
      if (entry.result !== undefined) records.push({ r: 'finished', id: entry.command.id, result: entry.result });
      if (entry.confirmed) confirmedIds.push(entry.command.id);
    }
    if (confirmedIds.length > 0) records.push({ r: 'confirmed', ids: confirmedIds });
    return records;
  }

  #charge(id: string, bytes: number, unfinished: boolean): void {
    this.#bytesById.set(id, (this.#bytesById.get(id) ?? 0) + bytes);
    this.#entryBytes += bytes;
    if (unfinished) this.#unfinishedBytes += bytes;
  }

  #trimFinished(): void {
    const { finishedRetain } = this.limits;
    const bytesMax = this.limits.entryBytesMax ?? Infinity;
    if (this.#finished <= finishedRetain && this.#entryBytes <= bytesMax) return;
    for (const [id, entry] of this.#entries) {
      if (this.#finished <= finishedRetain && this.#entryBytes <= bytesMax) return;
      if (entry.stage === 'finished' && entry.confirmed) this.#drop(id);
    }
    // Unfinished entries take at most half of bytesMax (check), so this always gets under it.
    for (const [id, entry] of this.#entries) {
      if (this.#finished <= 2 * finishedRetain && this.#entryBytes <= bytesMax) return;
      if (entry.stage === 'finished') this.#drop(id);
    }
  }

  #drop(id: string): void {
    this.#entries.delete(id);
    this.#finished -= 1;
    this.#entryBytes -= this.#bytesById.get(id) ?? 0;
    this.#bytesById.delete(id);
  }
}

function bad(message: string): SdcError {
  return new SdcError('AGENT_JOURNAL_CORRUPT', message);
}

/**
 * What both journals share: reads answered from the replayed JournalState, and each mutation
 * turned into one JournalRecord that the journal makes durable and then applies (`write`).
 */
export abstract class RecordJournal implements CommandJournal {
  protected constructor(protected readonly state: JournalState) {}

  get(commandId: string): JournalEntry | undefined {
    return this.state.get(commandId);
  }

  entries(): JournalEntry[] {
    return this.state.entries();
  }

  highestExecutedSeq(): number {
    return this.state.highestExecutedSeq();
  }

  isSeqDone(seq: number): boolean {
    return this.state.isSeqDone(seq);
  }

  issuedFloorMs(): number {
    return this.state.issuedFloorMs();
  }

  issuedFloorPending(): boolean {
    return this.state.issuedFloorPending();
  }

  async settleIssuedFloor(nowMs: number): Promise<boolean> {
    const record = this.state.issuedFloorToSettle(nowMs);
    if (record === undefined) return false;
    await this.write(record);
    return true;
  }

  received(command: SignedCommand, traceparent?: string): Promise<void> {
    // Only a well-formed context is kept: the journal must not carry what a delivery smuggled in.
    const kept = parseTraceparent(traceparent) === undefined ? undefined : traceparent;
    return this.write({ r: 'received', command, ...(kept === undefined ? {} : { traceparent: kept }) });
  }

  executing(commandId: string): Promise<void> {
    return this.write({ r: 'executing', id: commandId });
  }

  finished(commandId: string, result: CommandResultBody): Promise<void> {
    return this.write({ r: 'finished', id: commandId, result });
  }

  confirmed(commandIds: readonly string[]): Promise<void> {
    if (commandIds.length === 0) return Promise.resolve();
    return this.write({ r: 'confirmed', ids: [...commandIds] });
  }

  abstract close(): Promise<void>;

  /** Makes `record` durable, then applies it to `state`; rejects AGENT_STATE_INVALID once closed. */
  protected abstract write(record: JournalRecord): Promise<void>;
}

/** The journal in memory: for the simulator (a "crash" is a new agent core over the same journal). */
export class MemoryCommandJournal extends RecordJournal {
  #closed = false;

  constructor(limits: Partial<JournalLimits> = {}) {
    super(new JournalState({ ...defaultJournalLimits, ...limits }));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Reopening a memory journal after `close` models a restart over the same durable state. */
  reopen(): this {
    this.#closed = false;
    return this;
  }

  /** A copy is applied, so the caller's later changes to a command or result cannot reach the record. */
  protected async write(record: JournalRecord): Promise<void> {
    if (this.#closed) throw new SdcError('AGENT_STATE_INVALID', 'command journal is closed');
    this.state.apply(structuredClone(record));
  }
}
