import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import initSqlJs from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import type { Scheduler, TimerHandle } from '../../../core/ports/ports.js';
import { runSqlContract } from './sql-contract.js';
import { openSqlJsDatabase } from './sqljs-database.js';

const roots: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-'));
  roots.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

let dataDir = '';
runSqlContract('sql.js (embedded file)', {
  create: () => openSqlJsDatabase({ dataDir }),
  reset: async () => { dataDir = await freshDir(); },
});

/** Timers that fire only when the test says so. */
function manualScheduler(): Scheduler & { fireAll(): void; pending(): number } {
  const timers = new Map<number, () => void>();
  let nextId = 1;
  return {
    schedule(_delayMs, callback): TimerHandle {
      const id = nextId++;
      timers.set(id, callback);
      return { id };
    },
    cancel(handle) { timers.delete(handle.id); },
    fireAll() {
      const due = [...timers.values()];
      timers.clear();
      for (const callback of due) callback();
    },
    pending: () => timers.size,
  };
}

describe('sql.js adapter specifics', () => {
  it('every-commit durability: a second opener sees a write before the first closes', async () => {
    const dir = await freshDir();
    const writer = await openSqlJsDatabase({ dataDir: dir });
    await writer.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await writer.execute('INSERT INTO t (id) VALUES (?)', ['a']);
    const reader = await openSqlJsDatabase({ dataDir: dir });
    assert.deepEqual(await reader.query('SELECT id FROM t'), [{ id: 'a' }]);
    await reader.close();
    await writer.close();
    assert.deepEqual((await readdir(dir)).sort(), ['control-plane.sqlite'], 'no temporary file is left behind');
  });

  it('every-commit group commit: each concurrent write is in the file when it resolves, with fewer saves than writes', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    const SQL = await initSqlJs();
    const idsInFile = async (): Promise<Set<string>> => {
      const copy = new SQL.Database(new Uint8Array(await readFile(join(dir, 'control-plane.sqlite'))));
      try {
        return new Set((copy.exec('SELECT id FROM t')[0]?.values ?? []).map((row) => String(row[0])));
      } finally {
        copy.close();
      }
    };
    const before = db.saveStats();
    const writes = 40;
    const missing: string[] = [];
    await Promise.all(Array.from({ length: writes }, async (_, i) => {
      const id = `w${i}`;
      // Half plain statements, half transactions: both wait for the save that covers them.
      if (i % 2 === 0) await db.execute('INSERT INTO t (id) VALUES (?)', [id]);
      else await db.transaction(async (tx) => { await tx.execute('INSERT INTO t (id) VALUES (?)', [id]); });
      if (!(await idsInFile()).has(id)) missing.push(id);
    }));
    assert.deepEqual(missing, [], 'a write resolved before a save containing it reached the file');
    const after = db.saveStats();
    assert.equal(after.commits - before.commits, writes);
    const saves = after.saves - before.saves;
    assert.ok(saves >= 1 && saves < writes, `${saves} saves for ${writes} concurrent writes`);
    await db.close();
  });

  it('every-commit group commit: a failed save fails every write of its batch, and the next write retries the save', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await rm(join(dir, 'db.sqlite'));
    await mkdir(join(dir, 'db.sqlite'));
    await writeFile(join(dir, 'db.sqlite', 'blocker'), 'x');
    const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map((id) => db.execute('INSERT INTO t (id) VALUES (?)', [id])));
    assert.ok(results.every((r) => r.status === 'rejected' && SdcError.is(r.reason, 'STORE_SAVE_FAILED')), 'no write reports success without a save');
    await rm(join(dir, 'db.sqlite'), { recursive: true });
    await db.execute('INSERT INTO t (id) VALUES (?)', ['e']);
    const reopened = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    assert.equal((await reopened.query('SELECT id FROM t')).length, 5, 'the retried save wrote the earlier batch too');
    await reopened.close();
    await db.close();
  });

  it('interval durability saves on the scheduler tick or on flush, not on commit', async () => {
    const dir = await freshDir();
    const scheduler = manualScheduler();
    const db = await openSqlJsDatabase({ dataDir: dir, durability: { mode: 'interval', intervalMs: 1000 }, scheduler });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await db.execute('INSERT INTO t (id) VALUES (?)', ['a']);
    assert.equal(scheduler.pending(), 1, 'one save is scheduled however many commits');
    assert.deepEqual((await readdir(dir)).filter((f) => !f.endsWith('.lock')), [], 'nothing written before the interval');
    scheduler.fireAll();
    await db.query('SELECT 1 AS one'); // queued behind the save on the mutex
    const reader = await openSqlJsDatabase({ dataDir: dir });
    assert.deepEqual(await reader.query('SELECT id FROM t'), [{ id: 'a' }]);
    await reader.close();
    await db.execute('INSERT INTO t (id) VALUES (?)', ['b']);
    await db.flush();
    const again = await openSqlJsDatabase({ dataDir: dir });
    assert.equal((await again.query('SELECT id FROM t')).length, 2);
    await again.close();
    await db.close();
    assert.equal(scheduler.pending(), 0);
  });

  it('a failed save is STORE_SAVE_FAILED, refuses later writes and close, and recovers once the file can be written', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    // A non-empty directory where the file must be renamed makes the save fail on any user, root included.
    await rm(join(dir, 'db.sqlite'));
    await mkdir(join(dir, 'db.sqlite'));
    await writeFile(join(dir, 'db.sqlite', 'blocker'), 'x');
    await assert.rejects(db.execute('INSERT INTO t (id) VALUES (?)', ['a']), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'));
    await assert.rejects(db.execute('INSERT INTO t (id) VALUES (?)', ['b']), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'));
    await assert.rejects(db.close(), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'), 'close does not drop unsaved data quietly');
    await rm(join(dir, 'db.sqlite'), { recursive: true });
    await db.close();
    const reopened = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    assert.deepEqual(await reopened.query('SELECT id FROM t'), [{ id: 'a' }]);
    await reopened.close();
  });

  it('refuses a damaged file with STORE_CORRUPT and leaves it untouched', async () => {
    const dir = await freshDir();
    const garbage = 'this is not a database, just text that is long enough to matter';
    await writeFile(join(dir, 'control-plane.sqlite'), garbage);
    await assert.rejects(openSqlJsDatabase({ dataDir: dir }), (e) => SdcError.is(e, 'STORE_CORRUPT'));
    assert.equal(await readFile(join(dir, 'control-plane.sqlite'), 'utf8'), garbage);
  });

  it('refuses database calls from inside its own transaction instead of deadlocking', async () => {
    const db = await openSqlJsDatabase({ dataDir: await freshDir() });
    await assert.rejects(db.transaction(async () => db.query('SELECT 1 AS one')), (e) => SdcError.is(e, 'STORE_INVALID_ARGUMENT'));
    assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
    await db.close();
  });

  it('bounds the callers waiting for the connection', async () => {
    const db = await openSqlJsDatabase({ dataDir: await freshDir(), waitersMax: 2 });
    const calls = Array.from({ length: 4 }, () => db.query('SELECT 1 AS one'));
    const results = await Promise.allSettled(calls);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const rejected = results[3];
    assert.ok(rejected?.status === 'rejected' && SdcError.is(rejected.reason, 'STORE_LIMIT'));
    await db.close();
  });

  it('holds the file against other processes: a live owner means STORE_LOCKED, a dead owner\'s lock is taken over', async () => {
    const dir = await freshDir();
    const lockPath = join(dir, 'control-plane.sqlite.lock');
    // pid 1 always exists: another process holds the file.
    await writeFile(lockPath, '1');
    await assert.rejects(openSqlJsDatabase({ dataDir: dir }), (e) => SdcError.is(e, 'STORE_LOCKED') && e.details.pid === 1);
    // A pid far above pid_max is a process that is gone: its lock is stale.
    await writeFile(lockPath, '2147483646');
    const first = await openSqlJsDatabase({ dataDir: dir });
    assert.equal(await readFile(lockPath, 'utf8'), String(process.pid));
    const second = await openSqlJsDatabase({ dataDir: dir }); // this process's own openers share the lock
    await first.close();
    assert.equal(await readFile(lockPath, 'utf8'), String(process.pid), 'still held while one opener is open');
    await second.close();
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.lock')), []);
  });
});
