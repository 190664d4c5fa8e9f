import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../../core/errors/index.js';
import { AuditLog, type AuditEntry, type AuditEntryInput, type AuditStore } from '../../../core/protocol/audit-chain.js';
import { systemClock } from '../../../runtime/system.js';
import type { SqlDatabase, SqlExecutor, SqlTransaction } from '../../stores/sql/sql-port.js';
import { migrateControlPlane } from '../database.js';
import { mysqlTarget, sqlJsTarget, type SqlTarget } from '../test-support.js';
import { runAuditStoreContract } from './audit-store-contract.js';
import { SqlAuditStore } from './sql-audit-store.js';

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

type WriteMode = 'batch' | 'atHead' | 'plain';

/** The store as another process would use it (with the given write methods), counting its writes and the seq races it lost. */
function countingStore(store: SqlAuditStore, mode: WriteMode): AuditStore & { conflicts: number; writes: number } {
  const counted = <T>(write: () => Promise<T>) => {
    wrapper.writes += 1;
    return write().catch((error: unknown) => {
      if (SdcError.is(error, 'AUDIT_CONFLICT')) wrapper.conflicts += 1;
      throw error;
    });
  };
  const wrapper: AuditStore & { conflicts: number; writes: number } = {
    conflicts: 0,
    writes: 0,
    head: () => store.head(),
    scan: (fromSeq, limit) => store.scan(fromSeq, limit),
    append: (entry) => counted(() => store.append(entry)),
    ...(mode === 'atHead' ? { appendAtHead: (next: (head: AuditEntry | undefined) => AuditEntry) => counted(() => store.appendAtHead(next)) } : {}),
    ...(mode === 'batch' ? { appendBatch: (next: (head: AuditEntry | undefined) => readonly AuditEntry[]) => counted(() => store.appendBatch(next)) } : {}),
  };
  return wrapper;
}

function suite(target: SqlTarget): void {
  describe(`SqlAuditStore on ${target.name}`, () => {
    const dirs: string[] = [];
    let contractDb: SqlDatabase | undefined;
    // Closed before its directory goes: an embedded database writes its snapshot at close.
    after(async () => {
      await contractDb?.close();
      await target.cleanup();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    });
    const open = async (): Promise<SqlDatabase> => {
      const dir = await mkdtemp(join(tmpdir(), 'sdc-audit-store-'));
      dirs.push(dir);
      const db = await target.open(dir);
      await migrateControlPlane(db, systemClock);
      await db.execute('DELETE FROM audit_log');
      return db;
    };

    runAuditStoreContract(`SqlAuditStore on ${target.name}`, {
      create: async () => {
        contractDb ??= await open();
        await contractDb.execute('DELETE FROM audit_outbox');
        await contractDb.execute('DELETE FROM audit_log');
        return new SqlAuditStore(contractDb);
      },
      transaction: (fn) => contractDb!.transaction(fn),
    });

    it('two logs on one database (two control planes) append concurrently without losing a seq race, and the chain verifies', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const writers = [countingStore(store, 'atHead'), countingStore(store, 'atHead')];
      const logs = writers.map((w) => new AuditLog({ store: w, sha256, clock: systemClock }));
      const perLog = 30;
      await Promise.all(logs.flatMap((log, l) => Array.from({ length: perLog }, (_, i) =>
        log.append({ kind: 'test.append', actor: `writer:${l}`, subject: `n:${i}`, payload: { i } }))));
      assert.deepEqual(writers.map((w) => w.conflicts), [0, 0], 'writers queue on the lock instead of conflicting');
      const verdict = await logs[0]!.verify();
      assert.ok(verdict.ok && verdict.count === 2 * perLog, JSON.stringify(verdict));
      await db.close();
    });

    it('two batching logs on one database write fewer transactions than appends, queue on the lock, and produce one verifying chain', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const writers = [countingStore(store, 'batch'), countingStore(store, 'batch')];
      const logs = writers.map((w) => new AuditLog({ store: w, sha256, clock: systemClock, batchEntriesMax: 16 }));
      const perLog = 100;
      const entries = await Promise.all(logs.flatMap((log, l) => Array.from({ length: perLog }, (_, i) =>
        log.append({ kind: 'test.append', actor: `writer:${l}`, subject: `n:${i}`, payload: { i, text: 'x'.repeat(i) } }))));
      assert.deepEqual(writers.map((w) => w.conflicts), [0, 0], 'writers queue on the lock instead of conflicting');
      const writes = writers[0]!.writes + writers[1]!.writes;
      assert.ok(writes < 2 * perLog && writes >= Math.ceil(2 * perLog / 16), `${writes} transactions for ${2 * perLog} appends`);
      // Each log's entries keep its call order.
      for (let l = 0; l < logs.length; l += 1) {
        const seqs = entries.slice(l * perLog, (l + 1) * perLog).map((e) => e.seq);
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      }
      const verdict = await logs[1]!.verify();
      assert.ok(verdict.ok && verdict.count === 2 * perLog, JSON.stringify(verdict));
      const stored = await store.scan(1, 1000);
      assert.deepEqual(stored, [...entries].sort((a, b) => a.seq - b.seq), 'what each append resolved with is what the database holds');
      await db.close();
    });

    it('stores a failing batch not at all, rejects exactly its appends, and the next batch continues from the stored head', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const log = new AuditLog({ store, sha256, clock: systemClock });
      const first = await log.append({ kind: 'test.append', actor: 'writer:0', subject: 'n:0', payload: {} });
      let batches = 0;
      const failing: AuditStore = {
        head: () => store.head(),
        scan: (fromSeq, limit) => store.scan(fromSeq, limit),
        append: (entry) => store.append(entry),
        // Entry 67 cannot be stored (NOT NULL), so the second INSERT of the transaction fails after the first 64 rows went in.
        appendBatch: (next) => store.appendBatch((head) => {
          batches += 1;
          return next(head).map((entry, index) => (index === 66 ? { ...entry, hash: null as unknown as string } : entry));
        }),
      };
      const failingLog = new AuditLog({ store: failing, sha256, clock: systemClock });
      const outcomes = await Promise.allSettled(Array.from({ length: 70 }, (_, i) =>
        failingLog.append({ kind: 'test.append', actor: 'writer:1', subject: `n:${i}`, payload: {} })));
      assert.equal(batches, 1);
      const reasons = new Set(outcomes.map((o) => (o.status === 'rejected' ? o.reason : 'fulfilled')));
      assert.equal(reasons.size, 1, 'every append of the batch is rejected with the one store error');
      assert.ok([...reasons][0] instanceof Error);
      assert.equal((await store.head())?.seq, 1, 'the transaction rolled back the rows inserted before the failure');
      const after = await log.append({ kind: 'test.append', actor: 'writer:0', subject: 'n:1', payload: {} });
      assert.deepEqual([after.seq, after.prev_hash], [2, first.hash]);
      assert.deepEqual(await log.verify(), { ok: true, count: 2, headSeq: 2, headHash: after.hash });
      await db.close();
    });

    it('without the atomic append the same load loses seq races (what the lock prevents), and the retry still keeps the chain whole', async () => {
      const db = await open();
      const store = new SqlAuditStore(db);
      const writers = [countingStore(store, 'plain'), countingStore(store, 'plain')];
      const logs = writers.map((w) => new AuditLog({ store: w, sha256, clock: systemClock }));
      const perLog = 30;
      const results = await Promise.allSettled(logs.flatMap((log, l) => Array.from({ length: perLog }, (_, i) =>
        log.append({ kind: 'test.append', actor: `writer:${l}`, subject: `n:${i}`, payload: { i } }))));
      assert.ok(writers[0]!.conflicts + writers[1]!.conflicts > 0, 'the head-then-insert path races between writers');
      const stored = results.filter((r) => r.status === 'fulfilled').length;
      const verdict = await logs[0]!.verify();
      assert.ok(verdict.ok && verdict.count === stored, JSON.stringify(verdict));
      await db.close();
    });

    /** A store over `db` that logs every statement it runs, counts its transactions, and the calls it makes (a batch is one: one round trip). */
    const loggedStore = (db: SqlDatabase): { store: SqlAuditStore; statements: string[]; transactions: () => number; calls: () => number } => {
      const statements: string[] = [];
      let transactions = 0;
      let calls = 0;
      const logged = (executor: SqlExecutor): SqlExecutor => ({
        dialect: executor.dialect,
        query: (sql, params) => { statements.push(sql); calls += 1; return executor.query(sql, params); },
        execute: (sql, params) => { statements.push(sql); calls += 1; return executor.execute(sql, params); },
      });
      const loggedTx = (tx: SqlTransaction): SqlTransaction => ({
        ...logged(tx),
        executeBatch: (batch) => { statements.push(...batch.map((statement) => statement.sql)); calls += 1; return tx.executeBatch(batch); },
      });
      const transaction: SqlDatabase['transaction'] = (fn) => { transactions += 1; return db.transaction((tx) => fn(loggedTx(tx))); };
      const store = new SqlAuditStore({ ...logged(db), transaction, close: () => db.close() } as SqlDatabase);
      return { store, statements, transactions: () => transactions, calls: () => calls };
    };

    it('a drain takes the audit lock row on MySQL only, without reading the counter back (issue 17: SQLite\'s write lock already serialises it)', async () => {
      const db = await open();
      try {
        const { store, statements } = loggedStore(db);
        const log = new AuditLog({ store, sha256, clock: systemClock });
        await db.transaction((tx) => log.record(tx, { kind: 'test.recorded', actor: 'system', subject: 'test:1', payload: {} }));
        statements.length = 0;
        assert.equal(await log.drainRecorded(), 1);
        assert.equal(statements.filter((sql) => sql.includes('counters')).length, db.dialect === 'mysql' ? 1 : 0, statements.join('\n'));
        assert.equal(statements.filter((sql) => /^SELECT value FROM counters/.test(sql)).length, 0);
      } finally {
        // Closed even when an assertion failed: an open MySQL pool would keep the test process alive.
        await db.close();
      }
    });

    it('a drain after this store recorded skips the outbox probe and reads the inputs and the head in one statement (issue 17): 3 statements on SQLite, 4 on MySQL, was 6; in two round trips, was 3 and 4', async () => {
      const db = await open();
      try {
        await db.execute('DELETE FROM audit_outbox');
        const { store, statements, calls } = loggedStore(db);
        const log = new AuditLog({ store, sha256, clock: systemClock });
        await db.transaction((tx) => log.record(tx, { kind: 'test.recorded', actor: 'system', subject: 'test:1', payload: {} }));
        statements.length = 0;
        const callsBefore = calls();
        assert.equal(await log.drainRecorded(), 1);
        assert.deepEqual(statements.map((sql) => sql.split(' ').slice(0, 3).join(' ')), [
          ...(db.dialect === 'mysql' ? ['INSERT INTO counters'] : []),
          'SELECT * FROM', 'DELETE FROM audit_outbox', 'INSERT INTO audit_log',
        ]);
        // The lock and the read in one batch, the DELETE and the INSERT in another (the COMMIT is the adapter's).
        assert.equal(calls() - callsBefore, 2);
        // Nothing recorded since: the periodic drain probes and answers without a transaction, as before.
        statements.length = 0;
        assert.equal(await log.drainRecorded(), 0);
        assert.deepEqual(statements, ['SELECT id FROM audit_outbox ORDER BY id ASC LIMIT 1']);
        assert.equal((await log.verify()).ok, true);
      } finally {
        // Closed even when an assertion failed: an open MySQL pool would keep the test process alive.
        await db.close();
      }
    });

    it('a drain\'s one read hands next the stored head exactly (another writer\'s batch) and the inputs in id order, in limit-sized drains (issue 17)', async () => {
      const db = await open();
      try {
        await db.execute('DELETE FROM audit_outbox');
        const store = new SqlAuditStore(db);
        const other = new SqlAuditStore(db);
        const log = new AuditLog({ store, sha256, clock: systemClock });
        const otherLog = new AuditLog({ store: other, sha256, clock: systemClock });
        // An empty log: the first drain chains from no head.
        await db.transaction((tx) => log.record(tx, { kind: 'test.recorded', actor: 'system', subject: 'in:0', payload: {} }));
        const seenHeads: Array<AuditEntry | undefined> = [];
        const seenSubjects: string[][] = [];
        const watched: AuditStore<SqlExecutor> = {
          head: () => store.head(), scan: (fromSeq, limit) => store.scan(fromSeq, limit), append: (entry) => store.append(entry),
          record: (tx, input) => store.record(tx, input),
          appendRecorded: (next, limit) => store.appendRecorded((head, inputs) => {
            seenHeads.push(head);
            seenSubjects.push(inputs.map((input) => input.subject));
            return next(head, inputs);
          }, limit),
        };
        const watchedLog = new AuditLog({ store: watched, sha256, clock: systemClock, batchEntriesMax: 4 });
        assert.equal(await watchedLog.drainRecorded(), 1);
        assert.equal(seenHeads.length, 1);
        assert.equal(seenHeads[0], undefined);
        // Another writer appends a batch (with a payload the JSON columns must carry back intact), then ten inputs wait.
        const batch = await Promise.all([1, 2, 3].map((n) => otherLog.append({ kind: 'test.other', actor: 'writer:other', subject: `other:${n}`, payload: { n, text: 'é"\\'.repeat(n) } })));
        await db.transaction((tx) => log.recordMany(tx, Array.from({ length: 10 }, (_, i) => ({ kind: 'test.recorded', actor: 'system', subject: `in:${i + 1}`, payload: { i } }))));
        seenHeads.length = 0;
        seenSubjects.length = 0;
        assert.equal(await watchedLog.drainRecorded(), 10);
        assert.deepEqual(seenHeads[0], batch[2], 'the head is the other writer\'s last entry, every column as stored');
        assert.deepEqual(seenSubjects, [['in:1', 'in:2', 'in:3', 'in:4'], ['in:5', 'in:6', 'in:7', 'in:8'], ['in:9', 'in:10']]);
        assert.equal(seenHeads[1]?.subject, 'in:4');
        const stored = await store.scan(1, 100);
        assert.deepEqual(stored.map((entry) => entry.subject), ['in:0', 'other:1', 'other:2', 'other:3', ...Array.from({ length: 10 }, (_, i) => `in:${i + 1}`)]);
        assert.deepEqual(await log.verify(), { ok: true, count: 14, headSeq: 14, headHash: stored[13]!.hash });
        assert.equal(await store.recordedCount(), 0);
      } finally {
        // Closed even when an assertion failed: an open MySQL pool would keep the test process alive.
        await db.close();
      }
    });

    it('a drain hands next the payload this store recorded for a row with exactly its text, not a parsed copy; a row changed since is parsed and chained as it stands (issue 17)', async () => {
      const db = await open();
      try {
        await db.execute('DELETE FROM audit_outbox');
        const store = new SqlAuditStore(db);
        const recorded: AuditEntryInput[] = [];
        const drained: AuditEntryInput[] = [];
        const watched: AuditStore<SqlExecutor> = {
          head: () => store.head(), scan: (fromSeq, limit) => store.scan(fromSeq, limit), append: (entry) => store.append(entry),
          record: (tx, input) => store.record(tx, input),
          recordMany: (tx, inputs) => {
            recorded.push(...inputs);
            return store.recordMany(tx, inputs);
          },
          appendRecorded: (next, limit) => store.appendRecorded((head, inputs) => {
            drained.push(...inputs);
            return next(head, inputs);
          }, limit),
        };
        const log = new AuditLog({ store: watched, sha256, clock: systemClock });
        await db.transaction((tx) => log.recordMany(tx, [1, 2, 3].map((n) => ({ kind: 'test.recorded', actor: 'system', subject: `t:${n}`, payload: { n, text: 'é"\\' } }))));
        await db.execute('UPDATE audit_outbox SET payload_json = ? WHERE subject = ?', ['{"n":99}', 't:2']);
        assert.equal(await log.drainRecorded(), 3);
        assert.deepEqual(drained.map((input) => input.subject), ['t:1', 't:2', 't:3']);
        assert.equal(drained[0]!.payload, recorded[0]!.payload, 'the recorded object itself');
        assert.equal(drained[2]!.payload, recorded[2]!.payload);
        assert.notEqual(drained[1]!.payload, recorded[1]!.payload);
        const stored = await store.scan(1, 10);
        assert.deepEqual(stored.map((entry) => entry.payload), [{ n: 1, text: 'é"\\' }, { n: 99 }, { n: 3, text: 'é"\\' }]);
        assert.equal((await log.verify()).ok, true);
      } finally {
        // Closed even when an assertion failed: an open MySQL pool would keep the test process alive.
        await db.close();
      }
    });

    it('inputs another store (process) recorded are still found by the probe and chained in order; a rolled-back record costs one empty drain', async () => {
      const db = await open();
      try {
        await db.execute('DELETE FROM audit_outbox');
        const other = new SqlAuditStore(db);
        const { store, statements, transactions } = loggedStore(db);
        const log = new AuditLog({ store, sha256, clock: systemClock });
        const otherLog = new AuditLog({ store: other, sha256, clock: systemClock });
        await db.transaction((tx) => otherLog.recordMany(tx, [1, 2].map((n) => ({ kind: 'test.other', actor: 'system', subject: `test:${n}`, payload: { n } }))));
        assert.equal(await log.drainRecorded(), 2);
        assert.equal(statements[0], 'SELECT id FROM audit_outbox ORDER BY id ASC LIMIT 1');
        await assert.rejects(db.transaction(async (tx) => {
          await log.record(tx, { kind: 'test.rolled_back', actor: 'system', subject: 'test:3', payload: {} });
          throw new Error('roll back');
        }), /roll back/);
        const before = transactions();
        assert.equal(await log.drainRecorded(), 0);
        assert.equal(transactions(), before + 1);
        assert.equal(await store.recordedCount(), 0);
        const entries = await store.scan(1, 10);
        assert.deepEqual(entries.map((entry) => entry.subject), ['test:1', 'test:2']);
        assert.equal((await log.verify()).ok, true);
      } finally {
        // Closed even when an assertion failed: an open MySQL pool would keep the test process alive.
        await db.close();
      }
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl !== undefined && mysqlUrl !== '') suite(mysqlTarget(mysqlUrl));
else describe('SqlAuditStore on mysql', { skip: 'MYSQL_URL is not set; the same suite runs on sql.js above' }, () => {});
