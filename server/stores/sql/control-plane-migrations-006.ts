import type { Migration } from './migrate.js';

/**
 * 006: when an alert was acknowledged (`acknowledged_by` already names who), and an index for
 * the alert list's newest-first keyset pages when no device is named.
 */
export const controlPlaneMigration006: Migration = {
  id: '006_alert_acknowledged_at',
  sqlite: [
    'ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT NULL',
    'CREATE INDEX alerts_created ON alerts (created_at, id)',
  ],
  mysql: [
    'ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT NULL',
    'CREATE INDEX alerts_created ON alerts (created_at, id)',
  ],
};
