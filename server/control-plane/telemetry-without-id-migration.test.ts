// Migration 024 (server/stores/sql/control-plane-migrations-024.ts): on MySQL/MariaDB the telemetry
// table loses `id` and its index, every row kept, the identity primary key unchanged; run again
// after a cut that lost the ALTER's record, it counts as applied. The writer then still stores a
// sample once and counts a skipped one, in a one-row statement (told by LAST_INSERT_ID(1)'s insert
// id) and in a multi-row one. On sql.js the migration runs nothing and `id` stays.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { controlPlaneMigration024 } from '../stores/sql/control-plane-migrations-024.js';
import { migrate, statementSql } from '../stores/sql/migrate.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { controlPlaneAllMigrations } from './database.js';
import { sampleDigestOf, TelemetryRowWriter } from './telemetry-rows.js';
import { mysqlTarget, sqlJsTarget, type SqlTarget } from './test-support.js';

const withoutIdMigration = '024_telemetry_without_id';
const upTo = controlPlaneAllMigrations.findIndex((m) => m.id === withoutIdMigration);
const before024 = controlPlaneAllMigrations.slice(0, Math.max(upTo, 0));

const columnsOf = async (db: SqlDatabase): Promise<string[]> => (db.dialect === 'mysql'
  ? (await db.query<{ name: string }>("SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'telemetry' ORDER BY ORDINAL_POSITION")).map((r) => r.name)
  : (await db.query<{ name: string }>("SELECT name FROM pragma_table_info('telemetry') ORDER BY cid")).map((r) => r.name));

const rowsOf = async (db: SqlDatabase) => (await db.query<{ device_id: string; ts: number; metrics_json: string; sample_digest: number }>(
  'SELECT device_id, ts, metrics_json, sample_digest FROM telemetry ORDER BY device_id, ts, sample_digest'))
  .map((r) => [r.device_id, Number(r.ts), r.metrics_json, Number(r.sample_digest)]);

function suite(target: SqlTarget): void {
  describe(`migration 024 (telemetry without id) on ${target.name}`, () => {
    let dir: string;
    let db: SqlDatabase;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sdc-m024-'));
      db = await target.open(dir);
    });
    after(async () => {
      await db.close();
      await target.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps every row, drops id on MySQL only, and the writer stores a sample once and counts each skipped one', async () => {
      assert.ok(upTo > 0, 'migration 024 is listed');
      await migrate(db, before024);
      const metricsJson = canonicalize({ cpu_pct: 1, mem_pct: 2 });
      const digest = sampleDigestOf(metricsJson);
      const insert = 'INSERT INTO telemetry (device_id, ts, metrics_json, risk_score, sample_digest) VALUES (?, ?, ?, ?, ?)';
      await db.execute(insert, ['d1', 1_000, metricsJson, 0.5, digest]);
      await db.execute(insert, ['d2', 1_000, metricsJson, 0.5, digest]);
      assert.ok((await columnsOf(db)).includes('id'));

      assert.deepEqual(await migrate(db, controlPlaneAllMigrations), [withoutIdMigration, ...controlPlaneAllMigrations.slice(upTo + 1).map((m) => m.id)]);
      assert.deepEqual(await rowsOf(db), [['d1', 1_000, metricsJson, digest], ['d2', 1_000, metricsJson, digest]]);
      assert.equal((await columnsOf(db)).includes('id'), db.dialect === 'sqlite', 'id dropped on MySQL, kept on SQLite');
      assert.deepEqual(await migrate(db, controlPlaneAllMigrations), [], 'applied once');

      const duplicates: number[] = [];
      const writer = new TelemetryRowWriter(db, { onDuplicates: (n) => duplicates.push(n) });
      // One-row statements: a new sample is stored and not counted; the stored ones are skipped and counted, one each.
      await writer.insert({ deviceId: 'd1', sampledAtMs: 1_001, metricsJson, riskScore: 0.5 });
      assert.deepEqual(duplicates, [], 'a stored sample is not a duplicate');
      await writer.insert({ deviceId: 'd1', sampledAtMs: 1_001, metricsJson, riskScore: 0.5 });
      await writer.insert({ deviceId: 'd1', sampledAtMs: 1_000, metricsJson, riskScore: 0.5 });
      assert.deepEqual(duplicates, [1, 1]);
      // A multi-row statement: one skipped, one stored.
      await Promise.all([
        writer.insert({ deviceId: 'd2', sampledAtMs: 1_000, metricsJson, riskScore: 0.5 }),
        writer.insert({ deviceId: 'd2', sampledAtMs: 1_002, metricsJson, riskScore: 0.5 }),
      ]);
      assert.deepEqual(duplicates, [1, 1, 1]);
      assert.deepEqual(await rowsOf(db), [
        ['d1', 1_000, metricsJson, digest], ['d1', 1_001, metricsJson, digest],
        ['d2', 1_000, metricsJson, digest], ['d2', 1_002, metricsJson, digest],
      ]);
    });
  });
}

suite(sqlJsTarget);
const mysqlUrl = process.env['MYSQL_URL'];
if (mysqlUrl === undefined || mysqlUrl === '') {
  describe('migration 024 (telemetry without id) on mysql', { skip: 'MYSQL_URL is not set' }, () => {});
} else {
  suite(mysqlTarget(mysqlUrl));

  describe('migration 024 on MySQL cut after its ALTER, the ALTER\'s record lost', () => {
    const target = mysqlTarget(mysqlUrl);
    let db: SqlDatabase;
    before(async () => {
      db = await target.open('');
    });
    after(async () => {
      await db.close();
      await target.cleanup();
    });

    it('counts the ALTER as applied on the next run and records the migration', async () => {
      await migrate(db, before024);
      await db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score, sample_digest) VALUES (?, ?, ?, ?, ?)', ['d1', 1_000, '{}', 0, 7]);
      const [alter] = ('mysql' in controlPlaneMigration024 ? controlPlaneMigration024.mysql : []).map(statementSql);
      await db.execute(alter!);
      assert.deepEqual(await migrate(db, controlPlaneAllMigrations), [withoutIdMigration, ...controlPlaneAllMigrations.slice(upTo + 1).map((m) => m.id)]);
      assert.deepEqual(await rowsOf(db), [['d1', 1_000, '{}', 7]]);
      assert.equal((await columnsOf(db)).includes('id'), false);
    });
  });
}
