import { acquireFileLock, type FileLock } from './file-lock.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import initSqlJs, { type Database, type SqlJsStatic } from 'sql.js';
import { SdcError } from '../../errors/index.js';
import type { Scheduler, TimerHandle } from '../../protocol/ports.js';
import { AsyncMutex } from './async-mutex.js';
import { privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { mapSqliteError } from './sqlite-errors.js';
import type { ExecuteResult, SqlDatabase, SqlExecutor, SqlValue } from './sql-port.js';
import { normaliseParams } from './sql-values.js';

/**
 * When the in-memory database is written to its file:
 * - `every-commit` (default): after every committed write, before the call returns.
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
}

export const sqlJsDefaultFileName = 'control-plane.sqlite';
const waitersMaxDefault = 10_000;

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
  return new SqlJsDatabaseImpl(database, path, durability, options.scheduler, options.waitersMax ?? waitersMaxDefault, lock);
}

/** Marks the async context of a running transaction, to refuse `db.*` calls inside it (they would deadlock on the mutex). */
const transactionScope = new AsyncLocalStorage<SqlJsDatabaseImpl>();

class SqlJsDatabaseImpl implements SqlJsDatabase {
  readonly dialect = 'sqlite' as const;
  private readonly mutex: AsyncMutex;
  private dirty = false;
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
  }

  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.exclusive(async () => {
      const before = this.totalChanges();
      const rows = this.runQuery<T>(sql, params);
      if (this.totalChanges() !== before) await this.afterCommit(); // e.g. INSERT ... RETURNING
      return rows;
    });
  }

  execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
    return this.exclusive(async () => {
      await this.retryFailedSave();
      const result = this.runExecute(sql, params);
      await this.afterCommit();
      return result;
    });
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
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
      await this.afterCommit();
      return result;
    });
  }

  flush(): Promise<void> {
    return this.exclusive(() => this.save());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(() => this.save());
    this.closed = true;
    if (this.saveTimer !== undefined) this.scheduler?.cancel(this.saveTimer);
    this.saveTimer = undefined;
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

  private runQuery<T>(sql: string, params: readonly SqlValue[] | undefined): T[] {
    let statement;
    try {
      statement = this.database.prepare(sql);
    } catch (error) {
      throw mapSqliteError(error);
    }
    try {
      statement.bind(normaliseParams(params) as never);
      const rows: T[] = [];
      while (statement.step()) rows.push(statement.getAsObject() as T);
      return rows;
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      statement.free();
    }
  }

  private runExecute(sql: string, params: readonly SqlValue[] | undefined): ExecuteResult {
    try {
      this.database.run(sql, normaliseParams(params) as never);
    } catch (error) {
      throw mapSqliteError(error);
    }
    const changes = this.database.getRowsModified();
    this.dirty = true;
    if (changes > 0 && /^\s*(INSERT|REPLACE)\b/i.test(sql)) {
      const rowId = this.database.exec('SELECT last_insert_rowid()')[0]?.values[0]?.[0];
      if (typeof rowId === 'number') return { changes, lastInsertId: rowId };
    }
    return { changes };
  }

  private totalChanges(): number {
    return Number(this.database.exec('SELECT total_changes()')[0]?.values[0]?.[0] ?? 0);
  }

  private async afterCommit(): Promise<void> {
    this.dirty = true;
    if (this.durability.mode === 'every-commit') {
      await this.save();
      return;
    }
    this.scheduleSave();
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
    if (this.saveFailure !== undefined) await this.save();
  }

  /** Writes the whole database if anything changed. Only called under the mutex, never inside a transaction. */
  private async save(): Promise<void> {
    if (!this.dirty) return;
    const bytes = this.database.export();
    try {
      await writeFileAtomic(this.path, bytes, { mode: privateFileMode });
    } catch (error) {
      this.saveFailure = new SdcError('STORE_SAVE_FAILED', `cannot write ${this.path}: ${(error as Error).message}`, {}, { cause: error });
      throw this.saveFailure;
    }
    this.dirty = false;
    this.saveFailure = undefined;
  }
}
