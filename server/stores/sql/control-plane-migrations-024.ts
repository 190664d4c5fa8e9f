import type { Migration } from './migrate.js';

/**
 * 024: on MySQL/MariaDB the telemetry table loses its `id` column and that column's index: a row is
 * one entry in one B-tree, the clustered PRIMARY KEY (device_id, ts, sample_digest) that migration
 * 021 made, and no AUTO_INCREMENT value is taken per row. After 021 every INSERT still wrote a
 * second B-tree (the `telemetry_id` index InnoDB requires for an AUTO_INCREMENT column) and drew an
 * id no query reads; issue 17's store path without it cost 1.2-3.8 µs less of mariadbd CPU per
 * row in 5 of 6 pairs, the same in one (7.4-12.4 against 9.9-12.4; docs/benchmarks.md, 2026-12-06
 * night (h6); 2026-12-05 evening (later still) first measured it). Nothing finds telemetry by `id`: every query filters on device_id (and ts), the
 * primary key's prefix, and the retention trim deletes by (device_id, ts). The writer's one-row
 * INSERT told a skipped duplicate from a stored sample by the insert id; it now asks the server
 * with `LAST_INSERT_ID(1)` in its ON DUPLICATE KEY UPDATE (TelemetryRowWriter), which answers an
 * insert id only for a duplicate.
 *
 * SQLite keeps its `id` (the table is a rowid table; migration 021's note): nothing to run there.
 *
 * One ALTER (the index and the column together, applied whole or not at all), online: MariaDB
 * 10.11 and MySQL 8 rebuild the table in place with concurrent DML (asked for, so that a server
 * that cannot do it fails rather than blocking writes). Run again after a cut, it fails
 * ER_CANT_DROP_FIELD_OR_KEY, which migrate() takes as applied for the first unrecorded step.
 */
export const controlPlaneMigration024: Migration = {
  id: '024_telemetry_without_id',
  sqlite: [],
  mysql: ['ALTER TABLE telemetry DROP INDEX telemetry_id, DROP COLUMN id, ALGORITHM=INPLACE, LOCK=NONE'],
};
