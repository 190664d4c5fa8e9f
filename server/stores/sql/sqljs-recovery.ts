import { readFile } from 'node:fs/promises';
import initSqlJs, { type Database, type SqlJsStatic } from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import { mapSqliteError } from './sqlite-errors.js';
import { openSqlJs } from './sqljs-in-memory.js';
import type { JournalStatement } from './sqljs-journal-format.js';
import { JournalFile, readJournalFile, scanJournal, type JournalScan, type ScannedRecord } from './sqljs-journal.js';

/**
 * Open-time recovery of the embedded database: the snapshot file, then the journal's records
 * that the snapshot does not hold, replayed in order. The snapshot says which records it holds in
 * a one-row table written just before each export (sqljs_journal_position); a snapshot from
 * before the journal has no such table and holds none.
 */
const positionTable = 'sqljs_journal_position';

let sqlJsModule: Promise<SqlJsStatic> | undefined;
function loadSqlJs(): Promise<SqlJsStatic> {
  sqlJsModule ??= initSqlJs();
  return sqlJsModule;
}

export interface LoadedSqlJsFiles {
  readonly database: Database;
  readonly snapshotSequence: number;
  /** The last record applied (the snapshot's sequence when the journal adds nothing). */
  readonly lastSequence: number;
  readonly snapshotBytes: number;
  readonly journal: JournalFile;
  readonly recoveredRecords: number;
  readonly tornTailBytes: number;
  /** The pages are in SQLite's memory, not in a file of sql.js's file system (sqljs-in-memory.ts). */
  readonly inMemory: boolean;
}

export interface RecoveryLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * Loads the snapshot and replays the journal. Damage (a snapshot SQLite cannot read, a journal
 * record damaged before intact ones, a record that does not apply) is STORE_CORRUPT and nothing
 * is written. Only after a clean replay is a torn tail cut off (logged), or a journal the
 * snapshot already holds entirely removed.
 */
export async function loadSqlJsFiles(path: string, logger: RecoveryLogger): Promise<LoadedSqlJsFiles> {
  const SQL = await loadSqlJs();
  const snapshot = await readSnapshot(path);
  const journalPath = `${path}.journal`;
  const journalBytes = await readJournalFile(journalPath);
  const opened = openSqlJs(SQL, snapshot, (loaded) => checkSnapshot(loaded, path));
  const database = opened.database;
  if (!opened.inMemory) {
    logger.warn({ path }, 'embedded database: this sql.js did not open an in-memory database; its pages stay in a file of sql.js\'s file system (slower writes)');
  }
  try {
    const snapshotSequence = readSnapshotPosition(database);
    const scan = journalBytes === undefined ? undefined : scanJournal(journalBytes, journalPath);
    // The database lives in memory (SQLite's, or sql.js's file system when the in-memory open was
    // not possible) and reaches the disk as journal records and whole exports, so SQLite's own
    // rollback journal file would buy nothing a crash could use: the journal in memory still rolls
    // transactions back, and an autocommit write costs several times less without the journal
    // file's create, writes and delete. (An in-memory database has this mode already.)
    database.run('PRAGMA journal_mode = MEMORY');
    // One connection, and the process already holds the file's lock (file-lock.ts): in the default
    // locking mode SQLite takes and drops its lock around every statement and, on each new read
    // transaction, reads the file's header back from sql.js's file system to see whether another
    // connection changed it. Exclusive mode keeps the lock and the page cache: about a third less
    // CPU per statement on the control plane's mix (issue 17's start-up; docs/benchmarks.md).
    database.run('PRAGMA locking_mode = EXCLUSIVE');
    const toApply = scan === undefined ? [] : recordsToApply(scan, snapshotSequence, journalPath);
    for (const record of toApply) applyRecord(database, record, journalPath);
    const lastSequence = toApply.at(-1)?.sequence ?? snapshotSequence;
    const journal = await settleJournal(journalPath, scan, toApply.length, logger);
    return {
      database, snapshotSequence, lastSequence, snapshotBytes: snapshot?.length ?? 0, journal,
      recoveredRecords: toApply.length, tornTailBytes: scan?.tornTailBytes ?? 0, inMemory: opened.inMemory,
    };
  } catch (error) {
    database.close();
    throw error;
  }
}

async function readSnapshot(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SdcError('STORE_UNAVAILABLE', `cannot read ${path}: ${(error as Error).message}`, {}, { cause: error });
  }
}

function checkSnapshot(database: Database, path: string): void {
  try {
    const check = database.exec('PRAGMA quick_check');
    const verdict = check[0]?.values[0]?.[0];
    if (verdict !== 'ok') throw new Error(`quick_check: ${String(verdict)}`);
  } catch (error) {
    throw new SdcError('STORE_CORRUPT', `${path} is not a readable SQLite database: ${(error as Error).message}`, {}, { cause: error });
  }
}

/** The records after the snapshot's; a journal that starts past the next one has lost records in between. */
function recordsToApply(scan: JournalScan, snapshotSequence: number, journalPath: string): ScannedRecord[] {
  const newer = scan.records.filter((record) => record.sequence > snapshotSequence);
  const first = newer[0];
  if (first !== undefined && first.sequence !== snapshotSequence + 1) {
    throw new SdcError('STORE_CORRUPT', `${journalPath} starts at record ${first.sequence} but the snapshot holds records up to ${snapshotSequence}; the journal and the snapshot are left as they are`);
  }
  return newer;
}

function applyRecord(database: Database, record: ScannedRecord, journalPath: string): void {
  const transaction = record.statements.length > 1;
  try {
    if (transaction) database.run('BEGIN IMMEDIATE');
    for (const statement of record.statements) runToEnd(database, statement);
    if (transaction) database.run('COMMIT');
  } catch (error) {
    if (transaction) database.run('ROLLBACK');
    const cause = mapSqliteError(error);
    throw new SdcError('STORE_CORRUPT', `${journalPath} record ${record.sequence} does not apply to the snapshot (${cause.message}); the journal and the snapshot are left as they are`, {}, { cause });
  }
}

/** Steps through every row, as the live path does (a RETURNING statement makes its changes at the first step anyway). */
function runToEnd(database: Database, statement: JournalStatement): void {
  const prepared = database.prepare(statement.sql);
  try {
    prepared.bind(statement.params as never);
    while (prepared.step()) { /* rows are not needed */ }
  } finally {
    prepared.free();
  }
}

/** After a clean replay: cuts a torn tail, and removes a journal that holds nothing the snapshot lacks. */
async function settleJournal(journalPath: string, scan: JournalScan | undefined, applied: number, logger: RecoveryLogger): Promise<JournalFile> {
  if (scan === undefined) return new JournalFile(journalPath, { bytes: 0, records: 0 });
  const journal = new JournalFile(journalPath, { bytes: scan.validBytes, records: scan.records.length });
  if (scan.tornTailBytes > 0) {
    logger.warn({ journal: journalPath, tornTailBytes: scan.tornTailBytes, keptRecords: scan.records.length },
      'embedded database journal: a write cut short by a crash (never acknowledged) was cut off');
  }
  try {
    if (applied === 0) await journal.remove();
    else if (scan.tornTailBytes > 0) await journal.cut(scan.validBytes);
  } catch (error) {
    throw new SdcError('STORE_UNAVAILABLE', `cannot repair ${journalPath}: ${(error as Error).message}`, {}, { cause: error });
  }
  return journal;
}

/** The sequence of the last record the loaded snapshot holds (0: a snapshot from before the journal, or none). */
function readSnapshotPosition(database: Database): number {
  const table = database.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '${positionTable}'`);
  if (table.length === 0) return 0;
  const value = database.exec(`SELECT journal_sequence FROM ${positionTable} WHERE id = 1`)[0]?.values[0]?.[0];
  return typeof value === 'number' ? value : 0;
}

/** Just before an export: records in the database which journal records it holds. Not journaled itself. */
export function writeSnapshotPosition(database: Database, sequence: number): void {
  database.run(`CREATE TABLE IF NOT EXISTS ${positionTable} (id INTEGER PRIMARY KEY CHECK (id = 1), journal_sequence INTEGER NOT NULL)`);
  database.run(`INSERT INTO ${positionTable} (id, journal_sequence) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET journal_sequence = excluded.journal_sequence`, [sequence]);
}
