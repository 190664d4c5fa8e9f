import type { Migration } from './migrate.js';

/**
 * 021: on MySQL/MariaDB a telemetry sample's identity (device_id, ts, sample_digest; migration 020,
 * docs/decisions/0012-telemetry-sample-identity.md) is the table's clustered PRIMARY KEY instead of
 * a UNIQUE secondary index beside a PRIMARY KEY on `id`. With the secondary key every INSERT made
 * two B-tree inserts, the secondary one a random descent with InnoDB's unique check (it cannot be
 * deferred) and its locks; on Redis + MariaDB at K = 32 that cost 29-52 % of ingest
 * (docs/benchmarks.md, 2026-12-05 evening). Now the uniqueness check is the row's own insert. `id`
 * stays (AUTO_INCREMENT, an ordinary index, which InnoDB requires for such a column): the writer's
 * one-row INSERT tells a stored sample from a skipped one by its insert id, and tests order by it;
 * no query finds rows by it. Every telemetry query filters on device_id (and ts), a prefix of the
 * new primary key, so no other index is needed.
 *
 * A primary key column cannot be NULL, so rows stored before migration 020 (NULL digest) get
 * `-id` first: distinct per row and negative, so never equal to a real digest (0 to 2^53 - 1) nor
 * to another row's. That keeps 020's handling of them (never deduplicated against) with a value a
 * key can hold; it is deterministic, and the same on SQLite. On SQLite the table stays a rowid
 * table with 020's UNIQUE index (a WITHOUT ROWID table cannot keep an AUTOINCREMENT id, and the
 * embedded ingest did not show the key's cost there); only the backfill runs, and the column stays
 * declared NULL (adding NOT NULL means rebuilding the table): the writer always binds a digest.
 *
 * On MySQL the column, the keys and the dropped index are one ALTER: applied whole or not at all.
 * Run again (issue 11, a migration cut after the ALTER and before its record), the UPDATE finds
 * nothing and the ALTER fails as ER_CANT_DROP_FIELD_OR_KEY / ER_DUP_KEYNAME, which migrate() takes
 * as applied for the first unrecorded step.
 */
const backfill = 'UPDATE telemetry SET sample_digest = -id WHERE sample_digest IS NULL';

export const controlPlaneMigration021: Migration = {
  id: '021_telemetry_identity_primary_key',
  sqlite: [backfill],
  mysql: [
    // Run again on every run until the migration is recorded (review h11, finding 2): a cut after
    // it was recorded, then a NULL-digest row from an older replica, made the ALTER fail
    // "Data truncated for column 'sample_digest'" on every later start. Idempotent.
    { sql: backfill, rerunOnResume: true },
    // Online (MariaDB 10.11 and MySQL 8 rebuild the table in place with concurrent DML for this
    // primary key change; it needs the default strict sql_mode for the NOT NULL). Asked for
    // explicitly so that a server that cannot do it fails instead of blocking writes for the
    // whole rebuild. A NULL-digest row written during the rebuild fails the ALTER at its end;
    // the next run backfills it and runs the ALTER again (docs/deployment.md, upgrading past 021).
    `ALTER TABLE telemetry
      MODIFY sample_digest BIGINT NOT NULL,
      DROP PRIMARY KEY,
      ADD PRIMARY KEY (device_id, ts, sample_digest),
      ADD INDEX telemetry_id (id),
      DROP INDEX telemetry_sample,
      ALGORITHM=INPLACE, LOCK=NONE`,
  ],
};
