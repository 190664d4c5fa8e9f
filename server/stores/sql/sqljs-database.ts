import { acquireFileLock, type FileLock } from './file-lock.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import initSqlJs, { type Database, type SqlJsStatic, type Statement } from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import type { Scheduler, TimerHandle } from '../../../core/ports/ports.js';
import { AsyncMutex } from '../../../runtime/async-mutex.js';
import { privateFileMode, writeFileAtomic } from '../../../runtime/atomic-file.js';
import { mapSqliteError } from './sqlite-errors.js';
import type { ExecuteResult, SqlDatabase, SqlExecutor, SqlValue } from './sql-port.js';
import { normaliseParams } from './sql-values.js';
import { SqlJsStatementCache } from './sqljs-statements.js';

/**
 * When the in-memory database is written to its file:
 * - `every-commit` (default): a write's promise resolves only once a save that includes it has
 *   reached the disk (export + fsync + rename). Saves are group commits: writes that commit while
 *   a save is running share the next one, so N concurrent writers cost about two saves, not N.
 * - `interval`: at most every `intervalMs` after a write (on the given Scheduler), plus `flush()`
 *   and `close()`. A crash loses at most that window; a failed save is still never silent.
 */
export type SqlJsDurability = { readonly mode: 'every-commit' } | { readonly mode: 'interval'; readonly intervalMs: number };

export interface SqlJsDatabaseOptions {
  readonly dataDir: string;
  /** File name inside dataDir. */
  readonly fileName?: string;
  readonly durability?: SqlJsDurability;
  /** Needed for `interval` durability, so the simulator can drive saves on virtual time. */
  readonly scheduler?: Scheduler;
  /** Callers allowed to wait for the single connection before STORE_LIMIT. */
  readonly waitersMax?: number;
}

export interface SqlJsDatabase extends SqlDatabase {
  readonly dialect: 'sqlite';
  readonly path: string;
  /** Writes unsaved changes now; throws STORE_SAVE_FAILED if the file cannot be written. */
  flush(): Promise<void>;
  /** Committed writes and completed file saves since open (observability; tests count saves). */
  saveStats(): { readonly commits: number; readonly saves: number };
}

/** Writes waiting for the save that will cover them. */
interface SaveBatch {
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newSaveBatch(): SaveBatch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // A batch nobody awaits (all its writers' callers gave up) must not be an unhandled rejection.
  done.catch(() => undefined);
  return { done, resolve, reject };
}

export const sqlJsDefaultFileName = 'control-plane.sqlite';
const waitersMaxDefault = 10_000;
const selectOnly = /^\s*SELECT\b/i;
const insertOrReplace = /^\s*(INSERT|REPLACE)\b/i;

let sqlJsModule: Promise<SqlJsStatic> | undefined;
function loadSqlJs(): Promise<SqlJsStatic> {
  sqlJsModule ??= initSqlJs();
  return sqlJsModule;
}

/** Opens (or creates) the embedded database file in `dataDir`. A damaged file fails with STORE_CORRUPT and is left untouched. */
export async function openSqlJsDatabase(options: SqlJsDatabaseOptions): Promise<SqlJsDatabase> {
  const durability = options.durability ?? { mode: 'every-commit' };
  if (durability.mode === 'interval') {
    if (!(Number.isSafeInteger(durability.intervalMs) && durability.intervalMs > 0)) {
      throw new SdcError('STORE_INVALID_ARGUMENT', 'interval durability needs a positive integer intervalMs');
    }
    if (options.scheduler === undefined) throw new SdcError('STORE_INVALID_ARGUMENT', 'interval durability needs a scheduler');
  }
  const SQL = await loadSqlJs();
  await mkdir(options.dataDir, { recursive: true });
  const path = join(options.dataDir, options.fileName ?? sqlJsDefaultFileName);
  let bytes: Uint8Array | undefined;
  // The lock is taken before the file is read, so no other process saves over what we load.
  const lock = await acquireFileLock(path);
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      await lock.release();
      throw new SdcError('STORE_UNAVAILABLE', `cannot read ${path}: ${(error as Error).message}`, {}, { cause: error });
    }
  }
  const database = new SQL.Database(bytes);
  try {
    const check = database.exec('PRAGMA quick_check');
    const verdict = check[0]?.values[0]?.[0];
    if (verdict !== 'ok') throw new Error(`quick_check: ${String(verdict)}`);
  } catch (error) {
    database.close();
    await lock.release();
    throw new SdcError('STORE_CORRUPT', `${path} is not a readable SQLite database: ${(error as Error).message}`, {}, { cause: error });
  }
  // The database lives in sql.js's in-memory file system and reaches the disk only as a whole
  // export (written atomically), so a rollback journal file buys nothing a crash could use: the
  // journal in memory still rolls transactions back, and an autocommit write costs several times
  // less without the journal file's create, writes and delete (docs/benchmarks.md).
  database.run('PRAGMA journal_mode = MEMORY');
  return new SqlJsDatabaseImpl(database, path, durability, options.scheduler, options.waitersMax ?? waitersMaxDefault, lock);
}

/** Marks the async context of a running transaction, to refuse `db.*` calls inside it (they would deadlock on the mutex). */
const transactionScope = new AsyncLocalStorage<SqlJsDatabaseImpl>();

class SqlJsDatabaseImpl implements SqlJsDatabase {
  readonly dialect = 'sqlite' as const;
  private readonly mutex: AsyncMutex;
  private readonly statements: SqlJsStatementCache;
  /** Changes made (counted per statement or commit) and the count the file holds: dirty when they differ. */
  private changeCount = 0;
  private savedCount = 0;
  private savesCompleted = 0;
  private commitsCompleted = 0;
  /** Writes committed since the last export, waiting for the next save (every-commit). */
  private batch: SaveBatch | undefined;
  private saveLoopRunning = false;
  /** File writes run one after another in export order, so an older image never lands last. */
  private fileWrites: Promise<void> = Promise.resolve();
  private closed = false;
  private saveFailure: SdcError | undefined;
  private saveTimer: TimerHandle | undefined;

  constructor(
    private readonly database: Database,
    readonly path: string,
    private readonly durability: SqlJsDurability,
    private readonly scheduler: Scheduler | undefined,
    waitersMax: number,
    private readonly lock: FileLock,
  ) {
    this.mutex = new AsyncMutex(waitersMax);
    this.statements = new SqlJsStatementCache(database);
  }

  async query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    let durable: Promise<void> | undefined;
    const rows = await this.exclusive(async () => {
      // A plain SELECT changes nothing; anything else may (INSERT ... RETURNING), so it is counted.
      if (selectOnly.test(sql)) return this.runQuery<T>(sql, params);
      const before = this.totalChanges();
      const found = this.runQuery<T>(sql, params);
      if (this.totalChanges() !== before) durable = this.afterCommit();
      return found;
    });
    await durable;
    return rows;
  }

  async execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
    let durable: Promise<void> | undefined;
    const result = await this.exclusive(async () => {
      await this.retryFailedSave();
      const executed = this.runExecute(sql, params);
      durable = this.afterCommit();
      return executed;
    });
    await durable;
    return result;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    let durable: Promise<void> | undefined;
    const result = await this.exclusive(async () => {
      await this.retryFailedSave();
      let open = true;
      const tx: SqlExecutor = {
        dialect: 'sqlite',
        query: async <R>(sql: string, params?: readonly SqlValue[]) => {
          this.assertTransactionOpen(open);
          return this.runQuery<R>(sql, params);
        },
        execute: async (sql: string, params?: readonly SqlValue[]) => {
          this.assertTransactionOpen(open);
          return this.runExecute(sql, params);
        },
      };
      this.database.run('BEGIN IMMEDIATE');
      let result: T;
      try {
        result = await transactionScope.run(this, () => fn(tx));
      } catch (error) {
        open = false;
        this.database.run('ROLLBACK');
        throw error;
      }
      open = false;
      try {
        this.database.run('COMMIT');
      } catch (error) {
        this.database.run('ROLLBACK');
        throw mapSqliteError(error);
      }
      durable = this.afterCommit();
      return result;
    });
    await durable;
    return result;
  }

  flush(): Promise<void> {
    return this.exclusive(() => this.saveHeld());
  }

  saveStats(): { commits: number; saves: number } {
    return { commits: this.commitsCompleted, saves: this.savesCompleted };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(() => this.saveHeld());
    this.closed = true;
    if (this.saveTimer !== undefined) this.scheduler?.cancel(this.saveTimer);
    this.saveTimer = undefined;
    this.statements.clear();
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

  /** The cached statement for `sql`, with sql.js's compile error mapped. */
  private statement(sql: string): Statement {
    try {
      return this.statements.get(sql);
    } catch (error) {
      throw mapSqliteError(error);
    }
  }

  private runQuery<T>(sql: string, params: readonly SqlValue[] | undefined): T[] {
    const statement = this.statement(sql);
    try {
      statement.bind(normaliseParams(params) as never);
      const rows: T[] = [];
      while (statement.step()) rows.push(statement.getAsObject() as T);
      return rows;
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      statement.reset();
    }
  }

  /** Runs one statement (the first of `sql`, as sql.js's run with parameters does). */
  private runExecute(sql: string, params: readonly SqlValue[] | undefined): ExecuteResult {
    const statement = this.statement(sql);
    try {
      statement.bind(normaliseParams(params) as never);
      statement.step();
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      statement.reset();
    }
    const changes = this.database.getRowsModified();
    this.changeCount += 1;
    if (changes > 0 && insertOrReplace.test(sql)) {
      const rowId = this.scalar('SELECT last_insert_rowid()');
      if (typeof rowId === 'number') return { changes, lastInsertId: rowId };
    }
    return { changes };
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

  /**
   * Called under the mutex right after a commit. Returns what the caller awaits after releasing
   * the mutex: in every-commit mode the save covering this commit (so other writers can commit
   * meanwhile and join the same save), in interval mode nothing.
   */
  private afterCommit(): Promise<void> | undefined {
    this.changeCount += 1;
    this.commitsCompleted += 1;
    if (this.durability.mode !== 'every-commit') {
      this.scheduleSave();
      return undefined;
    }
    const batch = (this.batch ??= newSaveBatch());
    if (!this.saveLoopRunning) {
      this.saveLoopRunning = true;
      void this.saveLoop();
    }
    return batch.done;
  }

  /**
   * The one background saver: takes the waiting batch and a snapshot of the database under the
   * mutex (export must not run inside an open transaction), then writes the file outside it, so
   * writers keep committing into the next batch meanwhile. Runs until no batch is waiting.
   */
  private async saveLoop(): Promise<void> {
    // The check and the flag reset happen in one synchronous step, so a batch is never stranded.
    while (this.batch !== undefined) {
      let taken: SaveBatch | undefined;
      let write: Promise<void> | undefined;
      try {
        await this.mutex.run(async () => {
          taken = this.batch;
          this.batch = undefined;
          // flush() or close() may have saved (and settled) it while we waited for the mutex.
          if (taken === undefined || this.closed) return;
          write = this.enqueueWrite();
        }, { reserved: true });
        await write;
        taken?.resolve();
      } catch (error) {
        taken?.reject(error);
      }
    }
    this.saveLoopRunning = false;
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

  /** After a failed save, writes are refused until the file can be written again (never pile up undurable commits). */
  private async retryFailedSave(): Promise<void> {
    if (this.saveFailure !== undefined) await this.saveHeld();
  }

  /**
   * Saves everything committed so far and settles the waiting batch. Only called under the
   * mutex, never inside a transaction. Waits for a background write in flight first, so its
   * outcome (and a failure) is known before deciding whether anything is still unsaved.
   */
  private async saveHeld(): Promise<void> {
    await this.fileWrites;
    const batch = this.batch;
    this.batch = undefined;
    if (this.changeCount === this.savedCount && this.saveFailure === undefined) {
      batch?.resolve();
      return;
    }
    try {
      await this.enqueueWrite();
      batch?.resolve();
    } catch (error) {
      batch?.reject(error);
      throw error;
    }
  }

  /**
   * Exports the database now (caller holds the mutex) and queues the file write behind any
   * earlier one. Resolves when this image is on disk; rejects with STORE_SAVE_FAILED.
   */
  private enqueueWrite(): Promise<void> {
    const bytes = this.database.export();
    const covers = this.changeCount;
    const write = this.fileWrites.then(async () => {
      try {
        await writeFileAtomic(this.path, bytes, { mode: privateFileMode });
      } catch (error) {
        this.saveFailure = new SdcError('STORE_SAVE_FAILED', `cannot write ${this.path}: ${(error as Error).message}`, {}, { cause: error });
        throw this.saveFailure;
      }
      this.savedCount = Math.max(this.savedCount, covers);
      this.savesCompleted += 1;
      this.saveFailure = undefined;
    });
    this.fileWrites = write.catch(() => undefined);
    return write;
  }
}
