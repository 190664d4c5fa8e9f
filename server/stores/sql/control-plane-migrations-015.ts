import type { Migration } from './migrate.js';

/**
 * 015: policy bundle reports (issue 12, docs/policy.md "The device's policy bundle"). One row
 * per (device, bundle version, outcome) a device reported, inserted in the same transaction as
 * its `policy_bundle.accepted` / `policy_bundle.refused` audit entry, so the audit chain holds
 * each outcome once however often the gateway pushes the same bundle (every AUTH, every re-sign)
 * and across control planes sharing the database (the primary key turns a second insert into a
 * unique violation, not a second entry).
 */
export const controlPlaneMigration015: Migration = {
  id: '015_policy_bundle_reports',
  sqlite: [
    `CREATE TABLE policy_bundle_reports (
      device_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      outcome TEXT NOT NULL,
      code TEXT NULL,
      gateway_id TEXT NOT NULL,
      reported_at INTEGER NOT NULL,
      PRIMARY KEY (device_id, version, outcome)
    )`,
  ],
  mysql: [
    `CREATE TABLE policy_bundle_reports (
      device_id VARCHAR(64) NOT NULL,
      version BIGINT NOT NULL,
      outcome VARCHAR(16) NOT NULL,
      code VARCHAR(64) NULL,
      gateway_id VARCHAR(64) NOT NULL,
      reported_at BIGINT NOT NULL,
      PRIMARY KEY (device_id, version, outcome)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
