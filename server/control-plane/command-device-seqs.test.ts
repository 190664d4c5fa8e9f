import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SqlDatabase, SqlExecutor, SqlTransaction, SqlValue } from '../stores/sql/sql-port.js';
import { CommandRepository } from './command-repository.js';
import { takeDeviceSeqs } from './command-device-seqs.js';
import { nextCounterValue } from './stores/counters.js';
import { decideCreate } from '../../core/protocol/command-decisions.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';
import { withOneByOneBatches } from '../stores/sql/sql-batch.js';

/** A command as the create path signs it; the repository stores it as given. */
function fakeSigned(id: string, deviceId: string, deviceSeq: number): SignedCommand {
  return { id, device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: 1_000, expires_at: 61_000, device_seq: deviceSeq, issuer: 'test', kid: 'k', sig: 'AA' } as unknown as SignedCommand;
}

/** The database, with every statement run inside its transactions recorded. */
function countingTransactions(db: SqlDatabase): { db: SqlDatabase; statements: string[] } {
  const statements: string[] = [];
  const counted = (tx: SqlExecutor): SqlExecutor => ({
    dialect: tx.dialect,
    query: (sql: string, params?: readonly SqlValue[]) => { statements.push(sql); return tx.query(sql, params); },
    execute: (sql: string, params?: readonly SqlValue[]) => { statements.push(sql); return tx.execute(sql, params); },
  } as SqlExecutor);
  return {
    db: {
      dialect: db.dialect, query: db.query.bind(db), execute: db.execute.bind(db), close: db.close.bind(db),
      transaction: <T>(fn: (tx: SqlTransaction) => Promise<T>) => db.transaction((tx) => fn(withOneByOneBatches(counted(tx)))),
    } as SqlDatabase,
    statements,
  };
}

const counterStatements = (statements: readonly string[]): number => statements.filter((sql) => /\bcounters\b/.test(sql)).length;

function suite(pair: StorePair): void {
  let h: Harness;
  before(async () => { h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv }); });
  after(async () => { await h.close(); });

  describe(`a group of creates takes its devices' seqs in one upsert and one read (issue 17), on ${pair.name}`, () => {
    it('five creates of three devices in one group: two counter statements (were five), each device its seqs in the order asked', async () => {
      for (const id of ['sq-a', 'sq-b', 'sq-c']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', 0)", [id]);
      // sq-c has had seven commands already.
      await h.db.execute('INSERT INTO counters (name, value) VALUES (?, 7)', ['device_seq:sq-c']);
      const { db, statements } = countingTransactions(h.db);
      const repository = new CommandRepository({ db, audit: h.cp.context.audit });
      const create = (id: string, deviceId: string) => repository.create(deviceId, (deviceSeq) => decideCreate({
        row: { command: fakeSigned(id, deviceId, deviceSeq), createdBy: 'op', idempotencyKey: null, argsJson: '{}' }, auditActor: 'user:op', policyRecord: {},
      }));
      // Asked in one turn: one group.
      const asked: Array<[string, string]> = [['c-sq-1', 'sq-b'], ['c-sq-2', 'sq-a'], ['c-sq-3', 'sq-c'], ['c-sq-4', 'sq-b'], ['c-sq-5', 'sq-b']];
      await Promise.all(asked.map(([id, deviceId]) => create(id, deviceId)));
      assert.equal(counterStatements(statements), 2, statements.filter((sql) => /\bcounters\b/.test(sql)).join('\n'));
      const rows = await h.db.query<{ id: string; device_seq: number }>("SELECT id, device_seq FROM commands WHERE id LIKE 'c-sq-%' ORDER BY id");
      assert.deepEqual(rows.map((row) => [row.id, Number(row.device_seq)]), [['c-sq-1', 1], ['c-sq-2', 1], ['c-sq-3', 8], ['c-sq-4', 2], ['c-sq-5', 3]]);
      // A create alone afterwards (the one-by-one path, stores/counters.ts) continues each device's count.
      const [one] = await h.db.transaction(async (tx) => [await nextCounterValue(tx, 'device_seq:sq-b')]);
      assert.equal(one, 4);
      await h.cp.context.settleAudit();
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('a create alone is two round trips on MySQL, its COMMIT riding with its writes (issue 17: were five, then three)', async () => {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', 0)", ['sq-alone']);
      const calls: string[] = [];
      const db = {
        dialect: h.db.dialect, query: h.db.query.bind(h.db), execute: h.db.execute.bind(h.db), close: h.db.close.bind(h.db),
        transaction: <T>(fn: (tx: SqlTransaction) => Promise<T>) => h.db.transaction((tx) => fn({
          dialect: tx.dialect,
          query: (sql, params) => { calls.push('statement'); return tx.query(sql, params); },
          execute: (sql, params) => { calls.push('statement'); return tx.execute(sql, params); },
          executeBatch: (batch, options) => { calls.push(options?.commit === true ? `batch of ${batch.length} with COMMIT` : `batch of ${batch.length}`); return tx.executeBatch(batch, options); },
        })),
      } as SqlDatabase;
      const repository = new CommandRepository({ db, audit: h.cp.context.audit, transitionsPerGroupMax: 1 });
      await repository.create('sq-alone', (deviceSeq) => decideCreate({
        row: { command: fakeSigned('c-sq-alone', 'sq-alone', deviceSeq), createdBy: 'op', idempotencyKey: null, argsJson: '{}' }, auditActor: 'user:op', policyRecord: {},
      }));
      // The device's seq (its value is signed into the command; SQLite reads it back after its upsert), then the
      // command, its history row and its outbox row, and the COMMIT.
      assert.deepEqual(calls, [...(h.db.dialect === 'mysql' ? ['statement'] : ['statement', 'statement']), 'batch of 3 with COMMIT']);
      assert.deepEqual(await h.db.query('SELECT state, device_seq FROM commands WHERE id = ?', ['c-sq-alone']), [{ state: 'queued', device_seq: 1 }]);
      assert.equal(await h.cp.context.audit.drainRecorded() >= 1, true);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('more devices than one statement takes: split in name order, every seq right', async () => {
      const deviceIds = Array.from({ length: 70 }, (_, i) => `sq-many-${String(i).padStart(2, '0')}`);
      const asked = [...deviceIds, deviceIds[3]!, deviceIds[69]!];
      const seqs = await h.db.transaction((tx) => takeDeviceSeqs(tx, asked));
      assert.deepEqual(seqs, [...deviceIds.map(() => 1), 2, 2]);
      const again = await h.db.transaction((tx) => takeDeviceSeqs(tx, [deviceIds[3]!, deviceIds[0]!]));
      assert.deepEqual(again, [3, 2]);
    });

    it('a rolled-back group takes no seq', async () => {
      await assert.rejects(h.db.transaction(async (tx) => {
        await takeDeviceSeqs(tx, ['sq-rb', 'sq-rb']);
        throw new Error('rolled back');
      }), /rolled back/);
      assert.deepEqual(await h.db.transaction((tx) => takeDeviceSeqs(tx, ['sq-rb'])), [1]);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('device seqs on mysql + redis', { skip: skipped }, () => {});
