import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../../core/errors/index.js';
import type { Scheduler, TimerHandle } from '../../../core/ports/ports.js';
import { runSqlContract } from './sql-contract.js';
import { openSqlJsDatabase } from './sqljs-database.js';
import { scanJournal } from './sqljs-journal.js';

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

/** A copy of the database's files (snapshot and journal, as they are now) in a new directory: what a crash now would leave. */
async function copyOfFiles(dir: string, fileName = 'control-plane.sqlite'): Promise<string> {
  const copy = await freshDir();
  for (const name of [fileName, `${fileName}.journal`]) await copyFile(join(dir, name), join(copy, name)).catch(() => undefined);
  return copy;
}

/** A non-empty directory where a file must be written or removed makes that fail on any user, root included. */
async function blockPath(path: string): Promise<void> {
  await rm(path, { force: true });
  await mkdir(path);
  await writeFile(join(path, 'blocker'), 'x');
}

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
  it('every-commit durability: a write is on disk when it resolves, and a closed database is one file again', async () => {
    const dir = await freshDir();
    const writer = await openSqlJsDatabase({ dataDir: dir });
    await writer.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await writer.execute('INSERT INTO t (id) VALUES (?)', ['a']);
    // What a crash right now would leave: a copy of the files opened elsewhere.
    const copy = await openSqlJsDatabase({ dataDir: await copyOfFiles(dir) });
    assert.deepEqual(await copy.query('SELECT id FROM t'), [{ id: 'a' }]);
    await copy.close();
    await writer.close();
    assert.deepEqual((await readdir(dir)).sort(), ['control-plane.sqlite'], 'the journal went into the snapshot; no temporary file is left behind');
  });

  it('every-commit group commit: each concurrent write is in the journal when it resolves, with fewer appends than writes', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    const idsInJournal = async (): Promise<Set<string>> => {
      const scan = scanJournal(await readFile(join(dir, 'control-plane.sqlite.journal')), 'journal');
      return new Set(scan.records.flatMap((record) => record.statements.map((statement) => String(statement.params[0]))));
    };
    const before = db.saveStats();
    const writes = 40;
    const missing: string[] = [];
    await Promise.all(Array.from({ length: writes }, async (_, i) => {
      const id = `w${i}`;
      // Half plain statements, half transactions: both wait for the append that covers them.
      if (i % 2 === 0) await db.execute('INSERT INTO t (id) VALUES (?)', [id]);
      else await db.transaction(async (tx) => { await tx.execute('INSERT INTO t (id) VALUES (?)', [id]); });
      if (!(await idsInJournal()).has(id)) missing.push(id);
    }));
    assert.deepEqual(missing, [], 'a write resolved before an append containing it reached the file');
    const after = db.saveStats();
    assert.equal(after.commits - before.commits, writes);
    const appends = after.journalAppends - before.journalAppends;
    assert.ok(appends >= 1 && appends < writes, `${appends} appends for ${writes} concurrent writes`);
    assert.equal(after.journalRecordsWritten - before.journalRecordsWritten, writes, 'one record per commit');
    assert.equal(after.snapshots, 0, 'no whole-database write below the journal bound');
    await db.close();
  });

  it('every-commit group commit: a failed append fails every write of its group, and the next write repairs it with a snapshot', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await blockPath(join(dir, 'db.sqlite.journal'));
    const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map((id) => db.execute('INSERT INTO t (id) VALUES (?)', [id])));
    assert.ok(results.every((r) => r.status === 'rejected' && SdcError.is(r.reason, 'STORE_SAVE_FAILED')), 'no write reports success without a save');
    await rm(join(dir, 'db.sqlite.journal'), { recursive: true });
    await db.execute('INSERT INTO t (id) VALUES (?)', ['e']);
    assert.equal(db.saveStats().snapshots, 1, 'the repair was a snapshot');
    const copy = await openSqlJsDatabase({ dataDir: await copyOfFiles(dir, 'db.sqlite'), fileName: 'db.sqlite' });
    assert.equal((await copy.query('SELECT id FROM t')).length, 5, 'the snapshot holds the failed group too, and the journal the write after it');
    await copy.close();
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
    const reader = await openSqlJsDatabase({ dataDir: await copyOfFiles(dir) });
    assert.deepEqual(await reader.query('SELECT id FROM t'), [{ id: 'a' }]);
    await reader.close();
    await db.execute('INSERT INTO t (id) VALUES (?)', ['b']);
    await db.flush();
    const again = await openSqlJsDatabase({ dataDir: await copyOfFiles(dir) });
    assert.equal((await again.query('SELECT id FROM t')).length, 2);
    await again.close();
    assert.deepEqual((await readdir(dir)).filter((f) => !f.endsWith('.lock')), ['control-plane.sqlite'], 'interval mode writes snapshots, no journal');
    await assert.rejects(openSqlJsDatabase({ dataDir: dir }), (e) => SdcError.is(e, 'STORE_INVALID_ARGUMENT'), 'a second opener in this process must ask for the same durability');
    await db.close();
    assert.equal(scheduler.pending(), 0);
  });

  it('a failed save is STORE_SAVE_FAILED, refuses later writes and close, and recovers once the file can be written', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir, fileName: 'db.sqlite' });
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await blockPath(join(dir, 'db.sqlite.journal'));
    await assert.rejects(db.execute('INSERT INTO t (id) VALUES (?)', ['a']), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'));
    // The repairing snapshot is written, but the journal cannot be removed: still refused, and 'b' never runs.
    await assert.rejects(db.execute('INSERT INTO t (id) VALUES (?)', ['b']), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'));
    await assert.rejects(db.close(), (e) => SdcError.is(e, 'STORE_SAVE_FAILED'), 'close does not drop unsaved data quietly');
    await rm(join(dir, 'db.sqlite.journal'), { recursive: true });
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

  it('opened without the nested-call check (the simulator), a call from inside a transaction waits its turn instead', async () => {
    const db = await openSqlJsDatabase({ dataDir: await freshDir(), refuseNestedCalls: false });
    let nested: Promise<unknown> | undefined;
    await db.transaction(async (tx) => {
      await tx.execute('CREATE TABLE t (n INTEGER)');
      await tx.execute('INSERT INTO t (n) VALUES (1)');
      // Not awaited here (that would wait for this transaction forever): it queues behind it, unrefused.
      nested = db.query('SELECT n FROM t');
    });
    assert.deepEqual(await nested, [{ n: 1 }]);
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

  it('keeps SQLite\'s lock for the connection\'s life (exclusive locking), also across snapshots and a reopen from snapshot plus journal', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir, snapshotAfterJournalRecords: 2 });
    assert.deepEqual(await db.query('PRAGMA locking_mode'), [{ locking_mode: 'exclusive' }]);
    await db.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    // Enough commits for snapshots (sql.js's export, a backup through this same connection) between them.
    for (const id of ['a', 'b', 'c', 'd', 'e']) await db.execute('INSERT INTO t (id) VALUES (?)', [id]);
    assert.ok(db.saveStats().snapshots >= 1, 'a snapshot was exported while the lock was held');
    assert.deepEqual(await db.query('SELECT id FROM t ORDER BY id'), ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id })));
    const copy = await openSqlJsDatabase({ dataDir: await copyOfFiles(dir) });
    assert.deepEqual(await copy.query('PRAGMA locking_mode'), [{ locking_mode: 'exclusive' }]);
    assert.deepEqual(await copy.query('SELECT id FROM t ORDER BY id'), ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id })));
    await copy.close();
    await db.close();
  });
});
