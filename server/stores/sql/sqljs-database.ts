import { acquireFileLock, type FileLock } from './file-lock.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Database, Statement } from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import type { Scheduler, TimerHandle } from '../../../core/ports/ports.js';
import { AsyncMutex } from '../../../runtime/async-mutex.js';
import { privateFileMode, writeFileAtomic } from '../../../runtime/atomic-file.js';
import { mapSqliteError } from './sqlite-errors.js';
import type { BatchOptions, ExecuteResult, SqlDatabase, SqlStatement, SqlTransaction, SqlValue } from './sql-port.js';
import { runStatementsOneByOne } from './sql-batch.js';
import { normaliseParams } from './sql-values.js';
import { SqlJsStatementCache } from './sqljs-statements.js';
import { encodeRecord, journalRecordBytesMax, recordHeaderBytes, statementBytes, type JournalStatement } from './sqljs-journal-format.js';
import { JournalFile } from './sqljs-journal.js';
import { loadSqlJsFiles, writeSnapshotPosition } from './sqljs-recovery.js';

/**
 * When a commit reaches the disk:
 * - `every-commit` (default): a write's promise resolves only once its record is in the journal
 *   beside the database file and synced (sqljs-journal.ts). Appends are group commits: writes
 *   that commit while an append is running share the next one, so N concurrent writers cost about
 *   two appends, not N. The whole database (a snapshot) is written only when the journal passes
 *   its bound, at close, and to repair a failed append.
 * - `interval`: no journal; a snapshot at most every `intervalMs` after a write (on the given
 *   Scheduler), plus `flush()` and `close()`. A crash loses at most that window; a failed save is
 *   still never silent.
 */
export type SqlJsDurability = { readonly mode: 'every-commit' } | { readonly mode: 'interval'; readonly intervalMs: number };

/** Where recovery at open is reported (a pino logger fits); by default one JSON line on stderr. */
export interface SqlJsLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface SqlJsDatabaseOptions {
  readonly dataDir: string;
  /** File name inside dataDir; the journal is this name plus `.journal`. */
  readonly fileName?: string;
  readonly durability?: SqlJsDurability;
  /** Needed for `interval` durability, so the simulator can drive saves on virtual time. */
  readonly scheduler?: Scheduler;
  /** Callers allowed to wait for the single connection before STORE_LIMIT. */
  readonly waitersMax?: number;
  /** A snapshot is written once the journal holds this many bytes, or the last snapshot's size if that is larger. */
  readonly snapshotAfterJournalBytes?: number;
  /** ... or this many records (bounds the replay at open). */
  readonly snapshotAfterJournalRecords?: number;
  readonly logger?: SqlJsLogger;
  /**
   * Refuse a `db.*` call made inside `transaction(fn)` (it would wait for the connection its own
   * transaction holds, forever) with STORE_INVALID_ARGUMENT; default true. Telling that call
   * apart takes an AsyncLocalStorage, which on Node 20 turns on promise hooks for every promise of
   * the process once a transaction has run: about 5 % of the simulator's start-up CPU (issue 17,
   * docs/benchmarks.md). The simulator, whose control-plane code the tests run with the check on,
   * opens its store without it. The first opener of a file decides for every opener of it.
   */
  readonly refuseNestedCalls?: boolean;
}

/** Counters since open (observability; tests and the benchmark count bytes written). */
export interface SqlJsSaveStats {
  /** Committed writes. */
  readonly commits: number;
  /**
   * Statements callers ran, in transactions and outside, reads and writes (not BEGIN/COMMIT nor
   * this adapter's own total_changes() and last_insert_rowid()): a count of SQL work that does not
   * depend on the machine (issue 17, the simulator's RunTiming.connectSqlStatements).
   */
  readonly statements: number;
  /** Completed file writes of either kind: journal appends plus snapshots. */
  readonly saves: number;
  readonly journalAppends: number;
  readonly journalRecordsWritten: number;
  readonly journalBytesWritten: number;
  /** What the journal file holds now. */
  readonly journalBytes: number;
  readonly journalRecords: number;
  readonly snapshots: number;
  readonly snapshotBytesWritten: number;
  /** Size of the last snapshot written or loaded. */
  readonly snapshotBytes: number;
  /** Records replayed from the journal at open, and the torn tail cut off then. */
  readonly recoveredRecords: number;
  readonly tornTailBytes: number;
}

export interface SqlJsDatabase extends SqlDatabase {
  readonly dialect: 'sqlite';
  readonly path: string;
  /** Makes every commit so far durable now; throws STORE_SAVE_FAILED if the files cannot be written. */
  flush(): Promise<void>;
  saveStats(): SqlJsSaveStats;
}

export const sqlJsDefaultFileName = 'control-plane.sqlite';
const waitersMaxDefault = 10_000;
/** 32 MiB of journal before a snapshot: on a database smaller than that, a snapshot costs less than the journal it retires. */
export const snapshotAfterJournalBytesDefault = 32 * 1024 * 1024;
/** At about 50 µs a statement, replaying 50,000 records at open takes a few seconds. */
export const snapshotAfterJournalRecordsDefault = 50_000;
/** Records committed but not yet appended, beyond which a writer waits for the appends to catch up (backpressure, not refusal). */
const queuedJournalBytesMax = 64 * 1024 * 1024;
const selectOnly = /^\s*SELECT\b/i;
const insertOrReplace = /^\s*(INSERT|REPLACE)\b/i;
/** The table an INSERT or REPLACE writes (a plain or quoted name). */
const insertTable = /^\s*(?:INSERT|REPLACE)(?:\s+OR\s+\w+)?\s+INTO\s+[`"]?(\w+)[`"]?/i;
/** DML whose getRowsModified() is its own: with 0 rows it changed nothing, so it is not journaled. */
const plainDml = /^\s*(INSERT|REPLACE|UPDATE|DELETE)\b/i;
/** Statements that change the schema or settings without counting in total_changes(). */
const schemaChange = /^\s*(CREATE|DROP|ALTER|PRAGMA)\b/i;

/**
 * Opens (or creates) the embedded database in `dataDir`: the snapshot file, then the journal
 * replayed on it. A damaged snapshot or a damaged record before intact ones fails with
 * STORE_CORRUPT and both files are left untouched. Openers in one process share one database
 * (two appenders on one journal would interleave records), each with its own close().
 */
export async function openSqlJsDatabase(options: SqlJsDatabaseOptions): Promise<SqlJsDatabase> {
  const durability = options.durability ?? { mode: 'every-commit' };
  if (durability.mode === 'interval') {
    if (!(Number.isSafeInteger(durability.intervalMs) && durability.intervalMs > 0)) {
      throw new SdcError('STORE_INVALID_ARGUMENT', 'interval durability needs a positive integer intervalMs');
    }
    if (options.scheduler === undefined) throw new SdcError('STORE_INVALID_ARGUMENT', 'interval durability needs a scheduler');
  }
  for (const name of ['snapshotAfterJournalBytes', 'snapshotAfterJournalRecords'] as const) {
    const value = options[name];
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) throw new SdcError('STORE_INVALID_ARGUMENT', `${name} must be a positive integer`);
  }
  await mkdir(options.dataDir, { recursive: true });
  const path = join(options.dataDir, options.fileName ?? sqlJsDefaultFileName);
  // Keyed by the absolute path, so a relative and an absolute name of one file share too.
  const key = resolve(path);
  let shared = openInThisProcess.get(key);
  // An opener arriving while the last handle closes waits, then opens the files afresh.
  while (shared?.closing !== undefined) {
    await shared.closing.catch(() => undefined);
    shared = openInThisProcess.get(key);
  }
  if (shared === undefined) {
    shared = { core: openCore(path, durability, options), handles: 0 };
    openInThisProcess.set(key, shared);
    shared.core.catch(() => openInThisProcess.delete(key));
  }
  const core = await shared.core;
  if (core.durability.mode !== durability.mode) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `${path} is already open in this process with ${core.durability.mode} durability`);
  }
  shared.handles += 1;
  return new SqlJsDatabaseHandle(core, shared, () => openInThisProcess.delete(key));
}

interface SharedDatabase {
  readonly core: Promise<SqlJsDatabaseImpl>;
  handles: number;
  /** Set while the last handle's close runs. */
  closing?: Promise<void>;
}
const openInThisProcess = new Map<string, SharedDatabase>();

async function openCore(path: string, durability: SqlJsDurability, options: SqlJsDatabaseOptions): Promise<SqlJsDatabaseImpl> {
  // The lock is taken before the files are read, so no other process writes over what we load.
  const lock = await acquireFileLock(path);
  try {
    const loaded = await loadSqlJsFiles(path, options.logger ?? stderrLogger);
    return new SqlJsDatabaseImpl(loaded.database, path, durability, options, lock, loaded);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

const stderrLogger: SqlJsLogger = {
  warn(fields, message) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', ...fields, msg: message })}\n`);
  },
};

/** One opener's view: its own close(), the shared database underneath. */
class SqlJsDatabaseHandle implements SqlJsDatabase {
  readonly dialect = 'sqlite' as const;
  private closed = false;

  constructor(private readonly core: SqlJsDatabaseImpl, private readonly shared: SharedDatabase, private readonly forget: () => void) {}

  get path(): string {
    return this.core.path;
  }

  // Each call is passed on as it is (no extra await), so a call costs the event loop what it did before the handle.
  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.closed ? this.refuse() : this.core.query<T>(sql, params);
  }

  execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
    return this.closed ? this.refuse() : this.core.execute(sql, params);
  }

  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    return this.closed ? this.refuse() : this.core.transaction(fn);
  }

  flush(): Promise<void> {
    return this.closed ? this.refuse() : this.core.flush();
  }

  saveStats(): SqlJsSaveStats {
    return this.core.saveStats();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // The last opener closes the database (a failed final snapshot leaves this handle open to retry).
    if (this.shared.handles === 1) {
      const closing = this.core.close();
      this.shared.closing = closing;
      try {
        await closing;
      } finally {
        this.shared.closing = undefined;
      }
      this.forget();
    }
    this.closed = true;
    this.shared.handles -= 1;
  }

  private refuse(): Promise<never> {
    return Promise.reject(new SdcError('STORE_CLOSED', `${this.core.path} is closed`));
  }
}

/** Marks the async context of a running transaction, to refuse `db.*` calls inside it (they would deadlock on the mutex). */
const transactionScope = new AsyncLocalStorage<SqlJsDatabaseImpl>();

/** Commits waiting for one journal append. */
interface AppendGroup {
  readonly records: Buffer[];
  firstSequence: number;
  lastSequence: number;
  bytes: number;
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newAppendGroup(firstSequence: number): AppendGroup {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // A group nobody awaits (all its writers' callers gave up) must not be an unhandled rejection.
  done.catch(() => undefined);
  return { records: [], firstSequence, lastSequence: firstSequence - 1, bytes: 0, done, resolve, reject };
}

/** The statements that begin and end a transaction (SqlJsDatabase.transactionControl). */
type TransactionControl = 'BEGIN IMMEDIATE' | 'COMMIT' | 'ROLLBACK';

/** What a write collects while it runs: the statements to journal and their size so far. */
interface PendingRecord {
  readonly statements: JournalStatement[];
  bytes: number;
}

class SqlJsDatabaseImpl {
  readonly dialect = 'sqlite' as const;
  private readonly mutex: AsyncMutex;
  private readonly statements: SqlJsStatementCache;
  private readonly scheduler: Scheduler | undefined;
  private readonly journaling: boolean;
  private readonly journal: JournalFile;
  private readonly snapshotAfterJournalBytes: number;
  private readonly snapshotAfterJournalRecords: number;
  /** Last sequence number given to a journal record, and the last one the snapshot on disk holds. */
  private sequence: number;
  private snapshotSequence: number;
  /** Interval mode: changes made and the count the snapshot holds (dirty when they differ). */
  private changeCount = 0;
  private savedCount = 0;
  /** The group later commits join until its append starts; the newest group (empty commits wait for it). */
  private openGroup: AppendGroup | undefined;
  private newestGroup: AppendGroup | undefined;
  private queuedBytes = 0;
  private queuedRecords = 0;
  private snapshotQueued = false;
  /** Every file write (appends, snapshots, removal) runs here, one after another, in commit order. */
  private fileWrites: Promise<void> = Promise.resolve();
  private closed = false;
  private saveFailure: SdcError | undefined;
  private saveTimer: TimerHandle | undefined;
  private stats: { -readonly [K in keyof SqlJsSaveStats]: SqlJsSaveStats[K] };
  /**
   * Per table: whether it has an INTEGER PRIMARY KEY (the rowid, SQLite's auto-increment id), so
   * that only INSERTs into those ask `last_insert_rowid()` (issue 17: it followed every INSERT, 8 of
   * the 38 statements per device at the simulator's start-up; an id of the hidden rowid of other
   * tables is nothing MySQL's insert id would give either). Emptied at every schema change; one
   * entry per table, so bounded by the schema.
   */
  private readonly autoIdTables = new Map<string, boolean>();
  /** SqlJsDatabaseOptions.refuseNestedCalls. */
  private readonly refuseNestedCalls: boolean;
  /** Each cached statement's result column names (rowObject); replaced at every schema change and rollback. */
  private columnNames = new WeakMap<Statement, string[]>();
  /**
   * BEGIN IMMEDIATE, COMMIT and ROLLBACK, each compiled once (transactionControl). Database.run
   * without parameters is sqlite3_exec, which compiles the text again at every call: at the
   * simulator's start-up the BEGIN cost as much CPU as the COMMIT (about 1.1 % of the 10,000-agent
   * window each, three transactions per device; issue 17). Apart from the statement cache, so
   * they are neither evicted nor counted as the callers' statements.
   */
  private readonly controlStatements = new Map<TransactionControl, Statement>();

  constructor(
    private readonly database: Database,
    readonly path: string,
    readonly durability: SqlJsDurability,
    options: SqlJsDatabaseOptions,
    private readonly lock: FileLock,
    loaded: { readonly snapshotSequence: number; readonly lastSequence: number; readonly snapshotBytes: number; readonly journal: JournalFile; readonly recoveredRecords: number; readonly tornTailBytes: number },
  ) {
    this.mutex = new AsyncMutex(options.waitersMax ?? waitersMaxDefault);
    this.refuseNestedCalls = options.refuseNestedCalls ?? true;
    this.statements = new SqlJsStatementCache(database);
    this.scheduler = options.scheduler;
    this.journaling = durability.mode === 'every-commit';
    this.journal = loaded.journal;
    this.snapshotAfterJournalBytes = options.snapshotAfterJournalBytes ?? snapshotAfterJournalBytesDefault;
    this.snapshotAfterJournalRecords = options.snapshotAfterJournalRecords ?? snapshotAfterJournalRecordsDefault;
    this.sequence = loaded.lastSequence;
    this.snapshotSequence = loaded.snapshotSequence;
    this.stats = {
      commits: 0, statements: 0, saves: 0, journalAppends: 0, journalRecordsWritten: 0, journalBytesWritten: 0, journalBytes: this.journal.bytes,
      journalRecords: this.journal.records, snapshots: 0, snapshotBytesWritten: 0, snapshotBytes: loaded.snapshotBytes,
      recoveredRecords: loaded.recoveredRecords, tornTailBytes: loaded.tornTailBytes,
    };
  }

  async query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    let durable: Promise<void> | undefined;
    const rows = await this.exclusive(async () => {
      // A plain SELECT changes nothing; anything else may (INSERT ... RETURNING), so it is counted.
      if (selectOnly.test(sql)) return this.runQuery<T>(sql, params);
      if (this.saveFailure !== undefined || this.queuedBytes > queuedJournalBytesMax) await this.beforeWrite();
      const record = this.newRecord();
      const found = this.runJournaledQuery<T>(record, sql, params);
      if (found.changed) durable = this.afterCommit(record);
      return found.rows;
    });
    await durable;
    return rows;
  }

  async execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
    let durable: Promise<void> | undefined;
    const result = await this.exclusive(async () => {
      await this.beforeWrite();
      const record = this.newRecord();
      const executed = this.runJournaledExecute(record, sql, params);
      durable = this.afterCommit(record);
      return executed;
    });
    await durable;
    return result;
  }

  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    let durable: Promise<void> | undefined;
    const result = await this.exclusive(async () => {
      await this.beforeWrite();
      let open = true;
      /** A batch committed the transaction (BatchOptions.commit): no COMMIT and no ROLLBACK after `fn`. */
      let committed = false;
      const record = this.newRecord();
      const commit = (): void => {
        open = false;
        try {
          this.transactionControl('COMMIT');
        } catch (error) {
          this.transactionControl('ROLLBACK');
          this.forgetSchema();
          throw mapSqliteError(error);
        }
        committed = true;
        durable = this.afterCommit(record);
      };
      const tx: SqlTransaction = {
        dialect: 'sqlite',
        query: async <R>(sql: string, params?: readonly SqlValue[]) => {
          this.assertTransactionOpen(open);
          return selectOnly.test(sql) ? this.runQuery<R>(sql, params) : this.runJournaledQuery<R>(record, sql, params).rows;
        },
        execute: async (sql: string, params?: readonly SqlValue[]) => {
          this.assertTransactionOpen(open);
          return this.runJournaledExecute(record, sql, params);
        },
        // In-process, a batch is its statements one after another (no round trips to save); it is
        // checked as MySQL's is, stops at the first that fails, and commits after the last when
        // asked, as MySQL's does.
        executeBatch: async (statements: readonly SqlStatement[], options?: BatchOptions) => {
          this.assertTransactionOpen(open);
          const results = await runStatementsOneByOne(tx, statements);
          if (options?.commit === true) commit();
          return results;
        },
      };
      this.transactionControl('BEGIN IMMEDIATE');
      let result: T;
      try {
        result = await (this.refuseNestedCalls ? transactionScope.run(this, () => fn(tx)) : fn(tx));
      } catch (error) {
        open = false;
        if (committed) throw error;
        // Its statements were never journaled: a rolled-back transaction leaves no record.
        this.transactionControl('ROLLBACK');
        this.forgetSchema();
        throw error;
      }
      if (!committed) commit();
      return result;
    });
    await durable;
    return result;
  }

  flush(): Promise<void> {
    return this.exclusive(async () => {
      await this.fileWrites;
      if (this.saveFailure !== undefined || (!this.journaling && this.changeCount !== this.savedCount)) await this.snapshotHeld();
    });
  }

  saveStats(): SqlJsSaveStats {
    return { ...this.stats, journalBytes: this.journal.bytes, journalRecords: this.journal.records };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      await this.fileWrites;
      // Everything goes into the snapshot and the journal is removed: a closed database is one file, as before the journal.
      const unsaved = this.sequence !== this.snapshotSequence || this.journal.bytes > 0 || this.changeCount !== this.savedCount;
      if (unsaved || this.saveFailure !== undefined) await this.snapshotHeld();
    });
    this.closed = true;
    if (this.saveTimer !== undefined) this.scheduler?.cancel(this.saveTimer);
    this.saveTimer = undefined;
    this.statements.clear();
    for (const statement of this.controlStatements.values()) statement.free();
    this.controlStatements.clear();
    this.database.close();
    await this.lock.release();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (transactionScope.getStore() === this) {
      return Promise.reject(new SdcError('STORE_INVALID_ARGUMENT', 'inside transaction(fn) use the tx executor, not the database'));
    }
    return this.mutex.run(async () => {
      if (this.closed) throw new SdcError('STORE_CLOSED', `${this.path} is closed`);
      return fn();
    });
  }

  private assertTransactionOpen(open: boolean): void {
    if (!open) throw new SdcError('STORE_INVALID_ARGUMENT', 'transaction executor used after its transaction ended');
  }

  /**
   * Runs BEGIN IMMEDIATE, COMMIT or ROLLBACK on its statement compiled once; throws what
   * Database.run threw (sqlite3_exec runs the same steps: compile, step, finalize). Reset after
   * the step, failed or not, so it holds nothing open.
   */
  private transactionControl(sql: TransactionControl): void {
    let statement = this.controlStatements.get(sql);
    if (statement === undefined) {
      statement = this.database.prepare(sql);
      this.controlStatements.set(sql, statement);
    }
    try {
      statement.step();
    } finally {
      statement.reset();
    }
  }

  /** The cached statement for `sql`, with sql.js's compile error mapped. */
  private statement(sql: string): Statement {
    try {
      return this.statements.get(sql);
    } catch (error) {
      throw mapSqliteError(error);
    }
  }

  private runQuery<T>(sql: string, params: readonly SqlValue[] | undefined): T[] {
    this.stats.statements += 1;
    const statement = this.statement(sql);
    try {
      statement.bind(normaliseParams(params) as never);
      const rows: T[] = [];
      while (statement.step()) rows.push(this.rowObject(statement) as T);
      return rows;
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      statement.reset();
    }
  }

  /**
   * The current row as `{ column: value }`, what sql.js's getAsObject returns, with the column
   * names read once per statement instead of once per row (getAsObject asks SQLite for every
   * name, each a string call into WebAssembly, then builds the object through entries: about 1 %
   * of a 10,000-agent simulator start-up, issue 17). The names are forgotten at every schema
   * change or rollback (a `SELECT *` may name other columns after them), and a row whose column
   * count differs from the names kept reads them again.
   */
  private rowObject(statement: Statement): Record<string, unknown> {
    const values = statement.get();
    let names = this.columnNames.get(statement);
    if (names === undefined || names.length !== values.length) {
      names = statement.getColumnNames();
      // A column named __proto__ would set the prototype by assignment; getAsObject defines it.
      if (names.includes('__proto__')) return statement.getAsObject();
      this.columnNames.set(statement, names);
    }
    const row: Record<string, unknown> = {};
    for (let index = 0; index < names.length; index++) row[names[index]!] = values[index];
    return row;
  }

  /** A statement through query() that may write: journaled when it changed rows or the schema. */
  private runJournaledQuery<T>(record: PendingRecord | undefined, sql: string, params: readonly SqlValue[] | undefined): { rows: T[]; changed: boolean } {
    const values = normaliseParams(params);
    const bytes = this.checkRecordRoom(record, sql, values);
    if (schemaChange.test(sql)) this.forgetSchema();
    const before = this.totalChanges();
    const rows = this.runQuery<T>(sql, params);
    const changed = this.totalChanges() !== before || schemaChange.test(sql);
    if (changed) this.keep(record, sql, values, bytes);
    return { rows, changed };
  }

  private runJournaledExecute(record: PendingRecord | undefined, sql: string, params: readonly SqlValue[] | undefined): ExecuteResult {
    const values = normaliseParams(params);
    const bytes = this.checkRecordRoom(record, sql, values);
    if (schemaChange.test(sql)) this.forgetSchema();
    const result = this.runExecute(sql, values);
    // Only after it succeeded: a failed statement is undone by SQLite and must not be replayed.
    if (result.changes > 0 || !plainDml.test(sql)) this.keep(record, sql, values, bytes);
    return result;
  }

  /** Runs one statement (the first of `sql`, as sql.js's run with parameters does). */
  private runExecute(sql: string, values: ReturnType<typeof normaliseParams>): ExecuteResult {
    this.stats.statements += 1;
    const statement = this.statement(sql);
    try {
      statement.bind(values as never);
      statement.step();
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      statement.reset();
    }
    const changes = this.database.getRowsModified();
    if (changes > 0 && insertOrReplace.test(sql) && this.hasAutoId(sql)) {
      const rowId = this.scalar('SELECT last_insert_rowid()');
      if (typeof rowId === 'number') return { changes, lastInsertId: rowId };
    }
    return { changes };
  }

  /** What is kept about the schema (tables' auto ids, statements' column names): read again after a schema change or rollback. */
  private forgetSchema(): void {
    this.autoIdTables.clear();
    this.columnNames = new WeakMap();
  }

  /** Whether the table `sql` inserts into has an INTEGER PRIMARY KEY; true when that cannot be told (the answer as before). */
  private hasAutoId(sql: string): boolean {
    const table = insertTable.exec(sql)?.[1];
    if (table === undefined) return true;
    const known = this.autoIdTables.get(table);
    if (known !== undefined) return known;
    const [info] = this.database.exec(`PRAGMA table_info("${table}")`);
    if (info === undefined) return true;
    const [typeAt, pkAt] = [info.columns.indexOf('type'), info.columns.indexOf('pk')];
    const keys = info.values.filter((column) => Number(column[pkAt]) > 0);
    const autoId = keys.length === 1 && String(keys[0]![typeAt]).toUpperCase() === 'INTEGER';
    this.autoIdTables.set(table, autoId);
    return autoId;
  }

  /** The first column of the first row of a parameterless statement, from the cache. */
  private scalar(sql: string): unknown {
    const statement = this.statement(sql);
    try {
      return statement.step() ? statement.get()[0] : undefined;
    } finally {
      statement.reset();
    }
  }

  private totalChanges(): number {
    return Number(this.scalar('SELECT total_changes()') ?? 0);
  }

  /** A record to collect a write's statements in (interval mode keeps no journal: undefined). */
  private newRecord(): PendingRecord | undefined {
    return this.journaling ? { statements: [], bytes: 4 } : undefined;
  }

  /** Refuses, before it runs, a statement that would make its commit's record larger than a record may be. */
  private checkRecordRoom(record: PendingRecord | undefined, sql: string, values: JournalStatement['params']): number {
    if (record === undefined) return 0;
    const bytes = statementBytes({ sql, params: values });
    if (recordHeaderBytes + record.bytes + bytes > journalRecordBytesMax) {
      throw new SdcError('STORE_LIMIT', `a commit's journal record would exceed ${journalRecordBytesMax} bytes`, { limit: journalRecordBytesMax });
    }
    return bytes;
  }

  private keep(record: PendingRecord | undefined, sql: string, params: JournalStatement['params'], bytes: number): void {
    if (record === undefined) return;
    record.statements.push({ sql, params });
    record.bytes += bytes;
  }

  /**
   * Under the mutex, before a write runs: after a failed save, writes are refused until the files
   * can be written again (a snapshot repairs whatever the failed append left); and when appends
   * have fallen far behind, the writer waits for them (the mutex holds the others back).
   */
  private async beforeWrite(): Promise<void> {
    if (this.saveFailure !== undefined) await this.snapshotHeld();
    while (this.queuedBytes > queuedJournalBytesMax) await this.fileWrites;
  }

  /**
   * Called under the mutex right after a commit. Returns what the caller awaits after releasing
   * the mutex: in every-commit mode the append covering this commit (so other writers can commit
   * meanwhile and join the same group), in interval mode nothing. A commit that changed nothing
   * appends nothing but still waits for the commits before it (what it read is then durable).
   */
  private afterCommit(record: PendingRecord | undefined): Promise<void> | undefined {
    this.stats.commits += 1;
    if (record === undefined) {
      this.changeCount += 1;
      this.scheduleSave();
      return undefined;
    }
    if (record.statements.length === 0) {
      const newest = this.newestGroup;
      return newest !== undefined && newest.lastSequence > this.snapshotSequence ? newest.done : undefined;
    }
    this.sequence += 1;
    const group = this.openGroup ?? this.startGroup();
    const encoded = encodeRecord({ sequence: this.sequence, positionInAppend: group.records.length, statements: record.statements });
    group.records.push(encoded);
    group.lastSequence = this.sequence;
    group.bytes += encoded.length;
    this.queuedBytes += encoded.length;
    this.queuedRecords += 1;
    if (this.snapshotDue()) this.queueSnapshot();
    return group.done;
  }

  private startGroup(): AppendGroup {
    const group = newAppendGroup(this.sequence);
    this.openGroup = group;
    this.newestGroup = group;
    this.enqueueFileWrite(() => this.appendGroup(group)).catch(() => undefined);
    return group;
  }

  /** In the file queue: seals the group (later commits start the next one) and appends it. */
  private async appendGroup(group: AppendGroup): Promise<void> {
    if (this.openGroup === group) this.openGroup = undefined;
    this.queuedBytes -= group.bytes;
    this.queuedRecords -= group.records.length;
    // An append after a failed one could leave a gap: the records wait for the repairing snapshot.
    if (this.saveFailure !== undefined) {
      group.reject(this.saveFailure);
      return;
    }
    // Records a snapshot already holds (committed just before it) need no append.
    const skip = Math.max(0, Math.min(group.records.length, this.snapshotSequence - group.firstSequence + 1));
    const records = group.records.slice(skip);
    try {
      if (records.length > 0) {
        const written = await this.journal.append(records, group.firstSequence + skip);
        this.stats.journalAppends += 1;
        this.stats.saves += 1;
        this.stats.journalRecordsWritten += records.length;
        this.stats.journalBytesWritten += written;
      }
      group.resolve();
    } catch (error) {
      this.saveFailure = new SdcError('STORE_SAVE_FAILED', `cannot append to ${this.journal.path}: ${(error as Error).message}`, {}, { cause: error });
      group.reject(this.saveFailure);
    }
  }

  private snapshotDue(): boolean {
    if (this.snapshotQueued) return false;
    const bytesBound = Math.max(this.snapshotAfterJournalBytes, this.stats.snapshotBytes);
    return this.journal.bytes + this.queuedBytes >= bytesBound || this.journal.records + this.queuedRecords >= this.snapshotAfterJournalRecords;
  }

  /** Under the mutex: exports now and queues the snapshot's write behind the appends before it. */
  private queueSnapshot(): Promise<void> {
    writeSnapshotPosition(this.database, this.sequence);
    const bytes = this.database.export();
    const covers = { sequence: this.sequence, changeCount: this.changeCount };
    // Later commits go to a group appended after the snapshot.
    this.openGroup = undefined;
    this.snapshotQueued = true;
    const write = this.enqueueFileWrite(() => this.writeSnapshot(bytes, covers));
    write.catch(() => undefined);
    return write;
  }

  /** Saves everything committed so far as a snapshot and waits for it. Only under the mutex, never inside a transaction. */
  private async snapshotHeld(): Promise<void> {
    await this.queueSnapshot();
  }

  /**
   * In the file queue: the snapshot replaces the database file atomically; only then is the
   * journal removed (everything in it has a sequence the snapshot holds). A crash between the two
   * leaves a journal whose records open() skips, so none is applied twice.
   */
  private async writeSnapshot(bytes: Uint8Array, covers: { sequence: number; changeCount: number }): Promise<void> {
    try {
      await writeFileAtomic(this.path, bytes, { mode: privateFileMode });
      this.snapshotSequence = Math.max(this.snapshotSequence, covers.sequence);
      this.savedCount = Math.max(this.savedCount, covers.changeCount);
      this.stats.snapshots += 1;
      this.stats.saves += 1;
      this.stats.snapshotBytesWritten += bytes.length;
      this.stats.snapshotBytes = bytes.length;
      await this.journal.remove();
      this.saveFailure = undefined;
    } catch (error) {
      this.saveFailure = new SdcError('STORE_SAVE_FAILED', `cannot write ${this.path}: ${(error as Error).message}`, {}, { cause: error });
      throw this.saveFailure;
    } finally {
      this.snapshotQueued = false;
    }
  }

  private enqueueFileWrite(write: () => Promise<void>): Promise<void> {
    const run = this.fileWrites.then(write);
    this.fileWrites = run.catch(() => undefined);
    return run;
  }

  private scheduleSave(): void {
    if (this.saveTimer !== undefined || this.durability.mode !== 'interval' || this.scheduler === undefined) return;
    this.saveTimer = this.scheduler.schedule(this.durability.intervalMs, () => {
      this.saveTimer = undefined;
      // A failure is kept in saveFailure and refuses later writes; the retry keeps trying.
      this.flush().catch(() => {
        if (!this.closed) this.scheduleSave();
      });
    });
  }
}
