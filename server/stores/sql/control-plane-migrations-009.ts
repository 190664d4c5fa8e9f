import type { Migration } from './migrate.js';

/**
 * 009: the policy in SQL (issue 12, docs/policy.md "Stored policy"). One row per revision, never
 * updated or deleted, so every policy that was ever in force stays readable next to the audit
 * entries that name its revision. `revision` is the primary key: two control planes that both
 * try to store the next revision collide on it, and the loser is refused as stale. The current
 * policy is the row with the highest revision; none means the built-in default (revision 0).
 */
export const controlPlaneMigration009: Migration = {
  id: '009_policy_revisions',
  sqlite: [
    `CREATE TABLE policy_revisions (
      revision BIGINT NOT NULL PRIMARY KEY,
      document_json TEXT NOT NULL,
      document_sha256 CHAR(64) NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL
    )`,
  ],
  mysql: [
    `CREATE TABLE policy_revisions (
      revision BIGINT NOT NULL PRIMARY KEY,
      document_json LONGTEXT NOT NULL,
      document_sha256 CHAR(64) NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
