import { open, readFile } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import { AsyncMutex } from '../runtime/async-mutex.js';
import { dirname } from 'node:path';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import { parseTraceparent } from '../core/trace/trace-context.js';
import {
  JournalState, RecordJournal, defaultJournalLimits, snapshotFixedBytesMax, type JournalLimits, type JournalRecord,
} from './command-journal.js';

/** One open journal file; node's FileHandle is one. Tests inject failing ones. */
export interface JournalFile {
  appendFile(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  truncate(bytes: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** How the journal reaches the disk; tests inject failures (a full disk, an I/O error). */
export interface JournalFiles {
  openForAppend(path: string): Promise<JournalFile>;
  /** Replaces the file whole (runtime/atomic-file.ts): the old content or the new, never a mix. */
  writeAtomic(path: string, text: string): Promise<void>;
}

const nodeJournalFiles: JournalFiles = {
  openForAppend: (path) => open(path, 'a', privateFileMode),
  writeAtomic: (path, text) => writeFileAtomic(path, text, { mode: privateFileMode }),
};

export interface FileJournalOptions extends Partial<Omit<JournalLimits, 'entryBytesMax'>> {
  path: string;
  /**
   * Records in the file before it is rewritten from the live state. Compaction also waits until
   * the file holds twice the live snapshot, so it always shrinks the file by at least half.
   */
  compactionRecords?: number;
  /**
   * The file's bound, also the most open reads (default 64 MiB). The file is compacted when it
   * passes half of it, and the live entries are held to what fits a quarter of it
   * (JournalLimits.entryBytesMax), so a compacted file is at most a quarter and compaction
   * always halves the file. An append that would pass the bound compacts first, and is refused
   * (AGENT_JOURNAL_WRITE_FAILED) if that fails, so the agent can always read its journal back.
   */
  fileBytesMax?: number;
  /** Calls waiting for the file; a stuck disk must not queue work without bound. */
  waitersMax?: number;
  /** Told when a torn last line was dropped on open. */
  onTornTail?: (bytes: number) => void;
  /** Told when a compaction failed; the journal goes on appending to the old file and tries again later. */
  onCompactionFailed?: (error: SdcError) => void;
  /**
   * When the file does not exist, the new file's issued floor is pending (issued_floor_pending):
   * every command is refused (agent/command-acceptance.ts) until the agent's first session records
   * the floor (settleIssuedFloor, agent-core #onReady). The agent runtime sets it. Absent: a missing
   * file starts empty with no floor.
   */
  issuedFloorWhenCreated?: boolean;
  /** Told when the file did not exist and was created with its floor pending. */
  onCreated?: () => void;
  /** The file system; absent: node's. */
  files?: JournalFiles;
}

const journalBytesMaxDefault = 64 * 1024 * 1024;
/** The least room for entries a fileBytesMax may leave (a few results); below it the option is refused. */
const entryBytesMin = 32 * 1024;

/** Records appended after a failed compaction before it is tried again: a failing disk is not rewritten on every append. */
const compactionRetryRecords = 64;

interface ResolvedOptions extends FileJournalOptions {
  compactionRecords: number;
  fileBytesMax: number;
  files: JournalFiles;
}

/**
 * The command journal as an append-only JSON-lines file. Each mutation appends one record and
 * fsyncs before its promise resolves. On open the records are replayed; an unreadable last line
 * is a write torn by a crash (it was never acknowledged, because acknowledgement follows fsync)
 * and is dropped; an unreadable line before it is corruption (AGENT_JOURNAL_CORRUPT).
 *
 * A failed append (review h16, finding 1) is cut off again before its promise rejects: the file
 * is truncated back to its committed length and fsynced. Left in place, its bytes would join the
 * next record onto one line, which a crash then leaves last and open drops as a torn tail: an
 * acknowledged `executing` would be lost and the command run twice. If the truncation fails too,
 * the journal takes no more records until a restart (AGENT_JOURNAL_UNUSABLE).
 */
export class FileCommandJournal extends RecordJournal {
  readonly #mutex: AsyncMutex;
  readonly #options: ResolvedOptions;
  #handle: JournalFile | undefined;
  #recordsInFile: number;
  /** The file's length after its last fsynced record: what a failed append is cut back to. */
  #committedBytes: number;
  /** Set for good once a failed append could not be undone. */
  #unusable: SdcError | undefined;
  /** After a failed compaction, the record count at which it is tried again. */
  #compactionRetryAtRecords = 0;

  private constructor(options: ResolvedOptions, state: JournalState, handle: JournalFile, records: number, bytes: number) {
    super(state);
    this.#options = options;
    this.#handle = handle;
    this.#recordsInFile = records;
    this.#committedBytes = bytes;
    this.#mutex = new AsyncMutex(options.waitersMax ?? 1024);
  }

  static async open(options: FileJournalOptions): Promise<FileCommandJournal> {
    const fileBytesMax = options.fileBytesMax ?? journalBytesMaxDefault;
    const entryBytesMax = Math.floor(fileBytesMax / 4) - snapshotFixedBytesMax;
    if (entryBytesMax < entryBytesMin) {
      throw new SdcError('AGENT_STATE_INVALID', `a command journal of ${fileBytesMax} bytes leaves no room for entries`);
    }
    const limits: JournalLimits = {
      unfinishedMax: options.unfinishedMax ?? defaultJournalLimits.unfinishedMax,
      finishedRetain: options.finishedRetain ?? defaultJournalLimits.finishedRetain,
      entryBytesMax,
    };
    const compactionRecords = options.compactionRecords ?? 4 * (limits.unfinishedMax + limits.finishedRetain) + 64;
    const files = options.files ?? nodeJournalFiles;
    await ensurePrivateDirectory(dirname(options.path));
    const state = new JournalState(limits);
    let bytes: Buffer | undefined;
    try {
      bytes = await readFile(options.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SdcError('AGENT_STATE_INVALID', `cannot read the command journal ${options.path}`, {}, { cause: error });
      }
    }
    if (bytes !== undefined && bytes.length > fileBytesMax) throw new SdcError('AGENT_JOURNAL_CORRUPT', `${options.path} is larger than ${fileBytesMax} bytes`);
    const { records, tornBytes } = parseJournal(bytes?.toString('utf8') ?? '', options.path);
    for (const [index, record] of records.entries()) {
      try {
        state.apply(record, lineBytes(record));
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
    if (bytes === undefined && options.issuedFloorWhenCreated === true) {
      state.apply({ r: 'issued_floor_pending' });
      options.onCreated?.();
    }
    // Rewrite from the replayed state: drops a torn tail and starts the file compact.
    const snapshot = state.snapshot();
    const text = serialize(snapshot);
    let handle: JournalFile;
    try {
      await files.writeAtomic(options.path, text);
      handle = await files.openForAppend(options.path);
    } catch (error) {
      throw new SdcError('AGENT_JOURNAL_WRITE_FAILED', `cannot write the command journal ${options.path}: ${(error as Error).message}`, {}, { cause: error });
    }
    const resolved: ResolvedOptions = { ...options, compactionRecords, fileBytesMax, files };
    return new FileCommandJournal(resolved, state, handle, snapshot.length, Buffer.byteLength(text));
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
      if (this.#unusable) throw this.#unusable;
      if (!this.#handle) throw new SdcError('AGENT_STATE_INVALID', 'command journal is closed');
      const line = Buffer.from(JSON.stringify(record) + '\n', 'utf8');
      this.state.check(record, line.length);
      if (this.#committedBytes + line.length > this.#options.fileBytesMax) await this.#compact();
      if (this.#unusable) throw this.#unusable;
      if (this.#committedBytes + line.length > this.#options.fileBytesMax) {
        throw new SdcError('AGENT_JOURNAL_WRITE_FAILED', `the command journal is at its bound of ${this.#options.fileBytesMax} bytes and could not be compacted`);
      }
      await this.#append(line);
      // Applied only once durable: memory never runs ahead of the disk.
      this.state.apply(record, line.length);
      this.#recordsInFile += 1;
      // The record is durable whatever compaction does: a failed one is reported, not thrown.
      if (this.#compactionDue()) await this.#compact();
    });
  }

  /** Appends and fsyncs `line`; on failure the file is cut back to its committed length first. */
  async #append(line: Buffer): Promise<void> {
    const handle = this.#handle!;
    try {
      await handle.appendFile(line);
      await handle.sync();
      this.#committedBytes += line.length;
    } catch (error) {
      const refusal = new SdcError('AGENT_JOURNAL_WRITE_FAILED', `command journal write failed: ${(error as Error).message}`, {}, { cause: error });
      try {
        await handle.truncate(this.#committedBytes);
        await handle.sync();
      } catch (undoError) {
        await this.#makeUnusable(`a failed write (${(error as Error).message}) could not be cut off: ${(undoError as Error).message}`, undoError);
        throw this.#unusable!;
      }
      throw refusal;
    }
  }

  async #makeUnusable(message: string, cause: unknown): Promise<void> {
    this.#unusable = new SdcError('AGENT_JOURNAL_UNUSABLE', `command journal ${this.#options.path}: ${message}`, {}, { cause });
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close().catch(() => undefined);
  }

  #compactionDue(): boolean {
    if (this.#recordsInFile < this.#compactionRetryAtRecords) return false;
    // Past half the bound: a snapshot is at most a quarter (entryBytesMax), so this halves the file.
    if (this.#committedBytes >= this.#options.fileBytesMax / 2) return true;
    if (this.#recordsInFile < this.#options.compactionRecords) return false;
    return this.#recordsInFile >= 2 * this.state.snapshot().length;
  }

  /**
   * Rewrites the file from the live state. A failure (no space or inode for the temporary file,
   * an I/O error) leaves the old file in place (runtime/atomic-file.ts renames only a complete,
   * fsynced copy), so the journal reopens it by name and goes on appending; compaction is tried
   * again after compactionRetryRecords more records (review h16, finding 2). Only if the file
   * cannot be reopened does the journal become unusable.
   */
  async #compact(): Promise<void> {
    const snapshot = this.state.snapshot();
    const text = serialize(snapshot);
    let failed: SdcError | undefined;
    try {
      await this.#options.files.writeAtomic(this.#options.path, text);
    } catch (error) {
      failed = new SdcError('AGENT_JOURNAL_WRITE_FAILED', `command journal compaction failed: ${(error as Error).message}`, {}, { cause: error });
    }
    // Reopened by name either way: if only the directory fsync failed, the rename happened and the
    // old handle now points at an unlinked file. Both files hold the same state.
    const old = this.#handle!;
    let handle: JournalFile | undefined;
    try {
      handle = await this.#options.files.openForAppend(this.#options.path);
      this.#committedBytes = failed ? (await handle.stat()).size : Buffer.byteLength(text);
      this.#handle = handle;
      await old.close().catch(() => undefined);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await this.#makeUnusable(`cannot reopen after compaction: ${(error as Error).message}`, error);
      return;
    }
    if (failed) {
      this.#compactionRetryAtRecords = this.#recordsInFile + compactionRetryRecords;
      this.#options.onCompactionFailed?.(failed);
      return;
    }
    this.#recordsInFile = snapshot.length;
    this.#compactionRetryAtRecords = 0;
  }
}

/** A record's size as a snapshot writes it (JournalLimits.entryBytesMax counts these). */
function lineBytes(record: JournalRecord): number {
  return Buffer.byteLength(JSON.stringify(record)) + 1;
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
