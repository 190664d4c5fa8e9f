import type { Database, SqlJsStatic } from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';

/**
 * The embedded database's pages in SQLite's own memory instead of a file in sql.js's in-memory
 * file system (issue 17).
 *
 * `new SQL.Database()` always opens a file in Emscripten's MEMFS, so every commit copies each
 * page it changed out of the WebAssembly heap into that file's JavaScript array, and the array
 * grows by an eighth at a time past 1 MiB, each time allocating a new one and copying the whole
 * file into it. Measured (sqljs-in-memory.measure.ts, decision 0011): 1.5-1.8 times the CPU per
 * telemetry row with the file in a warm process, 2.7 times in a cold one. The file buys nothing
 * here: the adapter's durability is its own journal and snapshots on disk (sqljs-database.ts),
 * and sql.js's `export()` copies the pages out through SQLite's backup API, which reads an
 * in-memory database as well.
 *
 * sql.js (1.16) has no option for it: its constructor names a fresh MEMFS file and opens it. So
 * the name is given for the one construction through an accessor on the prototype: the file it
 * creates is an empty placeholder (which `close()` unlinks later), and SQLite opens `:memory:`.
 * That leans on the constructor's order (the name read once to create the file, once to open),
 * so the result is checked (`PRAGMA database_list`: an in-memory main database has no file) and
 * a sql.js that does it differently gets the file as before (`inMemory: false`; the caller logs).
 *
 * The price: the whole database lives in the WebAssembly heap, which sql.js caps at 2 GiB (its
 * module's maximum memory), where the file could grow past it. A write past the cap fails as any
 * SQLite "out of memory" does (STORE_QUERY_FAILED), nothing half written.
 */
export interface InMemoryOpen {
  readonly database: Database;
  /** False: sql.js did not open `:memory:` as expected, and `database` is a MEMFS file as before. */
  readonly inMemory: boolean;
}

/** The C API sql.js exports beside its Database class (not in its typings), for the snapshot's copy in. */
interface SqliteBackupApi {
  _sqlite3_backup_init(destination: number, destinationName: number, source: number, sourceName: number): number;
  _sqlite3_backup_step(backup: number, pages: number): number;
  _sqlite3_backup_finish(backup: number): number;
  _sqlite3_errmsg(db: number): number;
  UTF8ToString(pointer: number): string;
  stringToNewUTF8(text: string): number;
  _free(pointer: number): void;
}

/** sql.js keeps the connection's `sqlite3*` in `db` (not in its typings). */
interface WithHandle {
  readonly db: number;
}

const sqliteOk = 0;
const sqliteDone = 101;
let placeholders = 0;

/**
 * A database holding `snapshot` (a whole SQLite file, or none for an empty one), in memory when
 * sql.js allows it. The snapshot is read through a MEMFS file of its own, copied in with the
 * backup API, and that file is closed again: a snapshot SQLite cannot read fails as the file path
 * did, when `check` (given the snapshot's own connection) throws or the copy fails.
 */
export function openSqlJs(SQL: SqlJsStatic, snapshot: Uint8Array | undefined, check: (database: Database) => void): InMemoryOpen {
  const memory = openEmptyInMemory(SQL);
  if (memory === undefined) {
    const database = new SQL.Database(snapshot);
    try {
      check(database);
    } catch (error) {
      database.close();
      throw error;
    }
    return { database, inMemory: false };
  }
  if (snapshot === undefined) {
    try {
      check(memory);
    } catch (error) {
      memory.close();
      throw error;
    }
    return { database: memory, inMemory: true };
  }
  const source = new SQL.Database(snapshot);
  try {
    check(source);
    // An in-memory destination cannot change its page size once the copy starts: take the snapshot's first.
    const pageSize = source.exec('PRAGMA page_size')[0]?.values[0]?.[0];
    if (typeof pageSize === 'number') memory.run(`PRAGMA page_size = ${pageSize}`);
    copyWhole(SQL as unknown as SqliteBackupApi, source, memory);
  } catch (error) {
    memory.close();
    throw error;
  } finally {
    source.close();
  }
  return { database: memory, inMemory: true };
}

/** An empty `:memory:` database through sql.js's own class, or undefined when sql.js did not open one. */
function openEmptyInMemory(SQL: SqlJsStatic): Database | undefined {
  placeholders += 1;
  const placeholder = `sdc_in_memory_${placeholders}`;
  const prototype = SQL.Database.prototype as object;
  let reads = 0;
  Object.defineProperty(prototype, 'filename', {
    configurable: true,
    // The constructor's first read names the MEMFS file it creates for the (empty) data; the second is what SQLite opens.
    get() {
      reads += 1;
      return reads === 1 ? placeholder : ':memory:';
    },
    set() { /* the constructor's generated name: replaced by the placeholder */ },
  });
  let database: Database;
  try {
    database = new SQL.Database(new Uint8Array(0));
  } finally {
    delete (prototype as { filename?: unknown }).filename;
  }
  // close() unlinks the placeholder and export() names its scratch file after it.
  Object.defineProperty(database, 'filename', { value: placeholder, writable: true, configurable: true, enumerable: true });
  if (reads === 2 && mainFileOf(database) === '') return database;
  database.close();
  return undefined;
}

/** The main database's file name as SQLite sees it: '' for an in-memory one. */
function mainFileOf(database: Database): string | undefined {
  const rows = database.exec('PRAGMA database_list')[0];
  if (rows === undefined) return undefined;
  const name = rows.columns.indexOf('name');
  const file = rows.columns.indexOf('file');
  const main = rows.values.find((row) => row[name] === 'main');
  return main === undefined ? undefined : String(main[file]);
}

/** Copies every page of `source` into `destination` in one backup step (both idle, one thread). */
function copyWhole(api: SqliteBackupApi, source: Database, destination: Database): void {
  const main = api.stringToNewUTF8('main');
  const destinationDb = (destination as unknown as WithHandle).db;
  try {
    const backup = api._sqlite3_backup_init(destinationDb, main, (source as unknown as WithHandle).db, main);
    if (backup === 0) throw new SdcError('STORE_CORRUPT', `the snapshot cannot be copied into memory: ${api.UTF8ToString(api._sqlite3_errmsg(destinationDb))}`);
    const stepped = api._sqlite3_backup_step(backup, -1);
    const finished = api._sqlite3_backup_finish(backup);
    if (stepped !== sqliteDone || finished !== sqliteOk) {
      throw new SdcError('STORE_CORRUPT', `the snapshot cannot be copied into memory (SQLite ${stepped}/${finished}): ${api.UTF8ToString(api._sqlite3_errmsg(destinationDb))}`);
    }
  } finally {
    api._free(main);
  }
}
