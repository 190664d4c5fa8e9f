// Migration 021 (docs/decisions/0012-telemetry-sample-identity.md, "The key is the primary key")
// on a database that holds telemetry from before and after migration 020, on both SQL adapters
// (sql.js; MySQL/MariaDB with MYSQL_URL): every row is kept; rows with a NULL digest (stored before
// 020) get -id, distinct and never a real digest, so none of them is merged with another or with a
// new sample; on MySQL the identity is the clustered PRIMARY KEY with `id` a secondary index. After
// it the writer still stores a sample once and a new one beside a legacy row of the same device
// and millisecond. On MySQL, a run cut after the ALTER whose record was lost goes on as applied.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { controlPlaneMigration021 } from '../stores/sql/control-plane-migrations-021.js';
import { migrate, statementSql } from '../stores/sql/migrate.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { withOneByOneBatches } from '../stores/sql/sql-batch.js';
import { controlPlaneAllMigrations } from './database.js';
import { sampleDigestOf, TelemetryRowWriter } from './telemetry-rows.js';
import { SdcError } from '../../core/errors/index.js';
import { mysqlTarget, sqlJsTarget, storePairs, type SqlTarget } from './test-support.js';

const primaryKeyMigration = '021_telemetry_identity_primary_key';
const upTo = controlPlaneAllMigrations.findIndex((m) => m.id === primaryKeyMigration);
/** The migrations before 021 (020's identity key included). */
const before021 = controlPlaneAllMigrations.slice(0, Math.max(upTo, 0));
/** The migrations up to 021: rowsOf reads `id`, which migration 024 drops on MySQL. */
const through021 = controlPlaneAllMigrations.slice(0, upTo + 1);

interface Row { id: number; device_id: string; ts: number; metrics_json: string; sample_digest: number | null }
const rowsOf = async (db: SqlDatabase) => (await db.query<Row>('SELECT id, device_id, ts, metrics_json, sample_digest FROM telemetry ORDER BY id'))
  .map((r) => [Number(r.id), r.device_id, Number(r.ts), r.metrics_json, r.sample_digest === null ? null : Number(r.sample_digest)]);

/** The columns of the telemetry table's PRIMARY KEY on MySQL, in order. */
const mysqlPrimaryKeyOf = async (db: SqlDatabase) => (await db.query<{ column_name: string }>(
  "SELECT COLUMN_NAME AS column_name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'telemetry' AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX"))
  .map((r) => r.column_name);

function suite(target: SqlTarget): void {
  describe(`migration 021 (telemetry identity as the primary key) on ${target.name}`, () => {
    let dir: string;
    let db: SqlDatabase;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sdc-m021-'));
      db = await target.open(dir);
    });
    after(async () => {
      await db.close();
      await target.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps every row, gives NULL digests -id, and the writer then stores a sample once beside legacy rows', async () => {
      assert.ok(upTo > 0, 'migration 021 is listed');
      await migrate(db, before021);
      const legacy = 'INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)';
      const metricsJson = canonicalize({ cpu_pct: 1, mem_pct: 2 });
      await db.execute(legacy, ['d1', 1_000, metricsJson, 0.5]); // id 1: stored before 020 (NULL digest)
      await db.execute(legacy, ['d1', 1_000, '{"mem_pct":2,"cpu_pct":1}', 0.5]); // id 2: the same sample in another member order, also NULL
      await db.execute(legacy, ['d2', 1_000, metricsJson, 0.5]); // id 3: another device, NULL
      const writer = new TelemetryRowWriter(db);
      await writer.insert({ deviceId: 'd1', sampledAtMs: 1_001, metricsJson, riskScore: 0.5 }); // id 4: written since 020
      const digest = sampleDigestOf(metricsJson);

      assert.deepEqual(await migrate(db, through021), [primaryKeyMigration]);
      const migrated = [
        [1, 'd1', 1_000, metricsJson, -1],
        [2, 'd1', 1_000, '{"mem_pct":2,"cpu_pct":1}', -2],
        [3, 'd2', 1_000, metricsJson, -3],
        [4, 'd1', 1_001, metricsJson, digest],
      ];
      assert.deepEqual(await rowsOf(db), migrated);
      assert.deepEqual(await migrate(db, through021), [], 'applied once');
      if (db.dialect === 'mysql') assert.deepEqual(await mysqlPrimaryKeyOf(db), ['device_id', 'ts', 'sample_digest']);
      // The writer's MySQL form needs the table without `id` (migration 024: a one-row duplicate is told by its insert id).
      await migrate(db, controlPlaneAllMigrations);

      const duplicates: number[] = [];
      const writerAfter = new TelemetryRowWriter(db, { onDuplicates: (n) => duplicates.push(n) });
      // The legacy sample of d1 at 1,000 delivered again after the upgrade: stored once more (as 020 said of NULL digests), then once.
      await writerAfter.insert({ deviceId: 'd1', sampledAtMs: 1_000, metricsJson, riskScore: 0.5 });
      await writerAfter.insert({ deviceId: 'd1', sampledAtMs: 1_000, metricsJson, riskScore: 0.5 });
      // The sample stored since 020, one row and in a multi-row statement: skipped both times.
      await writerAfter.insert({ deviceId: 'd1', sampledAtMs: 1_001, metricsJson, riskScore: 0.5 });
      await Promise.all([
        writerAfter.insert({ deviceId: 'd1', sampledAtMs: 1_001, metricsJson, riskScore: 0.5 }),
        writerAfter.insert({ deviceId: 'd1', sampledAtMs: 1_002, metricsJson, riskScore: 0.5 }),
      ]);
      assert.deepEqual(duplicates, [1, 1, 1], 'each skipped sample counted');
      const stored = (await db.query<{ device_id: string; ts: number; sample_digest: number }>('SELECT device_id, ts, sample_digest FROM telemetry WHERE sample_digest >= 0 ORDER BY device_id, ts'))
        .map((r) => [r.device_id, Number(r.ts), Number(r.sample_digest)]);
      assert.deepEqual(stored, [['d1', 1_000, digest], ['d1', 1_001, digest], ['d1', 1_002, digest]]);
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair.sql);
if (pairs.length === 1) describe('migration 021 (telemetry identity as the primary key) on mysql', { skip: 'MYSQL_URL or REDIS_URL is not set' }, () => {});

const mysqlUrl = process.env['MYSQL_URL'];
const mysqlSkip = mysqlUrl === undefined || mysqlUrl === '';

/** A describe on a fresh MySQL database of its own (skipped without MYSQL_URL); `body` gets the database once open. */
function onFreshMysql(name: string, skipReason: string, body: (db: () => SqlDatabase) => void): void {
  describe(name, { skip: mysqlSkip ? skipReason : false }, () => {
    const target = mysqlTarget(mysqlUrl!);
    let db: SqlDatabase;
    before(async () => {
      db = await target.open('');
    });
    after(async () => {
      await db.close();
      await target.cleanup();
    });
    body(() => db);
  });
}

onFreshMysql('migration 021 on MySQL cut after its ALTER, the ALTER\'s record lost', 'MYSQL_URL is not set (SQLite runs a migration in one transaction)', (dbOf) => {
  it('counts the ALTER as applied on the next run and records the migration', async () => {
    const db = dbOf();
    await migrate(db, before021);
    await db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)', ['d1', 1_000, '{}', 0]);
    const [update, alter] = ('mysql' in controlPlaneMigration021 ? controlPlaneMigration021.mysql : []).map(statementSql);
    // What a cut leaves: both statements applied, only the first one's step recorded (the ALTER's own commit made it durable).
    await db.execute(update!);
    await db.execute('INSERT INTO schema_migration_steps (migration_id, step, applied_at) VALUES (?, 0, 0)', [primaryKeyMigration]);
    await db.execute(alter!);
    assert.deepEqual(await migrate(db, through021), [primaryKeyMigration]);
    assert.deepEqual(await mysqlPrimaryKeyOf(db), ['device_id', 'ts', 'sample_digest']);
    assert.deepEqual(await rowsOf(db), [[1, 'd1', 1_000, '{}', -1]]);
  });
});

// Review h11, finding 2: a run cut after the backfill (its step recorded by the old runner, made
// durable by the ALTER's implicit commit), then a NULL-digest row from an older replica still
// writing. The backfill was never run again, so the ALTER failed "Data truncated for column
// 'sample_digest'" on every later start. Now the backfill runs on every run until 021 is recorded.
const legacyInsert = 'INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)';
onFreshMysql('migration 021 on MySQL resumed after its backfill, a NULL-digest row written in between', 'MYSQL_URL is not set', (dbOf) => {

  it('backfills the new row and applies the ALTER on the next run', async () => {
    const db = dbOf();
    await migrate(db, before021);
    await db.execute(legacyInsert, ['d1', 1_000, '{}', 0]);
    const [update] = ('mysql' in controlPlaneMigration021 ? controlPlaneMigration021.mysql : []).map(statementSql);
    // What the cut left: the backfill applied and its step recorded, the ALTER not run.
    await db.execute(update!);
    await db.execute('INSERT INTO schema_migration_steps (migration_id, step, applied_at) VALUES (?, 0, 0)', [primaryKeyMigration]);
    await db.execute(legacyInsert, ['d1', 2_000, '{}', 0]); // an older replica's row: NULL digest
    assert.deepEqual(await migrate(db, through021), [primaryKeyMigration]);
    assert.deepEqual(await mysqlPrimaryKeyOf(db), ['device_id', 'ts', 'sample_digest']);
    assert.deepEqual(await rowsOf(db), [[1, 'd1', 1_000, '{}', -1], [2, 'd1', 2_000, '{}', -2]]);
    assert.deepEqual(await db.query('SELECT step FROM schema_migration_steps WHERE migration_id = ?', [primaryKeyMigration]), [], 'its step records are gone');
  });
});

describe('migration 021 on sql.js cut after its backfill, a NULL-digest row written in between', () => {
  let dir: string;
  let db: SqlDatabase;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdc-m021-cut-'));
    db = await sqlJsTarget.open(dir);
  });
  after(async () => {
    await db.close();
    await sqlJsTarget.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('the cut run is rolled back whole and the next run backfills both rows', async () => {
    await migrate(db, before021);
    await db.execute(legacyInsert, ['d1', 1_000, '{}', 0]);
    const backfill = statementSql(('sqlite' in controlPlaneMigration021 ? controlPlaneMigration021.sqlite : [])[0]!);
    const cutAfterBackfill = (tx: SqlExecutor): SqlExecutor => ({
      dialect: tx.dialect,
      query: (sql, params) => tx.query(sql, params),
      execute: async (sql, params) => {
        const result = await tx.execute(sql, params);
        if (sql === backfill) throw new SdcError('STORE_UNAVAILABLE', 'cut after the backfill');
        return result;
      },
    });
    const cut: SqlDatabase = { ...db, dialect: db.dialect, query: (sql, params) => db.query(sql, params), execute: (sql, params) => db.execute(sql, params), transaction: (fn) => db.transaction((tx) => fn(withOneByOneBatches(cutAfterBackfill(tx)))) };
    await assert.rejects(migrate(cut, controlPlaneAllMigrations), /cut after the backfill/);
    assert.deepEqual(await rowsOf(db), [[1, 'd1', 1_000, '{}', null]], 'rolled back whole (one SQLite transaction)');
    await db.execute(legacyInsert, ['d1', 2_000, '{}', 0]);
    assert.deepEqual(await migrate(db, controlPlaneAllMigrations), [primaryKeyMigration, ...controlPlaneAllMigrations.slice(upTo + 1).map((m) => m.id)]);
    assert.deepEqual(await rowsOf(db), [[1, 'd1', 1_000, '{}', -1], [2, 'd1', 2_000, '{}', -2]]);
  });
});
