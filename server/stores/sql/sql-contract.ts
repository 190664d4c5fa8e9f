import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../../../core/errors/index.js';
import { controlPlaneMigrations } from './control-plane-migrations.js';
import { migrate, type Migration } from './migrate.js';
import type { SqlDatabase } from './sql-port.js';
import { whenPreviousChanged } from './sql-batch.js';

/** What an adapter's test file supplies: a factory over one persistent location, and a way to empty it. */
export interface SqlContractTarget {
  /** Opens the database; called again after close() must see the same data. */
  create(): Promise<SqlDatabase>;
  /** Removes every table and row so the next create() starts empty. */
  reset(): Promise<void>;
}

const fixedClock = { nowMs: () => 1_700_000_000_000 };
const itemsTable = `CREATE TABLE contract_items (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  name VARCHAR(128) NOT NULL UNIQUE,
  qty BIGINT NOT NULL,
  note TEXT NULL,
  payload BLOB NULL
)`;

interface Item {
  id: string;
  name: string;
  qty: number;
  note: string | null;
  payload: Uint8Array | null;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<SdcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(SdcError.is(error), `expected SdcError ${code}, got ${String(error)}`);
    assert.equal(error.code, code);
    return error;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

/** The one behaviour every SqlDatabase adapter must have (better-auth style: the adapter is a parameter). */
export function runSqlContract(name: string, target: SqlContractTarget): void {
  describe(`SqlDatabase contract: ${name}`, () => {
    let db: SqlDatabase;
    beforeEach(async () => {
      await target.reset();
      db = await target.create();
      await db.execute(itemsTable);
    });
    afterEach(async () => {
      await db.close();
    });

    it('creates, reads, updates and deletes rows', async () => {
      const inserted = await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['i1', 'first', 3]);
      assert.equal(inserted.changes, 1);
      assert.deepEqual(await db.query('SELECT id, name, qty, note FROM contract_items'), [{ id: 'i1', name: 'first', qty: 3, note: null }]);
      assert.equal((await db.execute('UPDATE contract_items SET qty = qty + ? WHERE id = ?', [4, 'i1'])).changes, 1);
      assert.equal((await db.execute('UPDATE contract_items SET qty = 0 WHERE id = ?', ['missing'])).changes, 0);
      const [row] = await db.query<Item>('SELECT qty FROM contract_items WHERE id = ?', ['i1']);
      assert.equal(row?.qty, 7);
      assert.equal((await db.execute('DELETE FROM contract_items WHERE id = ?', ['i1'])).changes, 1);
      assert.deepEqual(await db.query('SELECT id FROM contract_items'), []);
    });

    it('binds parameters as values, never as SQL', async () => {
      const hostile = "x'); DROP TABLE contract_items; --";
      const blob = new Uint8Array([0, 1, 2, 255, 39, 92]);
      const epochMs = 4_102_444_800_000; // year 2100: beyond 32 bits, still exact in a double
      await db.execute('INSERT INTO contract_items (id, name, qty, note, payload) VALUES (?, ?, ?, ?, ?)', ['h', hostile, epochMs, null, blob]);
      await db.execute('INSERT INTO contract_items (id, name, qty, note) VALUES (?, ?, ?, ?)', ['b', 'bool', true, 'ünïcødé 🔐']);
      const [h] = await db.query<Item>('SELECT * FROM contract_items WHERE name = ?', [hostile]);
      assert.equal(h?.qty, epochMs);
      assert.equal(h?.note, null);
      assert.deepEqual(new Uint8Array(h?.payload ?? []), blob);
      const [b] = await db.query<Item>('SELECT qty, note FROM contract_items WHERE id = ?', ['b']);
      assert.deepEqual({ ...b }, { qty: 1, note: 'ünïcødé 🔐' });
    });

    it('round-trips arbitrary strings and safe integers', async () => {
      let n = 0;
      await fc.assert(fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.maxSafeInteger(), async (text, qty) => {
        const id = `p${n++}`;
        await db.execute('INSERT INTO contract_items (id, name, qty, note) VALUES (?, ?, ?, ?)', [id, id, qty, text]);
        const [row] = await db.query<Item>('SELECT qty, note FROM contract_items WHERE id = ?', [id]);
        assert.equal(row?.note, text);
        assert.equal(Number(row?.qty), qty);
      }), { numRuns: 60 });
    });

    it('maps unique violations to STORE_UNIQUE_VIOLATION', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['u1', 'same', 1]);
      await rejectsWithCode(db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['u2', 'same', 1]), 'STORE_UNIQUE_VIOLATION');
      await rejectsWithCode(db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['u1', 'other', 1]), 'STORE_UNIQUE_VIOLATION');
      // Byte-exact comparison on both dialects: case differs, so no violation.
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['u3', 'SAME', 1]);
      assert.equal((await db.query('SELECT id FROM contract_items')).length, 2);
    });

    it('maps other statement failures to STORE_QUERY_FAILED', async () => {
      await rejectsWithCode(db.query('SELECT * FROM no_such_table'), 'STORE_QUERY_FAILED');
      await rejectsWithCode(db.execute('INSERT INTO contract_items (id) VALUES (?)', ['missing-not-null']), 'STORE_QUERY_FAILED');
    });

    it('commits a transaction and returns its result', async () => {
      const result = await db.transaction(async (tx) => {
        await tx.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['t1', 'one', 1]);
        const rows = await tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM contract_items');
        return Number(rows[0]?.n);
      });
      assert.equal(result, 1);
      assert.equal((await db.query('SELECT id FROM contract_items')).length, 1);
    });

    it('rolls a transaction back when its function throws, and rethrows', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['keep', 'keep', 1]);
      const boom = new Error('boom');
      await assert.rejects(db.transaction(async (tx) => {
        await tx.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['gone', 'gone', 1]);
        await tx.execute('UPDATE contract_items SET qty = 99 WHERE id = ?', ['keep']);
        throw boom;
      }), (error) => error === boom);
      assert.deepEqual(await db.query('SELECT id, qty FROM contract_items'), [{ id: 'keep', qty: 1 }]);
      // A failing statement inside the transaction rolls back the earlier ones too.
      await rejectsWithCode(db.transaction(async (tx) => {
        await tx.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['gone2', 'gone2', 1]);
        await tx.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['dup', 'keep', 1]);
      }), 'STORE_UNIQUE_VIOLATION');
      assert.equal((await db.query('SELECT id FROM contract_items')).length, 1);
    });

    it('runs a batch in its transaction: each statement in order, with its changes or rows', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['b0', 'zero', 5]);
      const results = await db.transaction((tx) => tx.executeBatch([
        { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['b1', 'one', 1] },
        { sql: 'UPDATE contract_items SET qty = qty + ? WHERE id IN (?, ?)', params: [10, 'b0', 'b1'] },
        { sql: 'UPDATE contract_items SET qty = 0 WHERE id = ?', params: ['missing'] },
        // Sees the two statements before it: they ran first, in this transaction.
        { sql: 'SELECT id, qty FROM contract_items ORDER BY id', returnsRows: true },
        { sql: 'DELETE FROM contract_items WHERE id = ?', params: ['b0'] },
      ]));
      assert.deepEqual(results.map((result) => result.changes), [1, 2, 0, 0, 1]);
      assert.deepEqual(results[3]?.rows, [{ id: 'b0', qty: 15 }, { id: 'b1', qty: 11 }]);
      assert.deepEqual(results[0]?.rows, []);
      assert.deepEqual(await db.query('SELECT id, qty FROM contract_items'), [{ id: 'b1', qty: 11 }]);
    });

    it('stops a batch at its first failing statement, throws its error, and leaves the transaction to its caller', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['keep', 'keep', 1]);
      const seenInside = await db.transaction(async (tx) => {
        await rejectsWithCode(tx.executeBatch([
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['before', 'before', 1] },
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['dup', 'keep', 1] },
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['after', 'after', 1] },
        ]), 'STORE_UNIQUE_VIOLATION');
        // The statement before the failure ran, the one after it did not; the transaction goes on.
        return (await tx.query<{ id: string }>('SELECT id FROM contract_items ORDER BY id')).map((row) => row.id);
      });
      assert.deepEqual(seenInside, ['before', 'keep']);
      assert.deepEqual((await db.query<{ id: string }>('SELECT id FROM contract_items ORDER BY id')).map((row) => row.id), ['before', 'keep']);
      // Thrown on, it rolls the whole transaction back, the batch's earlier statements included.
      await rejectsWithCode(db.transaction((tx) => tx.executeBatch([
        { sql: 'UPDATE contract_items SET qty = 50 WHERE id = ?', params: ['keep'] },
        { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['dup2', 'keep', 1] },
      ])), 'STORE_UNIQUE_VIOLATION');
      assert.deepEqual(await db.query('SELECT qty FROM contract_items WHERE id = ?', ['keep']), [{ qty: 1 }]);
    });

    it('commits with a batch when asked: the transaction ends there, and a failing batch commits nothing', async () => {
      let leaked: Parameters<Parameters<SqlDatabase['transaction']>[0]>[0] | undefined;
      const boom = new Error('after the commit');
      // Committed by the batch: what the function throws afterwards rolls nothing back.
      await assert.rejects(db.transaction(async (tx) => {
        leaked = tx;
        await tx.executeBatch([
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['c1', 'one', 1] },
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['c2', 'two', 2] },
        ], { commit: true });
        await rejectsWithCode(tx.query('SELECT id FROM contract_items'), 'STORE_INVALID_ARGUMENT');
        throw boom;
      }), (error) => error === boom);
      assert.ok(leaked);
      await rejectsWithCode(leaked.executeBatch([{ sql: 'SELECT 1 AS one', returnsRows: true }]), 'STORE_INVALID_ARGUMENT');
      assert.deepEqual((await db.query<{ id: string }>('SELECT id FROM contract_items ORDER BY id')).map((row) => row.id), ['c1', 'c2']);
      // A failure stops the batch before its COMMIT: thrown on, the transaction rolls back, the earlier statements too.
      await rejectsWithCode(db.transaction((tx) => tx.executeBatch([
        { sql: 'UPDATE contract_items SET qty = 50 WHERE id = ?', params: ['c1'] },
        { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['dup', 'one', 1] },
      ], { commit: true })), 'STORE_UNIQUE_VIOLATION');
      assert.deepEqual(await db.query('SELECT qty FROM contract_items WHERE id = ?', ['c1']), [{ qty: 1 }]);
      // Caught, the transaction is still open and the caller's: it commits at the end as usual.
      await db.transaction(async (tx) => {
        await rejectsWithCode(tx.executeBatch([
          { sql: 'UPDATE contract_items SET qty = 60 WHERE id = ?', params: ['c1'] },
          { sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['dup', 'one', 1] },
        ], { commit: true }), 'STORE_UNIQUE_VIOLATION');
        await tx.execute('UPDATE contract_items SET qty = qty + 1 WHERE id = ?', ['c1']);
      });
      assert.deepEqual(await db.query('SELECT qty FROM contract_items WHERE id = ?', ['c1']), [{ qty: 61 }]);
    });

    it('guards an INSERT on the statement before it (whenPreviousChanged): a lost compare-and-set commits nothing', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['g', 'guarded', 1]);
      const guard = whenPreviousChanged(db.dialect, 1);
      const attempt = (fromQty: number, suffix: string) => db.transaction((tx) => tx.executeBatch([
        { sql: 'UPDATE contract_items SET qty = qty + 1 WHERE id = ? AND qty = ?', params: ['g', fromQty] },
        { sql: `INSERT INTO contract_items (id, name, qty) SELECT ?, ?, ?${guard}`, params: [`a-${suffix}`, `a-${suffix}`, 1] },
        { sql: `INSERT INTO contract_items (id, name, qty) SELECT ?, ?, ?${guard}`, params: [`b-${suffix}`, `b-${suffix}`, 1] },
      ], { commit: true }));
      assert.deepEqual((await attempt(1, 'won')).map((result) => result.changes), [1, 1, 1]);
      // The same compare-and-set again finds qty 2: it changes nothing, and neither guarded INSERT inserts.
      assert.deepEqual((await attempt(1, 'lost')).map((result) => result.changes), [0, 0, 0]);
      assert.deepEqual((await db.query<{ id: string }>('SELECT id FROM contract_items ORDER BY id')).map((row) => row.id), ['a-won', 'b-won', 'g']);
      // The guard counts rows: one on two changed rows does not insert.
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['g2', 'guarded2', 2]);
      const [, none] = await db.transaction((tx) => tx.executeBatch([
        { sql: 'UPDATE contract_items SET qty = qty + 1 WHERE id IN (?, ?)', params: ['g', 'g2'] },
        { sql: `INSERT INTO contract_items (id, name, qty) SELECT ?, ?, ?${guard}`, params: ['c', 'c', 1] },
      ]));
      assert.equal(none?.changes, 0);
      assert.throws(() => whenPreviousChanged(db.dialect, -1), (error: unknown) => SdcError.is(error, 'STORE_INVALID_ARGUMENT'));
    });

    it('refuses an empty batch, an oversized one, and a statement text holding a second statement', async () => {
      await db.transaction(async (tx) => {
        await rejectsWithCode(tx.executeBatch([]), 'STORE_INVALID_ARGUMENT');
        await rejectsWithCode(tx.executeBatch(Array.from({ length: 65 }, () => ({ sql: 'SELECT 1 AS one', returnsRows: true }))), 'STORE_INVALID_ARGUMENT');
        await rejectsWithCode(tx.executeBatch([
          { sql: "INSERT INTO contract_items (id, name, qty) VALUES ('x', 'x', 1); DELETE FROM contract_items" },
        ]), 'STORE_INVALID_ARGUMENT');
        // A hostile value is bound, not stacked: it is stored as text.
        await tx.executeBatch([{ sql: 'INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', params: ['h', "x'; DELETE FROM contract_items; --", 1] }]);
      });
      assert.deepEqual(await db.query('SELECT name FROM contract_items'), [{ name: "x'; DELETE FROM contract_items; --" }]);
    });

    it('refuses a transaction executor used after its transaction ended', async () => {
      let leaked: Parameters<Parameters<SqlDatabase['transaction']>[0]>[0] | undefined;
      await db.transaction(async (tx) => { leaked = tx; });
      assert.ok(leaked);
      await rejectsWithCode(leaked.query('SELECT 1 AS one'), 'STORE_INVALID_ARGUMENT');
    });

    it('serialises concurrent transactions without losing updates', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['c', 'counter', 0]);
      await Promise.all(Array.from({ length: 8 }, () => db.transaction(async (tx) => {
        // The row lock (MySQL) or the single connection (SQLite) makes read-modify-write safe.
        const rows = await tx.query<Item>(`SELECT qty FROM contract_items WHERE id = ?${db.dialect === 'mysql' ? ' FOR UPDATE' : ''}`, ['c']);
        await tx.execute('UPDATE contract_items SET qty = ? WHERE id = ?', [Number(rows[0]?.qty) + 1, 'c']);
      })));
      const [row] = await db.query<Item>('SELECT qty FROM contract_items WHERE id = ?', ['c']);
      assert.equal(row?.qty, 8);
    });

    it('reports the auto-increment id of an insert', async () => {
      const autoId = db.dialect === 'mysql' ? 'BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT';
      await db.execute(`CREATE TABLE contract_log (id ${autoId}, text VARCHAR(32) NOT NULL)`);
      const first = await db.execute('INSERT INTO contract_log (text) VALUES (?)', ['a']);
      const second = await db.execute('INSERT INTO contract_log (text) VALUES (?)', ['b']);
      assert.equal(typeof first.lastInsertId, 'number');
      assert.equal(second.lastInsertId, (first.lastInsertId ?? 0) + 1);
      assert.equal((await db.execute('DELETE FROM contract_log WHERE text = ?', ['none'])).lastInsertId, undefined);
      // A table keyed by a name has no auto-increment id (sql.js reported SQLite's hidden rowid, asked after every INSERT).
      await db.execute('CREATE TABLE contract_named (name VARCHAR(32) NOT NULL PRIMARY KEY)');
      assert.equal((await db.execute('INSERT INTO contract_named (name) VALUES (?)', ['a'])).lastInsertId, undefined);
    });

    it('applies each migration once, with per-dialect and shared SQL', async () => {
      const migrations: Migration[] = [
        { id: 'c001', sql: ['CREATE TABLE contract_m (id VARCHAR(16) NOT NULL PRIMARY KEY)'] },
        { id: 'c002', sqlite: ["INSERT INTO contract_m (id) VALUES ('sqlite')"], mysql: ["INSERT INTO contract_m (id) VALUES ('mysql')"] },
      ];
      assert.deepEqual(await migrate(db, migrations, { clock: fixedClock }), ['c001', 'c002']);
      assert.deepEqual(await migrate(db, migrations, { clock: fixedClock }), []);
      assert.deepEqual(await db.query('SELECT id FROM contract_m'), [{ id: db.dialect }]);
      const extended = [...migrations, { id: 'c003', sql: ["INSERT INTO contract_m (id) VALUES ('three')"] }];
      assert.deepEqual(await migrate(db, extended, { clock: fixedClock }), ['c003']);
      const recorded = await db.query<{ id: string; applied_at: number }>('SELECT id, applied_at FROM schema_migrations ORDER BY id');
      assert.deepEqual(recorded.map((r) => [r.id, Number(r.applied_at)]), [['c001', 1_700_000_000_000], ['c002', 1_700_000_000_000], ['c003', 1_700_000_000_000]]);
    });

    it('records nothing for a failing migration and refuses duplicate ids', async () => {
      const failing: Migration[] = [{ id: 'bad', sql: ['INSERT INTO no_such_table (id) VALUES (1)'] }];
      await rejectsWithCode(migrate(db, failing), 'STORE_MIGRATION_FAILED');
      assert.deepEqual(await db.query('SELECT id FROM schema_migrations'), []);
      await rejectsWithCode(migrate(db, [{ id: 'x', sql: [] }, { id: 'x', sql: [] }]), 'STORE_MIGRATION_FAILED');
    });

    it('runs the control-plane schema, idempotently, and its tables accept rows', async () => {
      assert.deepEqual(await migrate(db, controlPlaneMigrations, { clock: fixedClock }), ['001_initial_schema']);
      assert.deepEqual(await migrate(db, controlPlaneMigrations, { clock: fixedClock }), []);
      const t = 1_700_000_000_123;
      await db.execute('INSERT INTO devices (id, status, created_at, last_seen_at, cert_serial, cert_not_after, public_key) VALUES (?, ?, ?, ?, ?, ?, ?)', ['d1', 'active', t, t, 'ab01', t + 1, 'pk']);
      await db.execute('INSERT INTO pairing_tokens (token_hash, device_id, expires_at, used_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)', ['h', 'd1', t, null, 'admin', t]);
      await db.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)', ['ab01', 'd1', 'keyCompromise', t]);
      await db.execute('INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', ['u1', 'alice', 'admin', 'scrypt$..', t]);
      await db.execute('INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', ['u2', 'Alice', 'viewer', 'scrypt$..', t]);
      await rejectsWithCode(db.execute('INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', ['u3', 'alice', 'viewer', 'x', t]), 'STORE_UNIQUE_VIOLATION');
      const command = 'INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
      await db.execute(command, ['c1', 'd1', 'reboot', '{}', 'queued', 'alice', 'k1', 1, null, t, t, t]);
      await db.execute(command, ['c2', 'd1', 'reboot', '{}', 'queued', 'bob', 'k1', 2, null, t, t, t]);
      await db.execute(command, ['c3', 'd1', 'reboot', '{}', 'queued', 'alice', null, null, null, t, t, t]);
      await db.execute(command, ['c4', 'd1', 'reboot', '{}', 'queued', 'alice', null, null, null, t, t, t]);
      await rejectsWithCode(db.execute(command, ['c5', 'd1', 'reboot', '{}', 'queued', 'alice', 'k1', 3, null, t, t, t]), 'STORE_UNIQUE_VIOLATION');
      const [attempts] = await db.query<{ attempts: number }>('SELECT attempts FROM commands WHERE id = ?', ['c1']);
      assert.equal(attempts?.attempts, 0);
      const event = await db.execute('INSERT INTO command_events (command_id, state, at, detail_json) VALUES (?, ?, ?, ?)', ['c1', 'sent', t, '{"a":1}']);
      assert.equal(typeof event.lastInsertId, 'number');
      const bigJson = JSON.stringify({ metrics: 'x'.repeat(70_000) }); // over MySQL TEXT's 64 KiB
      await db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)', ['d1', t, bigJson, 0.25]);
      const [telemetry] = await db.query<{ metrics_json: string; risk_score: number }>('SELECT metrics_json, risk_score FROM telemetry WHERE device_id = ? AND ts >= ?', ['d1', t]);
      assert.equal(telemetry?.metrics_json.length, bigJson.length);
      assert.equal(telemetry?.risk_score, 0.25);
      await db.execute('INSERT INTO audit_log (seq, ts, kind, actor, subject, payload_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [1, t, 'login', 'alice', null, '{}', '00', 'h1']);
      await db.execute('INSERT INTO alerts (id, device_id, kind, severity, state, message, detail_json, created_at, updated_at, acknowledged_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', ['a1', 'd1', 'risk', 'high', 'open', 'risk above threshold', null, t, t, null]);
      const [device] = await db.query<{ created_at: number }>('SELECT created_at FROM devices WHERE id = ?', ['d1']);
      assert.equal(device?.created_at, t);
    });

    it('keeps committed data across close and reopen', async () => {
      await db.execute('INSERT INTO contract_items (id, name, qty) VALUES (?, ?, ?)', ['p1', 'persisted', 5]);
      await db.transaction(async (tx) => { await tx.execute('UPDATE contract_items SET qty = ? WHERE id = ?', [6, 'p1']); });
      await db.close();
      db = await target.create();
      assert.deepEqual(await db.query('SELECT id, qty FROM contract_items'), [{ id: 'p1', qty: 6 }]);
    });

    it('refuses use after close', async () => {
      const other = await target.create();
      await other.close();
      await rejectsWithCode(Promise.resolve().then(() => other.query('SELECT 1 AS one')), 'STORE_CLOSED');
      await other.close(); // closing twice is harmless
    });
  });
}
