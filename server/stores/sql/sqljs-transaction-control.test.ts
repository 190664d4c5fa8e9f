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

const controlTexts = new Set(['BEGIN IMMEDIATE', 'COMMIT', 'ROLLBACK']);

/**
 * Counts the texts sql.js compiles or runs through Database.run while `fn` runs (the adapter gets
 * the same module: initSqlJs keeps one instance per process).
 */
async function watchingSqlJs<T>(fn: () => Promise<T>): Promise<{ result: T; runs: string[]; prepares: string[] }> {
  const SQL = await initSqlJs();
  const prototype = SQL.Database.prototype;
  const run = prototype.run;
  const prepare = prototype.prepare;
  const runs: string[] = [];
  const prepares: string[] = [];
  prototype.run = function (this: typeof prototype, sql: string, ...rest: unknown[]) {
    runs.push(sql);
    return (run as (...args: unknown[]) => ReturnType<typeof run>).call(this, sql, ...rest);
  } as typeof run;
  prototype.prepare = function (this: typeof prototype, sql: string, ...rest: unknown[]) {
    prepares.push(sql);
    return (prepare as (...args: unknown[]) => ReturnType<typeof prepare>).call(this, sql, ...rest);
  } as typeof prepare;
  try {
    return { result: await fn(), runs, prepares };
  } finally {
    prototype.run = run;
    prototype.prepare = prepare;
  }
}

describe('sql.js transactions on statements compiled once (issue 17)', () => {
  it('BEGIN IMMEDIATE, COMMIT and ROLLBACK are compiled once each, not run through Database.run at every transaction', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-control-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir });
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    const { runs, prepares } = await watchingSqlJs(async () => {
      for (let i = 0; i < 5; i += 1) await db.transaction(async (tx) => { await tx.execute('INSERT INTO t (name) VALUES (?)', [`n${i}`]); });
      for (let i = 0; i < 3; i += 1) {
        await assert.rejects(db.transaction(async (tx) => {
          await tx.execute('INSERT INTO t (name) VALUES (?)', ['rolled back']);
          throw new Error('abort');
        }), /abort/);
      }
    });
    assert.deepEqual(runs.filter((sql) => controlTexts.has(sql)), [], 'no transaction control through Database.run');
    assert.deepEqual(prepares.filter((sql) => controlTexts.has(sql)).sort(), ['BEGIN IMMEDIATE', 'COMMIT', 'ROLLBACK'], 'each compiled once for eight transactions');
    assert.deepEqual(await db.query('SELECT name FROM t ORDER BY id'), [0, 1, 2, 3, 4].map((i) => ({ name: `n${i}` })), 'the five committed, the three rolled back');
    await db.close();
  });

  it('a COMMIT that fails rolls back, and the next transactions begin and commit on the same statements', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-control-'));
    roots.push(dataDir);
    const db = await openSqlJsDatabase({ dataDir });
    await db.execute('PRAGMA foreign_keys = ON');
    await db.execute('CREATE TABLE parent (id INTEGER PRIMARY KEY)');
    // Checked at COMMIT: the child row's INSERT succeeds and the COMMIT fails.
    await db.execute('CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)');
    await db.transaction(async (tx) => { await tx.execute('INSERT INTO parent (id) VALUES (1)'); });
    for (let attempt = 0; attempt < 2; attempt += 1) {
      await assert.rejects(db.transaction(async (tx) => {
        await tx.execute('INSERT INTO child (parent_id) VALUES (?)', [1]);
        await tx.execute('INSERT INTO child (parent_id) VALUES (?)', [99]);
      }), (error: unknown) => SdcError.is(error));
      assert.deepEqual(await db.query('SELECT COUNT(*) AS n FROM child'), [{ n: 0 }], 'the failed COMMIT rolled the whole transaction back');
    }
    await db.transaction(async (tx) => { await tx.execute('INSERT INTO child (parent_id) VALUES (?)', [1]); });
    assert.deepEqual(await db.query('SELECT parent_id FROM child'), [{ parent_id: 1 }]);
    // A write outside a transaction still commits on its own (the adapter sends no BEGIN for it).
    await db.execute('INSERT INTO parent (id) VALUES (2)');
    await db.transaction(async (tx) => { await tx.execute('INSERT INTO child (parent_id) VALUES (?)', [2]); });
    assert.deepEqual(await db.query('SELECT COUNT(*) AS n FROM child'), [{ n: 2 }]);
    await db.close();
  });

  it('the statement cache evicts by last use: hits keep a text, a new text past the bound frees the least recently used', async () => {
    const SQL = await initSqlJs();
    const database = new SQL.Database();
    const cache = new SqlJsStatementCache(database, 3);
    const one = cache.get('SELECT 1');
    const two = cache.get('SELECT 2');
    const three = cache.get('SELECT 3');
    // Used again in the order 1, 3, 2, 1: 3 is now the least recently used.
    for (const sql of ['SELECT 1', 'SELECT 3', 'SELECT 2', 'SELECT 1']) cache.get(sql);
    cache.get('SELECT 4');
    assert.equal(cache.size, 3);
    assert.equal(cache.get('SELECT 1'), one);
    assert.equal(cache.get('SELECT 2'), two);
    assert.notEqual(cache.get('SELECT 3'), three, 'SELECT 3 was evicted and compiled again');
    // That compile pushed out SELECT 4 (used once, before 1 and 2 were used again).
    assert.equal(cache.size, 3);
    const again = cache.get('SELECT 3');
    assert.equal(again.step(), true);
    assert.deepEqual(again.get(), [3]);
    again.reset();
    assert.throws(() => three.step(), 'the evicted statement was freed');
    cache.clear();
    database.close();
  });
});
