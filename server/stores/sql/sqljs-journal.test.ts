import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import initSqlJs from 'sql.js';
import { SdcError } from '../../../core/errors/index.js';
import type { SqlDatabase } from './sql-port.js';
import { openSqlJsDatabase, type SqlJsDatabase, type SqlJsLogger } from './sqljs-database.js';
import { journalHeaderBytes, journalRecordBytesMax } from './sqljs-journal-format.js';
import { scanJournal } from './sqljs-journal.js';
import { whenPreviousChanged } from './sql-batch.js';

const roots: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-sqljs-journal-'));
  roots.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(roots.map((dir) => rm(dir, { recursive: true, force: true })));
});

const snapshotName = 'control-plane.sqlite';
const journalName = `${snapshotName}.journal`;

/** What a crash right now would leave: the files copied, as they are, into a new directory. */
async function crashCopy(dir: string): Promise<string> {
  const copy = await freshDir();
  for (const name of [snapshotName, journalName]) await copyFile(join(dir, name), join(copy, name)).catch(() => undefined);
  return copy;
}

function capturingLogger(): SqlJsLogger & { lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, warn: (fields, message) => { lines.push({ ...fields, message }); } };
}

/** Every row of every table (sqlite_sequence too: AUTOINCREMENT must replay the same ids), the snapshot's bookkeeping left out. */
async function dump(db: SqlDatabase): Promise<Record<string, unknown[]>> {
  const tables = await db.query<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'sqljs_journal_position' ORDER BY name");
  const result: Record<string, unknown[]> = {};
  for (const { name } of tables) {
    const rows = await db.query(`SELECT * FROM "${name}"`);
    result[name] = rows.map((row) => JSON.stringify(row, (_key, value: unknown) => (value instanceof Uint8Array ? [...value] : value))).sort();
  }
  return result;
}

const schema = [
  'CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(64) NOT NULL UNIQUE, qty BIGINT NOT NULL, note TEXT NULL, payload BLOB NULL)',
  'CREATE TABLE counters (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)',
];

/** A mix of what the control plane sends: autocommit inserts, transactions, updates, deletes, upserts, every value type. */
async function workload(db: SqlDatabase, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    if (i % 3 === 0) {
      await db.execute('INSERT INTO items (name, qty, note, payload) VALUES (?, ?, ?, ?)', [`n${i}`, i * 1.5, i % 2 === 0 ? null : `ünï ${i} \uD800 lone`, new Uint8Array([i % 256, 0, 255])]);
    } else if (i % 3 === 1) {
      await db.transaction(async (tx) => {
        await tx.execute('INSERT INTO items (name, qty) VALUES (?, ?)', [`n${i}`, BigInt(i) * 1_000_000_000n]);
        await tx.execute('INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1', ['total']);
        await tx.execute('UPDATE items SET qty = qty + ? WHERE name = ?', [true, `n${i - 1}`]);
      });
    } else {
      await db.execute('DELETE FROM items WHERE name = ?', [`n${i - 2}`]);
      await db.query('INSERT INTO counters (name, value) VALUES (?, ?) RETURNING value', [`c${i}`, i]);
    }
    if (i % 4 === 0) {
      // A compare-and-set and a write guarded on it, committed with the batch (issue 17): it wins while n{i-1}
      // exists and loses once deleted; replayed, each guard must decide as it did.
      await db.transaction((tx) => tx.executeBatch([
        { sql: 'UPDATE items SET qty = qty + 1 WHERE name = ?', params: [`n${i - 1}`] },
        { sql: `INSERT INTO counters (name, value) SELECT ?, ?${whenPreviousChanged('sqlite', 1)}`, params: [`g${i}`, i] },
      ], { commit: true }));
    }
  }
}

async function openWithSchema(dataDir: string, options: { snapshotAfterJournalRecords?: number } = {}): Promise<SqlJsDatabase> {
  const db = await openSqlJsDatabase({ dataDir, ...options });
  for (const statement of schema) await db.execute(statement);
  return db;
}

describe('sql.js journal: reopen gives the same database', () => {
  it('after many commits without a snapshot (a crash copy, and a clean close)', async () => {
    const dir = await freshDir();
    const db = await openWithSchema(dir);
    await workload(db, 0, 120);
    const stats = db.saveStats();
    assert.equal(stats.snapshots, 0);
    assert.equal(stats.journalRecords, stats.journalRecordsWritten);
    const expected = await dump(db);
    const copy = await openSqlJsDatabase({ dataDir: await crashCopy(dir) });
    assert.equal(copy.saveStats().recoveredRecords, stats.journalRecords, 'every record replayed');
    assert.deepEqual(await dump(copy), expected);
    await copy.close();
    await db.close();
    const reopened = await openSqlJsDatabase({ dataDir: dir });
    assert.deepEqual(await dump(reopened), expected);
    assert.equal(reopened.saveStats().recoveredRecords, 0, 'close folded the journal into the snapshot');
    await reopened.close();
  });

  it('after snapshots at the journal bound plus more commits', async () => {
    const dir = await freshDir();
    const db = await openWithSchema(dir, { snapshotAfterJournalRecords: 30 });
    await workload(db, 0, 100);
    const stats = db.saveStats();
    assert.ok(stats.snapshots >= 2, `${stats.snapshots} snapshots`);
    assert.ok(stats.journalRecords > 0 && stats.journalRecords < 30, `the journal holds only what came after the last snapshot (${stats.journalRecords})`);
    const expected = await dump(db);
    const copy = await openSqlJsDatabase({ dataDir: await crashCopy(dir) });
    assert.equal(copy.saveStats().recoveredRecords, stats.journalRecords);
    assert.deepEqual(await dump(copy), expected);
    await copy.close();
    await db.close();
  });

  it('a data directory from before the journal (a snapshot, no journal) opens and goes on', async () => {
    const dir = await freshDir();
    const SQL = await initSqlJs();
    const old = new SQL.Database();
    old.run('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    old.run("INSERT INTO t (id) VALUES ('old')");
    await writeFile(join(dir, snapshotName), old.export());
    old.close();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('INSERT INTO t (id) VALUES (?)', ['new']);
    const copy = await openSqlJsDatabase({ dataDir: await crashCopy(dir) });
    assert.deepEqual(await copy.query('SELECT id FROM t ORDER BY id'), [{ id: 'new' }, { id: 'old' }]);
    await copy.close();
    await db.close();
  });
});

describe('sql.js journal: crashes and damage', () => {
  /** Six acknowledged single-row commits; the journal's length after each one. */
  async function sixCommits(): Promise<{ dir: string; ends: number[] }> {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (n INTEGER PRIMARY KEY)');
    const ends = [(await stat(join(dir, journalName))).size];
    for (let n = 1; n <= 6; n++) {
      await db.execute('INSERT INTO t (n) VALUES (?)', [n]);
      ends.push((await stat(join(dir, journalName))).size);
    }
    const copy = await crashCopy(dir);
    await db.close();
    return { dir: copy, ends };
  }

  it('a torn tail at several cut points recovers exactly the commits acknowledged before it, and is cut off and logged', async () => {
    const { dir, ends } = await sixCommits();
    const journal = await readFile(join(dir, journalName));
    const lastStart = ends[5]!;
    const lastEnd = ends[6]!;
    // Inside the last record's header, inside its payload, its last byte missing; and zeros after a whole record.
    const cuts = [lastStart + 1, lastStart + 12, lastStart + 20, lastEnd - 1];
    for (const cut of cuts) {
      const copy = await freshDir();
      await copyFile(join(dir, snapshotName), join(copy, snapshotName)).catch(() => undefined);
      await writeFile(join(copy, journalName), journal.subarray(0, cut));
      const logger = capturingLogger();
      const db = await openSqlJsDatabase({ dataDir: copy, logger });
      assert.deepEqual((await db.query<{ n: number }>('SELECT n FROM t ORDER BY n')).map((r) => r.n), [1, 2, 3, 4, 5], `cut at ${cut}`);
      assert.equal(db.saveStats().tornTailBytes, cut - lastStart);
      assert.equal(logger.lines.length, 1);
      assert.equal(logger.lines[0]?.['tornTailBytes'], cut - lastStart);
      assert.equal((await stat(join(copy, journalName))).size, lastStart, 'the tail is cut off on disk');
      // The next commit follows the kept records: it survives another reopen.
      await db.execute('INSERT INTO t (n) VALUES (?)', [7]);
      const again = await openSqlJsDatabase({ dataDir: await crashCopy(copy) });
      assert.deepEqual((await again.query<{ n: number }>('SELECT n FROM t ORDER BY n')).map((r) => r.n), [1, 2, 3, 4, 5, 7]);
      await again.close();
      await db.close();
    }
    const zeros = await freshDir();
    await writeFile(join(zeros, journalName), Buffer.concat([journal, Buffer.alloc(100)]));
    const db = await openSqlJsDatabase({ dataDir: zeros, logger: capturingLogger() });
    assert.equal((await db.query('SELECT n FROM t')).length, 6, 'every whole record kept');
    await db.close();
  });

  it('damage inside the last group commit\'s write is a torn tail even with its later records intact; before a later write it is STORE_CORRUPT', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (n INTEGER PRIMARY KEY)');
    await Promise.all(Array.from({ length: 30 }, (_, n) => db.execute('INSERT INTO t (n) VALUES (?)', [n])));
    await db.execute('INSERT INTO t (n) VALUES (?)', [100]); // a write of its own after the group
    const files = await crashCopy(dir);
    await db.close();
    const journal = await readFile(join(files, journalName));
    const records = scanJournal(journal, journalName).records;
    const appendStarts = [...new Set(records.map((r) => r.appendStart))];
    // The longest write of the concurrent inserts, and where the next write starts.
    const longest = appendStarts.map((start) => records.filter((r) => r.appendStart === start)).sort((a, b) => b.length - a.length)[0]!;
    assert.ok(longest.length >= 3, `a group commit wrote ${longest.length} records at once`);
    const damaged = Buffer.from(journal);
    damaged.fill(0, longest[0]!.offset, longest[1]!.offset); // its first record lost, its others intact
    const nextWrite = records.find((r) => r.sequence === longest.at(-1)!.sequence + 1)!;
    const cut = await freshDir();
    await writeFile(join(cut, journalName), damaged.subarray(0, nextWrite.offset));
    const torn = await openSqlJsDatabase({ dataDir: cut, logger: capturingLogger() });
    assert.equal((await torn.query('SELECT n FROM t')).length, longest[0]!.sequence - 2, 'every record before the damaged write, none of it');
    await torn.close();
    const whole = await freshDir();
    await writeFile(join(whole, journalName), damaged);
    await assert.rejects(openSqlJsDatabase({ dataDir: whole }), (e) => SdcError.is(e, 'STORE_CORRUPT'), 'a later write proves the damaged one had been synced');
    assert.deepEqual(await readFile(join(whole, journalName)), damaged);
  });

  it('a journal cut inside its header holds nothing acknowledged and is removed', async () => {
    const { dir, ends } = await sixCommits();
    const journal = await readFile(join(dir, journalName));
    const copy = await freshDir();
    await writeFile(join(copy, journalName), journal.subarray(0, journalHeaderBytes - 5));
    const db = await openSqlJsDatabase({ dataDir: copy, logger: capturingLogger() });
    assert.deepEqual(await db.query("SELECT name FROM sqlite_master WHERE type = 'table'"), []);
    assert.deepEqual((await readdir(copy)).filter((f) => !f.endsWith('.lock')), []);
    await db.close();
    assert.ok(ends[6]! > journalHeaderBytes);
  });

  it('a damaged record in the middle is STORE_CORRUPT and both files are left untouched', async () => {
    const { dir, ends } = await sixCommits();
    await writeFile(join(dir, snapshotName), new Uint8Array(0)); // an empty snapshot: SQLite reads it as an empty database
    const journal = await readFile(join(dir, journalName));
    for (const [what, at] of [['payload', ends[2]! + 20], ['length', ends[2]! + 1], ['checksum', ends[2]! + 5]] as const) {
      const damaged = Buffer.from(journal);
      damaged[at] = damaged[at]! ^ 0x40;
      await writeFile(join(dir, journalName), damaged);
      const logger = capturingLogger();
      await assert.rejects(openSqlJsDatabase({ dataDir: dir, logger }), (e) => SdcError.is(e, 'STORE_CORRUPT'), what);
      assert.deepEqual(await readFile(join(dir, journalName)), damaged, `${what}: the journal is untouched`);
      assert.equal((await readFile(join(dir, snapshotName))).length, 0, `${what}: the snapshot is untouched`);
      assert.deepEqual(logger.lines, []);
      assert.ok(!(await readdir(dir)).some((f) => f.endsWith('.lock')), 'the lock is released');
    }
  });

  it('a journal that starts past the snapshot (records lost in between) is STORE_CORRUPT', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (n INTEGER PRIMARY KEY)');
    await db.execute('INSERT INTO t (n) VALUES (1)');
    const early = await crashCopy(dir); // records 1-2, no snapshot
    await db.close(); // snapshot at 2
    const reopened = await openSqlJsDatabase({ dataDir: dir });
    await reopened.execute('INSERT INTO t (n) VALUES (2)');
    await reopened.execute('INSERT INTO t (n) VALUES (3)');
    const late = await crashCopy(dir); // snapshot at 2, records 3-4
    await reopened.close();
    // The old snapshot (none) with the newer journal: records 1-2 are missing.
    await rm(join(early, journalName));
    await copyFile(join(late, journalName), join(early, journalName));
    await assert.rejects(openSqlJsDatabase({ dataDir: early }), (e) => SdcError.is(e, 'STORE_CORRUPT'));
  });

  it('a crash after the snapshot was renamed but before the journal was removed applies no record twice', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE once (id VARCHAR(8) PRIMARY KEY)');
    await db.execute('CREATE TABLE counters (name VARCHAR(8) PRIMARY KEY, value INTEGER NOT NULL)');
    await db.execute("INSERT INTO counters (name, value) VALUES ('c', 0)");
    for (let i = 0; i < 5; i++) {
      await db.transaction(async (tx) => {
        await tx.execute('INSERT INTO once (id) VALUES (?)', [`u${i}`]);
        await tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'c'");
      });
    }
    const journalBefore = await readFile(join(dir, journalName));
    await db.close(); // the snapshot, then the journal removed
    assert.deepEqual((await readdir(dir)).sort(), [snapshotName]);
    // Put the journal back: as if the crash came between the rename and the removal.
    await writeFile(join(dir, journalName), journalBefore);
    const reopened = await openSqlJsDatabase({ dataDir: dir });
    assert.deepEqual(await reopened.query("SELECT value FROM counters WHERE name = 'c'"), [{ value: 5 }], 'the counter is not doubled');
    assert.equal((await reopened.query('SELECT id FROM once')).length, 5);
    assert.equal(reopened.saveStats().recoveredRecords, 0);
    assert.deepEqual((await readdir(dir)).filter((f) => !f.endsWith('.lock')), [snapshotName], 'a journal the snapshot holds entirely is removed');
    // And with records after the snapshot's in the same journal: only those apply.
    await reopened.transaction(async (tx) => {
      await tx.execute('INSERT INTO once (id) VALUES (?)', ['u5']);
      await tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'c'");
    });
    const newer = scanJournal(await readFile(join(dir, journalName)), journalName);
    assert.deepEqual(newer.records.map((r) => r.sequence), [9], 'the snapshot holds records 1-8');
    const combined = Buffer.concat([journalBefore, (await readFile(join(dir, journalName))).subarray(journalHeaderBytes)]);
    const copy = await crashCopy(dir);
    await writeFile(join(copy, journalName), combined);
    const fromCombined = await openSqlJsDatabase({ dataDir: copy });
    assert.deepEqual(await fromCombined.query("SELECT value FROM counters WHERE name = 'c'"), [{ value: 6 }]);
    assert.equal(fromCombined.saveStats().recoveredRecords, 1);
    await fromCombined.close();
    await reopened.close();
  });
});

describe('sql.js journal: what goes in', () => {
  it('a rolled-back transaction and a failed statement never reach the journal', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (id VARCHAR(16) PRIMARY KEY)');
    await assert.rejects(db.transaction(async (tx) => {
      await tx.execute('INSERT INTO t (id) VALUES (?)', ['rolled-back']);
      throw new Error('abort');
    }), /abort/);
    await db.execute('INSERT INTO t (id) VALUES (?)', ['kept']);
    await assert.rejects(db.execute('INSERT INTO t (id) VALUES (?)', ['kept']), (e) => SdcError.is(e, 'STORE_UNIQUE_VIOLATION'));
    await db.transaction(async (tx) => {
      await assert.rejects(tx.execute('INSERT INTO t (id) VALUES (?)', ['kept']), (e) => SdcError.is(e, 'STORE_UNIQUE_VIOLATION'));
      await tx.execute('INSERT INTO t (id) VALUES (?)', ['after']);
    });
    // Writes that change nothing append nothing.
    await db.execute('UPDATE t SET id = ? WHERE id = ?', ['x', 'missing']);
    await db.transaction(async (tx) => tx.query('SELECT id FROM t'));
    const scan = scanJournal(await readFile(join(dir, journalName)), journalName);
    assert.deepEqual(scan.records.map((r) => r.statements.map((s) => s.params)), [[[]], [['kept']], [['after']]]);
    assert.equal(db.saveStats().journalRecords, 3);
    await db.close();
  });

  it('refuses a commit whose record would exceed the record limit before it runs (STORE_LIMIT)', async () => {
    const dir = await freshDir();
    const db = await openSqlJsDatabase({ dataDir: dir });
    await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)');
    const big = new Uint8Array(journalRecordBytesMax / 2);
    await assert.rejects(db.execute('INSERT INTO t (payload) VALUES (?)', [new Uint8Array(journalRecordBytesMax)]), (e) => SdcError.is(e, 'STORE_LIMIT'));
    await assert.rejects(db.transaction(async (tx) => {
      await tx.execute('INSERT INTO t (payload) VALUES (?)', [big]);
      await tx.execute('INSERT INTO t (payload) VALUES (?)', [big]);
    }), (e) => SdcError.is(e, 'STORE_LIMIT'));
    assert.deepEqual(await db.query('SELECT COUNT(*) AS n FROM t'), [{ n: 0 }]);
    assert.equal(db.saveStats().journalRecords, 1, 'only the CREATE TABLE');
    await db.close();
  });

  it('openers in one process share the database: each sees the other\'s writes, the last close writes the snapshot', async () => {
    const dir = await freshDir();
    const first = await openSqlJsDatabase({ dataDir: dir });
    const second = await openSqlJsDatabase({ dataDir: relative(process.cwd(), dir) }); // another name of the same file
    await first.execute('CREATE TABLE t (id VARCHAR(8) PRIMARY KEY)');
    await second.execute('INSERT INTO t (id) VALUES (?)', ['b']);
    assert.deepEqual(await first.query('SELECT id FROM t'), [{ id: 'b' }]);
    await first.close();
    await assert.rejects(first.query('SELECT id FROM t'), (e) => SdcError.is(e, 'STORE_CLOSED'));
    await second.execute('INSERT INTO t (id) VALUES (?)', ['c']);
    assert.ok((await readdir(dir)).includes(journalName), 'still open: the journal is there');
    await second.close();
    assert.deepEqual((await readdir(dir)).sort(), [snapshotName]);
    const reopened = await openSqlJsDatabase({ dataDir: dir });
    assert.equal((await reopened.query('SELECT id FROM t')).length, 2);
    await reopened.close();
  });
});
