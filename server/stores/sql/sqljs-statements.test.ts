import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import initSqlJs from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import { openSqlJsDatabase } from './sqljs-database.js';
import { SqlJsStatementCache } from './sqljs-statements.js';

const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('sql.js prepared statement cache', () => {
  it('keeps at most statementsMax statements, least recently used out first, and an evicted text compiles again', async () => {
    const SQL = await initSqlJs();
    const database = new SQL.Database();
    const cache = new SqlJsStatementCache(database, 2);
    const one = cache.get('SELECT 1');
    cache.get('SELECT 2');
    assert.equal(cache.get('SELECT 1'), one, 'a cached text gives back its statement');
    cache.get('SELECT 3');
    assert.equal(cache.size, 2);
    assert.equal(cache.get('SELECT 1'), one, 'SELECT 2 was the least recently used, so SELECT 1 stayed');
    const two = cache.get('SELECT 2');
    assert.equal(two.step(), true);
    assert.deepEqual(two.get(), [2]);
    two.reset();
    cache.clear();
    assert.equal(cache.size, 0);
    database.close();
  });

  it('a database on cached statements: rebinding, bad SQL refused with a store code, rollback, RETURNING counted as a change', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-cache-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir });
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    for (const name of ['a', 'b', 'c']) assert.equal((await db.execute('INSERT INTO t (name) VALUES (?)', [name])).changes, 1);
    assert.equal((await db.execute('INSERT INTO t (name) VALUES (?)', ['d'])).lastInsertId, 4);
    // Whether a table has an auto-increment id is kept per table, and learnt again after a schema change.
    await db.execute('CREATE TABLE u (name TEXT NOT NULL PRIMARY KEY)');
    assert.equal((await db.execute('INSERT INTO u (name) VALUES (?)', ['a'])).lastInsertId, undefined);
    await db.execute('DROP TABLE u');
    await db.execute('CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    assert.equal((await db.execute('INSERT INTO u (name) VALUES (?)', ['a'])).lastInsertId, 1);
    assert.deepEqual(await db.query('SELECT name FROM t WHERE id = ?', [2]), [{ name: 'b' }]);
    assert.deepEqual(await db.query('SELECT name FROM t WHERE id = ?', [3]), [{ name: 'c' }], 'the same text with other parameters');
    await assert.rejects(db.execute('INSERT INTO nowhere VALUES (?)', [1]), (error: unknown) => SdcError.is(error));
    await assert.rejects(db.execute('INSERT INTO t (name) VALUES (?)', [null]), (error: unknown) => SdcError.is(error), 'NOT NULL');
    await assert.rejects(db.transaction(async (tx) => {
      await tx.execute('INSERT INTO t (name) VALUES (?)', ['rolled back']);
      throw new Error('abort');
    }), /abort/);
    assert.deepEqual(await db.query('SELECT COUNT(*) AS n FROM t'), [{ n: 4 }], 'the journal in memory still rolls back');
    const before = db.saveStats().commits;
    assert.deepEqual(await db.query('INSERT INTO t (name) VALUES (?) RETURNING id', ['e']), [{ id: 5 }]);
    assert.equal(db.saveStats().commits, before + 1, 'a write through query is a commit (and saved)');
    await db.query('SELECT name FROM t');
    assert.equal(db.saveStats().commits, before + 1, 'a SELECT is not');
    await db.close();
    const reopened = await openSqlJsDatabase({ dataDir });
    assert.deepEqual(await reopened.query('SELECT COUNT(*) AS n FROM t'), [{ n: 5 }], 'every commit reached the file');
    await reopened.close();
  });

  it("saveStats().statements counts each statement a caller runs, in transactions and outside, and none of the adapter's own", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-count-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir });
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    const before = db.saveStats().statements;
    // An INSERT into a rowid table also asks last_insert_rowid(), a write through query total_changes(): not counted.
    await db.execute('INSERT INTO t (name) VALUES (?)', ['a']);
    await db.query('INSERT INTO t (name) VALUES (?) RETURNING id', ['b']);
    await db.query('SELECT name FROM t');
    assert.equal(db.saveStats().statements, before + 3, 'three outside transactions');
    await db.transaction(async (tx) => {
      await tx.query('SELECT COUNT(*) AS n FROM t');
      await tx.execute('UPDATE t SET name = ? WHERE id = ?', ['c', 1]);
      await tx.executeBatch([{ sql: 'INSERT INTO t (name) VALUES (?)', params: ['d'] }, { sql: 'DELETE FROM t WHERE id = ?', params: [2] }]);
    });
    assert.equal(db.saveStats().statements, before + 7, 'four more in the transaction (BEGIN and COMMIT are not counted)');
    await assert.rejects(db.query('SELECT nothing FROM nowhere'));
    assert.equal(db.saveStats().statements, before + 8, 'a refused statement was still sent');
    await db.close();
  });

  it('rows name their columns as getAsObject did, and a cached statement reads its names again after a schema change or a rolled-back one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-columns-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir });
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    await db.execute("INSERT INTO t (name) VALUES ('a'), ('b')");
    assert.deepEqual(await db.query('SELECT * FROM t ORDER BY id'), [{ id: 1, name: 'a' }, { id: 2, name: 'b' }]);
    // The same cached text, with a column more: its names are read again, not the two kept.
    await db.execute('ALTER TABLE t ADD COLUMN extra TEXT');
    assert.deepEqual(await db.query('SELECT * FROM t ORDER BY id'), [{ id: 1, name: 'a', extra: null }, { id: 2, name: 'b', extra: null }]);
    // As many columns under other names inside a transaction, then rolled back: the old names again.
    await assert.rejects(db.transaction(async (tx) => {
      await tx.execute('ALTER TABLE t RENAME COLUMN extra TO other');
      assert.deepEqual(await tx.query('SELECT * FROM t WHERE id = ?', [1]), [{ id: 1, name: 'a', other: null }]);
      throw new Error('roll back');
    }), /roll back/);
    assert.deepEqual(await db.query('SELECT * FROM t WHERE id = ?', [1]), [{ id: 1, name: 'a', extra: null }]);
    // Duplicate names keep the last value, as getAsObject's entries did; a column named __proto__ stays a column.
    assert.deepEqual(await db.query("SELECT 1 AS x, 2 AS x"), [{ x: 2 }]);
    const [odd] = await db.query<Record<string, unknown>>('SELECT 7 AS "__proto__", 8 AS y');
    assert.equal(Object.getPrototypeOf(odd), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(odd, '__proto__')?.value, 7);
    assert.equal(odd!.y, 8);
    await db.close();
  });
});
