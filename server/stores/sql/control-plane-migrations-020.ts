import type { Migration } from './migrate.js';

/**
 * 020: a telemetry sample is stored once however often it is delivered (docs/decisions/0012-telemetry-sample-identity.md). A
 * sample's identity is its device, its time (`ts`, the sampled_at in ms) and `sample_digest`: the
 * first 53 bits of SHA-256 over the canonical JSON (RFC 8785) of its metrics, a non-negative
 * BIGINT (server/control-plane/telemetry-rows.ts sampleDigestOf says why 53 bits are enough). The
 * first form of this migration (never released) kept 128 bits as CHAR(32) hex: the key's entries
 * twice the old index's, and 4-5 µs more service CPU per sample on sql.js (docs/benchmarks.md,
 * 2026-12-05 evening), so it was changed in place. The UNIQUE key on the three makes the
 * writer's INSERT skip a sample already stored (a retried bus append, a redelivered entry, an
 * agent's resend) instead of storing it again. It replaces telemetry_device_ts, whose columns are
 * its prefix, so every query that used that index uses this one and an INSERT still updates one
 * secondary index.
 *
 * Rows stored before this migration keep a NULL digest: neither SQLite nor sql.js can compute a
 * SHA-256 in SQL, and the stored text is the metrics as the frame ordered them, not canonical.
 * NULLs never collide in a UNIQUE key on either dialect, so those rows are not deduplicated
 * against (a sample stored before the upgrade and delivered again after it is stored once more).
 * Duplicates among them are deleted first: rows of one device with the same ts and the byte-same
 * metrics_json (the same frame written twice by the same code), keeping the lowest id. Two such
 * rows carry no information apart, so keeping one loses nothing.
 *
 * Every statement can run again (issue 11, MySQL resumes a migration cut between statements):
 * the DELETE finds nothing the second time; the ALTER / CREATE fail as "already there"
 * (ER_DUP_FIELDNAME, ER_DUP_KEYNAME), which migrate() takes as applied for the first unrecorded
 * step. On MySQL the column and the index change are one ALTER (one table change, not three).
 */
export const controlPlaneMigration020: Migration = {
  id: '020_telemetry_sample_identity',
  sqlite: [
    `DELETE FROM telemetry WHERE EXISTS (
      SELECT 1 FROM telemetry AS kept
      WHERE kept.device_id = telemetry.device_id AND kept.ts = telemetry.ts AND kept.metrics_json = telemetry.metrics_json AND kept.id < telemetry.id
    )`,
    'ALTER TABLE telemetry ADD COLUMN sample_digest BIGINT NULL',
    'CREATE UNIQUE INDEX telemetry_sample ON telemetry (device_id, ts, sample_digest)',
    'DROP INDEX telemetry_device_ts',
  ],
  mysql: [
    // MySQL refuses a subquery on the table a DELETE deletes from; the multi-table form is its way.
    `DELETE later FROM telemetry AS later JOIN telemetry AS kept
      ON kept.device_id = later.device_id AND kept.ts = later.ts AND kept.metrics_json = later.metrics_json AND kept.id < later.id`,
    `ALTER TABLE telemetry
      ADD COLUMN sample_digest BIGINT NULL,
      ADD UNIQUE INDEX telemetry_sample (device_id, ts, sample_digest),
      DROP INDEX telemetry_device_ts`,
  ],
};
