// Migration 020 (docs/decisions/0012-telemetry-sample-identity.md) on a database that already holds
// duplicate telemetry rows, on both SQL adapters (sql.js; MySQL/MariaDB with MYSQL_URL): the later
// copies of a row (same device, ts and metrics_json) are deleted, the first id kept; rows that
// differ in device, time or metrics all stay, with a NULL digest; after it the writer stores a new
// sample once however often it is written, and running the migrations again changes nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { migrate } from '../stores/sql/migrate.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { controlPlaneAllMigrations } from './database.js';
import { sampleDigestOf, TelemetryRowWriter } from './telemetry-rows.js';
import { storePairs, type SqlTarget } from './test-support.js';

const identityMigration = '020_telemetry_sample_identity';

function suite(target: SqlTarget): void {
  describe(`migration 020 (telemetry sample identity) on ${target.name}`, () => {
    let dir: string;
    let db: SqlDatabase;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sdc-m020-'));
      db = await target.open(dir);
    });
    after(async () => {
      await db.close();
      await target.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps the first of each set of duplicate rows and every distinct row; the writer then stores a sample once', async () => {
      const upTo = controlPlaneAllMigrations.findIndex((m) => m.id === identityMigration);
      assert.ok(upTo > 0, 'migration 020 is listed');
      await migrate(db, controlPlaneAllMigrations.slice(0, upTo));
      const rows: Array<[string, number, string]> = [
        ['d1', 1_000, '{"cpu_pct":1}'], // id 1: kept
        ['d1', 1_000, '{"cpu_pct":1}'], // id 2: a duplicate of 1
        ['d1', 1_000, '{"cpu_pct":2}'], // id 3: same time, other metrics: kept
        ['d1', 1_001, '{"cpu_pct":1}'], // id 4: same metrics, other time: kept
        ['d2', 1_000, '{"cpu_pct":1}'], // id 5: another device: kept
        ['d1', 1_000, '{"cpu_pct":1}'], // id 6: a duplicate of 1
        ['d1', 1_001, '{"cpu_pct":1}'], // id 7: a duplicate of 4
        ['d1', 1_000, '{"cpu_pct":2}'], // id 8: a duplicate of 3
      ];
      for (const [deviceId, ts, json] of rows) {
        await db.execute('INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES (?, ?, ?, ?)', [deviceId, ts, json, 0.5]);
      }
      // Up to 020 only: 021 (telemetry-identity-primary-key-migration.test.ts) then gives the NULL digests a value.
      assert.deepEqual(await migrate(db, controlPlaneAllMigrations.slice(0, upTo + 1)), [identityMigration]);
      const kept = await db.query<{ id: number; device_id: string; ts: number; metrics_json: string; sample_digest: number | null }>(
        'SELECT id, device_id, ts, metrics_json, sample_digest FROM telemetry ORDER BY id');
      assert.deepEqual(kept.map((r) => [Number(r.id), r.device_id, Number(r.ts), r.metrics_json, r.sample_digest]), [
        [1, 'd1', 1_000, '{"cpu_pct":1}', null],
        [3, 'd1', 1_000, '{"cpu_pct":2}', null],
        [4, 'd1', 1_001, '{"cpu_pct":1}', null],
        [5, 'd2', 1_000, '{"cpu_pct":1}', null],
      ]);
      assert.deepEqual(await migrate(db, controlPlaneAllMigrations.slice(0, upTo + 1)), [], 'applied once');
      await migrate(db, controlPlaneAllMigrations);

      const writer = new TelemetryRowWriter(db);
      const metricsJson = canonicalize({ mem_pct: 3, cpu_pct: 9 });
      const row = { deviceId: 'd1', sampledAtMs: 2_000, metricsJson, riskScore: 1 };
      await writer.insert(row);
      await writer.insert(row);
      await Promise.all([writer.insert(row), writer.insert({ ...row, sampledAtMs: 2_001 })]);
      const stored = await db.query<{ ts: number; sample_digest: number | null }>('SELECT ts, sample_digest FROM telemetry WHERE device_id = ? AND ts >= ? ORDER BY ts', ['d1', 2_000]);
      assert.deepEqual(stored.map((r) => [Number(r.ts), r.sample_digest === null ? null : Number(r.sample_digest)]), [[2_000, sampleDigestOf(metricsJson)], [2_001, sampleDigestOf(metricsJson)]]);
      const digest = sampleDigestOf(metricsJson);
      assert.ok(Number.isSafeInteger(digest) && digest >= 0, `a 53-bit digest, not ${digest}`);
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair.sql);
if (pairs.length === 1) describe('migration 020 (telemetry sample identity) on mysql', { skip: 'MYSQL_URL or REDIS_URL is not set' }, () => {});
