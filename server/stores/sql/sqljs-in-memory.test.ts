import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import initSqlJs, { type Database, type SqlJsStatic } from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import { openSqlJsDatabase } from './sqljs-database.js';
import { openSqlJs } from './sqljs-in-memory.js';

const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The main database's file as SQLite names it: '' when it is in memory. */
function mainFile(database: Database): string {
  const rows = database.exec('PRAGMA database_list')[0]!;
  const main = rows.values.find((row) => row[rows.columns.indexOf('name')] === 'main')!;
  return String(main[rows.columns.indexOf('file')]);
}

const noCheck = (): void => undefined;

describe('sql.js database in SQLite memory (sqljs-in-memory.ts)', () => {
  it('opens an empty database in memory that stores, exports and closes like a file one, and leaves sql.js as it was', async () => {
    const SQL = await initSqlJs();
    const one = openSqlJs(SQL, undefined, noCheck);
    const two = openSqlJs(SQL, undefined, noCheck);
    assert.equal(one.inMemory, true);
    assert.equal(mainFile(one.database), '', 'no file behind the main database');
    one.database.run('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    one.database.run('INSERT INTO t (name) VALUES (?), (?)', ['a', 'b']);
    two.database.run('CREATE TABLE u (x INTEGER)');
    assert.deepEqual(one.database.exec('SELECT name FROM sqlite_master')[0]!.values, [['t']], 'two open at once are two databases');
    const copy = new SQL.Database(one.database.export());
    assert.deepEqual(copy.exec('SELECT id, name FROM t ORDER BY id')[0]!.values, [[1, 'a'], [2, 'b']]);
    assert.deepEqual(one.database.exec('SELECT count(*) FROM t')[0]!.values, [[2]], 'export() leaves the database open and whole');
    copy.close();
    one.database.close();
    two.database.close();
    // The accessor was for one construction only: a plain database is a MEMFS file again.
    assert.equal(Object.getOwnPropertyDescriptor(SQL.Database.prototype, 'filename'), undefined);
    const plain = new SQL.Database();
    assert.notEqual(mainFile(plain), '');
    plain.close();
  });

  it('copies a snapshot in, with its page size, and refuses one SQLite cannot read through the check', async () => {
    const SQL = await initSqlJs();
    const file = new SQL.Database();
    file.run('PRAGMA page_size = 8192');
    file.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    for (let i = 0; i < 500; i += 1) file.run('INSERT INTO t (v) VALUES (?)', [`value-${i}-${'x'.repeat(100)}`]);
    const snapshot = file.export();
    file.close();
    const checked: string[] = [];
    const opened = openSqlJs(SQL, snapshot, (db) => { checked.push(mainFile(db)); });
    assert.equal(opened.inMemory, true);
    assert.equal(checked.length, 1);
    assert.notEqual(checked[0], '', 'the check reads the snapshot through its own file');
    assert.equal(mainFile(opened.database), '');
    assert.deepEqual(opened.database.exec('PRAGMA page_size')[0]!.values, [[8192]]);
    assert.deepEqual(opened.database.exec('SELECT count(*), max(id) FROM t')[0]!.values, [[500, 500]]);
    opened.database.close();

    const damaged = new Uint8Array(8192).fill(7);
    assert.throws(() => openSqlJs(SQL, damaged, (db) => {
      try {
        db.exec('PRAGMA quick_check');
      } catch (error) {
        throw new SdcError('STORE_CORRUPT', (error as Error).message);
      }
    }), (error) => SdcError.is(error, 'STORE_CORRUPT'));
  });

  it('a sql.js whose constructor reads the name otherwise gets the file database, and says so', async () => {
    const SQL = await initSqlJs();
    // A constructor that reads its name once more than sql.js 1.16 does: the in-memory open cannot be trusted.
    class OtherDatabase extends SQL.Database {
      constructor(data?: ArrayLike<number> | Buffer | null) {
        super(data);
        void (this as unknown as { filename: string }).filename;
      }
    }
    const other = { ...SQL, Database: OtherDatabase } as unknown as SqlJsStatic;
    const opened = openSqlJs(other, undefined, noCheck);
    assert.equal(opened.inMemory, false);
    assert.notEqual(mainFile(opened.database), '');
    opened.database.run('CREATE TABLE t (x INTEGER)');
    opened.database.close();
  });

  it('the embedded store opens its database in memory, and a reopen from its snapshot and journal is in memory too', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-memory-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir, snapshotAfterJournalRecords: 3 });
    const mainOf = async (store: typeof db): Promise<string | undefined> => (await store.query<{ name: string; file: string }>('PRAGMA database_list')).find((r) => r.name === 'main')?.file;
    assert.equal(await mainOf(db), '');
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    for (let i = 0; i < 7; i += 1) await db.execute('INSERT INTO t (v) VALUES (?)', [`v${i}`]);
    await db.close();
    const again = await openSqlJsDatabase({ dataDir });
    assert.equal(await mainOf(again), '');
    assert.deepEqual((await again.query<{ n: number }>('SELECT count(*) AS n FROM t'))[0], { n: 7 });
    await again.close();
  });
});
