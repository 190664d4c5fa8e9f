import type { Migration } from './migrate.js';

/**
 * 007: the audit outbox (docs/audit.md, issues 16.1 and 18.3). A change and the audit input
 * that records it are written in one transaction; the audit log moves each input into the hash
 * chain (`audit_log`) and deletes it in another, so a crash between the two leaves the input
 * here for the next drain instead of losing the entry. `id` orders inputs as they committed.
 * Column widths follow audit_log (migration 005).
 */
export const controlPlaneMigration007: Migration = {
  id: '007_audit_outbox',
  sqlite: [
    `CREATE TABLE audit_outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      ts BIGINT NOT NULL,
      kind VARCHAR(64) NOT NULL,
      actor VARCHAR(256) NOT NULL,
      subject VARCHAR(256) NOT NULL,
      payload_json TEXT NOT NULL
    )`,
  ],
  mysql: [
    `CREATE TABLE audit_outbox (
      id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      ts BIGINT NOT NULL,
      kind VARCHAR(64) NOT NULL,
      actor VARCHAR(256) NOT NULL,
      subject VARCHAR(256) NOT NULL,
      payload_json LONGTEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
