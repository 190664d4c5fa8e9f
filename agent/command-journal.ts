import { SdcError } from '../core/errors/index.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';

export type CommandResultBody = MessageBody<'COMMAND_RESULT'>;

/** received: persisted, not started. executing: handed to the kernel. finished: has a result. */
export type JournalStage = 'received' | 'executing' | 'finished';

export interface JournalEntry {
  readonly command: SignedCommand;
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
  /** Throws AGENT_JOURNAL_FULL when `unfinishedMax` commands are not finished yet. */
  received(command: SignedCommand): Promise<void>;
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
}

export const defaultJournalLimits: Readonly<JournalLimits> = Object.freeze({ unfinishedMax: 256, finishedRetain: 1024 });

/** One line of the file journal; the memory journal applies the same records. */
export type JournalRecord =
  | { r: 'received'; command: SignedCommand }
  | { r: 'executing'; id: string }
  | { r: 'finished'; id: string; result: CommandResultBody }
  | { r: 'confirmed'; ids: string[] }
  | { r: 'watermark'; seq: number };

interface MutableEntry {
  command: SignedCommand;
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
  #unfinished = 0;
  #finished = 0;

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

  /** Throws before anything is written when `record` is not a legal next step. */
  check(record: JournalRecord): void {
    switch (record.r) {
      case 'received':
        if (this.#entries.has(record.command.id)) throw bad(`command ${record.command.id} is already in the journal`);
        if (this.#unfinished >= this.limits.unfinishedMax) {
          throw new SdcError('AGENT_JOURNAL_FULL', `${this.limits.unfinishedMax} commands are not finished yet`);
        }
        return;
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
    }
  }

  apply(record: JournalRecord): void {
    this.check(record);
    switch (record.r) {
      case 'received':
        this.#entries.set(record.command.id, { command: record.command, stage: 'received', confirmed: false });
        this.#unfinished += 1;
        return;
      case 'executing': {
        const entry = this.#entries.get(record.id)!;
        entry.stage = 'executing';
        this.#highestExecutedSeq = Math.max(this.#highestExecutedSeq, entry.command.device_seq);
        return;
      }
      case 'finished': {
        const entry = this.#entries.get(record.id)!;
        entry.stage = 'finished';
        entry.result = record.result;
        this.#unfinished -= 1;
        this.#finished += 1;
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
        this.#highestExecutedSeq = Math.max(this.#highestExecutedSeq, record.seq);
        return;
    }
  }

  /** The shortest record sequence that rebuilds this state (what compaction writes). */
  snapshot(): JournalRecord[] {
    const records: JournalRecord[] = [{ r: 'watermark', seq: this.#highestExecutedSeq }];
    const confirmedIds: string[] = [];
    for (const entry of this.#entries.values()) {
      records.push({ r: 'received', command: entry.command });
      if (entry.stage !== 'received' && entry.result === undefined) records.push({ r: 'executing', id: entry.command.id });
      if (entry.result !== undefined) records.push({ r: 'finished', id: entry.command.id, result: entry.result });
      if (entry.confirmed) confirmedIds.push(entry.command.id);
    }
    if (confirmedIds.length > 0) records.push({ r: 'confirmed', ids: confirmedIds });
    return records;
  }

  #trimFinished(): void {
    const { finishedRetain } = this.limits;
    if (this.#finished <= finishedRetain) return;
    for (const [id, entry] of this.#entries) {
      if (this.#finished <= finishedRetain) return;
      if (entry.stage === 'finished' && entry.confirmed) this.#drop(id);
    }
    for (const [id, entry] of this.#entries) {
      if (this.#finished <= 2 * finishedRetain) return;
      if (entry.stage === 'finished') this.#drop(id);
    }
  }

  #drop(id: string): void {
    this.#entries.delete(id);
    this.#finished -= 1;
  }
}

function bad(message: string): SdcError {
  return new SdcError('AGENT_JOURNAL_CORRUPT', message);
}

/** The journal in memory: for the simulator (a "crash" is a new agent core over the same journal). */
export class MemoryCommandJournal implements CommandJournal {
  readonly #state: JournalState;
  #closed = false;

  constructor(limits: Partial<JournalLimits> = {}) {
    this.#state = new JournalState({ ...defaultJournalLimits, ...limits });
  }

  get(commandId: string): JournalEntry | undefined {
    return this.#state.get(commandId);
  }

  entries(): JournalEntry[] {
    return this.#state.entries();
  }

  highestExecutedSeq(): number {
    return this.#state.highestExecutedSeq();
  }

  async received(command: SignedCommand): Promise<void> {
    this.#apply({ r: 'received', command: structuredClone(command) });
  }

  async executing(commandId: string): Promise<void> {
    this.#apply({ r: 'executing', id: commandId });
  }

  async finished(commandId: string, result: CommandResultBody): Promise<void> {
    this.#apply({ r: 'finished', id: commandId, result: structuredClone(result) });
  }

  async confirmed(commandIds: readonly string[]): Promise<void> {
    this.#apply({ r: 'confirmed', ids: [...commandIds] });
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Reopening a memory journal after `close` models a restart over the same durable state. */
  reopen(): this {
    this.#closed = false;
    return this;
  }

  #apply(record: JournalRecord): void {
    if (this.#closed) throw new SdcError('AGENT_STATE_INVALID', 'command journal is closed');
    this.#state.apply(record);
  }
}
