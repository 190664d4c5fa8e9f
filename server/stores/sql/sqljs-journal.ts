import { open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SdcError } from '../../../core/errors/index.js';
import { privateFileMode, syncDirectory } from '../../../runtime/atomic-file.js';
import {
  decodeStatements, journalFormatVersion, journalHeaderBytes, journalMagic, probeRecord, readSequence, writeJournalHeader,
  type JournalStatement,
} from './sqljs-journal-format.js';

/** One record found by scanJournal, decoded. */
export interface ScannedRecord {
  readonly sequence: number;
  /** The first sequence of the append (group commit) that wrote it, and where it starts in the file. */
  readonly appendStart: number;
  readonly offset: number;
  readonly statements: readonly JournalStatement[];
}

/** What a journal file holds: its acknowledged records and the torn tail to cut off. */
export interface JournalScan {
  /** Sequence of the first record this journal was created for (the one after its snapshot). */
  readonly baseSequence: number;
  readonly records: readonly ScannedRecord[];
  /** Length of the header and the good records: the file is cut here. 0: nothing worth keeping. */
  readonly validBytes: number;
  /** Bytes after validBytes: a write that never completed (never acknowledged). */
  readonly tornTailBytes: number;
}

/** How many sequence numbers past a bad record to look for an intact one of a later append (damage spanning more is not told from a torn tail). */
const lookaheadRecords = 64;
/** Damaged stretches to search past before calling the rest a torn tail. */
const resyncsMax = 8;

/** The journal file, or undefined when there is none. Other read errors are STORE_UNAVAILABLE. */
export async function readJournalFile(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SdcError('STORE_UNAVAILABLE', `cannot read ${path}: ${(error as Error).message}`, {}, { cause: error });
  }
}

/**
 * Reads the records in order. A record that is incomplete or fails its checksum ends the journal
 * when no intact record of a later append follows it: that is a group commit cut by a crash,
 * whose writers were never answered (a torn tail; the write's other records may be intact or not,
 * in any order). An intact record of a later append proves the damaged one had been synced: the
 * damage is in the middle, STORE_CORRUPT (the caller leaves the files as they are). Sequence
 * numbers must follow each other.
 */
export function scanJournal(file: Buffer, path: string): JournalScan {
  if (file.length < journalHeaderBytes) {
    // Created but never synced: nothing in it was acknowledged.
    if (isTornHeader(file)) return { baseSequence: 0, records: [], validBytes: 0, tornTailBytes: file.length };
    throw corrupt(path, 'is too short to be a journal');
  }
  if (!file.subarray(0, journalMagic.length).equals(journalMagic)) throw corrupt(path, 'is not an sdc journal (bad magic)');
  const version = file.readUInt32LE(8);
  if (version !== journalFormatVersion) throw corrupt(path, `has format version ${version}, this build reads ${journalFormatVersion}`);
  const baseSequence = readSequence(file, 16);
  const records: ScannedRecord[] = [];
  let offset = journalHeaderBytes;
  let expected = baseSequence;
  while (offset < file.length) {
    const probe = probeRecord(file, offset);
    if (probe.kind !== 'record') {
      if (laterAppendAfter(file, offset, expected)) throw corrupt(path, `has a damaged record at byte ${offset} (sequence ${expected}) before intact records of a later write`);
      return { baseSequence, records, validBytes: offset, tornTailBytes: file.length - offset };
    }
    if (probe.sequence !== expected) throw corrupt(path, `has sequence ${probe.sequence} at byte ${offset} where ${expected} was due`);
    records.push({ sequence: probe.sequence, appendStart: probe.appendStart, offset, statements: decodeStatements(file, offset, probe.end) });
    offset = probe.end;
    expected += 1;
  }
  return { baseSequence, records, validBytes: offset, tornTailBytes: 0 };
}

function corrupt(path: string, what: string): SdcError {
  return new SdcError('STORE_CORRUPT', `${path} ${what}; the journal and the snapshot are left as they are`);
}

/** A header cut short: its fixed bytes (magic, version, reserved) as written, or zeros (a file extended but not written). */
function isTornHeader(file: Buffer): boolean {
  const fixed = Buffer.alloc(16);
  journalMagic.copy(fixed, 0);
  fixed.writeUInt32LE(journalFormatVersion, 8);
  return file.every((byte, i) => byte === 0 || i >= fixed.length || byte === fixed[i]);
}

/**
 * Whether a record written by an append after the damaged record's starts after `offset`: finds an
 * intact record with one of the next sequence numbers, then follows the records from there (a
 * group commit's write can be long) until one of a later append, another damaged one (search
 * again from there, a bounded number of times) or the end.
 */
function laterAppendAfter(file: Buffer, offset: number, expected: number): boolean {
  let from = offset;
  for (let search = 0; search < resyncsMax; search++) {
    let at = firstIntactAfter(file, from, expected);
    if (at === undefined) return false;
    for (let probe = probeRecord(file, at); probe.kind === 'record'; probe = probeRecord(file, at)) {
      if (probe.appendStart > expected) return true;
      at = probe.end;
    }
    if (at >= file.length) return false;
    from = at;
  }
  return false;
}

/** The offset of the first intact record after `offset` whose sequence is one of the next few after `expected`. */
function firstIntactAfter(file: Buffer, offset: number, expected: number): number | undefined {
  let first: number | undefined;
  const pattern = Buffer.alloc(8);
  for (let sequence = expected + 1; sequence <= expected + lookaheadRecords; sequence++) {
    pattern.writeUInt32LE(sequence % 0x1_0000_0000, 0);
    pattern.writeUInt32LE(Math.floor(sequence / 0x1_0000_0000), 4);
    // The sequence sits 8 bytes into its record's header.
    for (let at = file.indexOf(pattern, offset + 8); at !== -1 && (first === undefined || at - 8 < first); at = file.indexOf(pattern, at + 1)) {
      const probe = probeRecord(file, at - 8);
      if (probe.kind === 'record' && probe.sequence === sequence) {
        first = at - 8;
        break;
      }
    }
  }
  return first;
}

/**
 * The journal file beside the snapshot: appended to by group commits, removed once a snapshot
 * holds everything in it. Each append opens the file by path (never creating it, except the first
 * append after a snapshot), so a journal removed or replaced behind our back fails the append
 * instead of acknowledging writes into an unlinked file; the failure is repaired by a snapshot.
 */
export class JournalFile {
  /** Bytes in the file (0: there is none). */
  private lengthBytes: number;
  private recordCount: number;

  constructor(readonly path: string, existing: { readonly bytes: number; readonly records: number }) {
    this.lengthBytes = existing.bytes;
    this.recordCount = existing.records;
  }

  get bytes(): number {
    return this.lengthBytes;
  }

  get records(): number {
    return this.recordCount;
  }

  /** Appends encoded records (consecutive sequences from firstSequence) and syncs them. */
  async append(records: readonly Buffer[], firstSequence: number): Promise<number> {
    let written = 0;
    if (this.lengthBytes === 0) {
      const header = Buffer.alloc(journalHeaderBytes);
      writeJournalHeader(header, firstSequence);
      written = await writeAll(this.path, 'wx', 0, [header, ...records]);
      // The new file's name must survive a crash as well as its bytes.
      await syncDirectory(dirname(this.path));
    } else {
      written = await writeAll(this.path, 'r+', this.lengthBytes, records);
    }
    this.lengthBytes += written;
    this.recordCount += records.length;
    return written;
  }

  /** Cuts the file at `validBytes` (a torn tail found at open), or removes it when nothing is worth keeping. */
  async cut(validBytes: number): Promise<void> {
    if (validBytes <= journalHeaderBytes && this.recordCount === 0) {
      await this.remove();
      return;
    }
    const handle = await open(this.path, 'r+');
    try {
      await handle.truncate(validBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.lengthBytes = validBytes;
  }

  /** Removes the journal (everything in it is in a durable snapshot). */
  async remove(): Promise<void> {
    try {
      await unlink(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await syncDirectory(dirname(this.path));
    this.lengthBytes = 0;
    this.recordCount = 0;
  }
}

async function writeAll(path: string, flags: 'wx' | 'r+', position: number, buffers: readonly Buffer[]): Promise<number> {
  const handle = await open(path, flags, privateFileMode);
  try {
    const expected = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    const { bytesWritten } = await handle.writev(buffers as Buffer[], position);
    if (bytesWritten !== expected) throw new Error(`short write: ${bytesWritten} of ${expected} bytes`);
    await handle.datasync();
    return bytesWritten;
  } finally {
    await handle.close();
  }
}
