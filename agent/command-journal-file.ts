import { open, readFile, type FileHandle } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import { AsyncMutex } from '../runtime/async-mutex.js';
import { dirname } from 'node:path';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import { parseTraceparent } from '../core/trace/trace-context.js';
import {
  JournalState, RecordJournal, defaultJournalLimits, type JournalLimits, type JournalRecord,
} from './command-journal.js';

export interface FileJournalOptions extends Partial<JournalLimits> {
  path: string;
  /**
   * Records in the file before it is rewritten from the live state. Compaction also waits until
   * the file holds twice the live snapshot, so it always shrinks the file by at least half.
   */
  compactionRecords?: number;
  /** Calls waiting for the file; a stuck disk must not queue work without bound. */
  waitersMax?: number;
  /** Told when a torn last line was dropped on open. */
  onTornTail?: (bytes: number) => void;
  /**
   * When the file does not exist, the new file's issued floor is pending (issued_floor_pending):
   * every command is refused (agent/command-acceptance.ts) until the agent's first session records
   * the floor (settleIssuedFloor, agent-core #onReady). The agent runtime sets it. Absent: a missing
   * file starts empty with no floor.
   */
  issuedFloorWhenCreated?: boolean;
  /** Told when the file did not exist and was created with its floor pending. */
  onCreated?: () => void;
}

const journalBytesMax = 64 * 1024 * 1024;

/**
 * The command journal as an append-only JSON-lines file. Each mutation appends one record and
 * fsyncs before its promise resolves. On open the records are replayed; an unreadable last line
 * is a write torn by a crash (it was never acknowledged, because acknowledgement follows fsync)
 * and is dropped; an unreadable line before it is corruption (AGENT_JOURNAL_CORRUPT).
 */
export class FileCommandJournal extends RecordJournal {
  readonly #mutex: AsyncMutex;
  readonly #options: FileJournalOptions & { compactionRecords: number };
  #handle: FileHandle | undefined;
  #recordsInFile: number;

  private constructor(options: FileJournalOptions & { compactionRecords: number }, state: JournalState, handle: FileHandle, records: number) {
    super(state);
    this.#options = options;
    this.#handle = handle;
    this.#recordsInFile = records;
    this.#mutex = new AsyncMutex(options.waitersMax ?? 1024);
  }

  static async open(options: FileJournalOptions): Promise<FileCommandJournal> {
    const limits: JournalLimits = {
      unfinishedMax: options.unfinishedMax ?? defaultJournalLimits.unfinishedMax,
      finishedRetain: options.finishedRetain ?? defaultJournalLimits.finishedRetain,
    };
    const compactionRecords = options.compactionRecords ?? 4 * (limits.unfinishedMax + limits.finishedRetain) + 64;
    await ensurePrivateDirectory(dirname(options.path));
    const state = new JournalState(limits);
    let text = '';
    let missing = false;
    try {
      text = await readFile(options.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SdcError('AGENT_STATE_INVALID', `cannot read the command journal ${options.path}`, {}, { cause: error });
      }
      missing = true;
    }
    if (text.length > journalBytesMax) throw new SdcError('AGENT_JOURNAL_CORRUPT', `${options.path} is larger than ${journalBytesMax} bytes`);
    const { records, tornBytes } = parseJournal(text, options.path);
    for (const [index, record] of records.entries()) {
      try {
        state.apply(record);
      } catch (error) {
        throw new SdcError('AGENT_JOURNAL_CORRUPT', `${options.path} line ${index + 1}: ${(error as Error).message}`);
      }
    }
    if (tornBytes > 0) options.onTornTail?.(tornBytes);
    // Security review 2026-12-05, finding 7. A missing file is a new device's first start, or a
    // journal lost while the identity stayed (restored from an older image, deleted): then what
    // ran before, and the device_seq record, are gone, and a hostile gateway could replay
    // captured commands within their TTL (up to 7 days). Refusing to start would strand the device
    // until an operator acts; instead the new file gets a floor, and commands issued before it
    // are refused (typed, AGENT_COMMAND_BEFORE_JOURNAL) while newer ones run. A new device gets
    // the floor too: its device id may have been enrolled before, and nothing was issued to this
    // enrollment earlier.
    // The floor is not the device's clock now (review h8, finding 3): a device whose clock was
    // reset (an RTC at 1970 before NTP) would get a floor that refuses nothing, and one whose clock
    // ran ahead a floor that refuses every command until that time, for good. The file records
    // the floor as pending instead: commands are refused until the first AUTH_ACK, after which the
    // agent records the later of its own clock and the gateway's (agent-core #settleIssuedFloor). A
    // session opens only when the two are within clockOffsetLimits (the agent closes past 600 s,
    // the gateway refuses past 300 s), so both are then near the control plane's clock; and no
    // command arrives before AUTH, so the pending state refuses nothing a gateway could deliver.
    if (missing && options.issuedFloorWhenCreated === true) {
      state.apply({ r: 'issued_floor_pending' });
      options.onCreated?.();
    }
    // Rewrite from the replayed state: drops a torn tail and starts the file compact.
    const snapshot = state.snapshot();
    await writeFileAtomic(options.path, serialize(snapshot), { mode: privateFileMode });
    const handle = await open(options.path, 'a', privateFileMode);
    return new FileCommandJournal({ ...options, compactionRecords }, state, handle, snapshot.length);
  }

  close(): Promise<void> {
    return this.#mutex.run(async () => {
      const handle = this.#handle;
      this.#handle = undefined;
      await handle?.close();
    });
  }

  protected write(record: JournalRecord): Promise<void> {
    return this.#mutex.run(async () => {
      const handle = this.#handle;
      if (!handle) throw new SdcError('AGENT_STATE_INVALID', 'command journal is closed');
      this.state.check(record);
      await handle.appendFile(JSON.stringify(record) + '\n');
      await handle.sync();
      // Applied only once durable: memory never runs ahead of the disk.
      this.state.apply(record);
      this.#recordsInFile += 1;
      await this.#compactIfDue();
    });
  }

  async #compactIfDue(): Promise<void> {
    if (this.#recordsInFile < this.#options.compactionRecords) return;
    const snapshot = this.state.snapshot();
    if (this.#recordsInFile < 2 * snapshot.length) return;
    await this.#handle?.close();
    this.#handle = undefined;
    await writeFileAtomic(this.#options.path, serialize(snapshot), { mode: privateFileMode });
    this.#handle = await open(this.#options.path, 'a', privateFileMode);
    this.#recordsInFile = snapshot.length;
  }
}

function serialize(records: readonly JournalRecord[]): string {
  return records.map((r) => JSON.stringify(r) + '\n').join('');
}

/** Splits the file into records; only the last line may be unreadable (a torn write). */
export function parseJournal(text: string, path: string): { records: JournalRecord[]; tornBytes: number } {
  const lines = text.split('\n');
  // After the final newline, split yields '' (clean end) or the start of a torn line.
  const tail = lines.pop() ?? '';
  const records: JournalRecord[] = [];
  let tornBytes = tail.length;
  for (const [index, line] of lines.entries()) {
    const record = parseRecord(line);
    if (record) {
      records.push(record);
      continue;
    }
    const isLast = index === lines.length - 1 && tail.length === 0;
    if (!isLast) throw new SdcError('AGENT_JOURNAL_CORRUPT', `${path} line ${index + 1} is not a journal record`);
    tornBytes += line.length + 1;
  }
  return { records, tornBytes };
}

function parseRecord(line: string): JournalRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  switch (record.r) {
    case 'received':
      if (!isCommandLike(record.command)) return undefined;
      // A traceparent that does not parse is dropped, not the command: the trace is only a label.
      if (record.traceparent !== undefined && parseTraceparent(record.traceparent) === undefined) return { r: 'received', command: record.command as SignedCommand };
      return record as JournalRecord;
    case 'executing':
      return typeof record.id === 'string' ? (record as JournalRecord) : undefined;
    case 'finished':
      return typeof record.id === 'string' && typeof record.result === 'object' && record.result !== null ? (record as JournalRecord) : undefined;
    case 'confirmed':
      return Array.isArray(record.ids) && record.ids.every((id) => typeof id === 'string') ? (record as JournalRecord) : undefined;
    case 'watermark':
      return typeof record.seq === 'number' ? (record as JournalRecord) : undefined;
    case 'executed_seqs':
      return Array.isArray(record.seqs) ? (record as JournalRecord) : undefined;
    case 'issued_floor':
      return typeof record.at_ms === 'number' ? (record as JournalRecord) : undefined;
    case 'issued_floor_pending':
      return { r: 'issued_floor_pending' };
    default:
      return undefined;
  }
}

// Records are written by this agent after verifying the command; the shape check guards against
// a file damaged on disk, not against an attacker (who could write the file could do anything).
function isCommandLike(value: unknown): value is SignedCommand {
  if (typeof value !== 'object' || value === null) return false;
  const command = value as Record<string, unknown>;
  return typeof command.id === 'string' && typeof command.device_seq === 'number' && typeof command.opcode === 'string';
}
