import type { Migration } from './migrate.js';

/**
 * 019: when an operator's cancel was applied to an OTA execution (docs/ota.md "A notice the
 * device missed"). After the commit a cancel moves the execution to `rolling_back`, as the
 * device's own failed health check does; only this column tells the two apart, so that a report
 * showing the device missed the cancel pushes the cancel again (server/ota/rollouts.ts
 * #repushIfMissed) and a notice pushed for any other reason keeps its cancel flag. NULL for an
 * execution never canceled (and for those canceled before this migration).
 */
export const controlPlaneMigration019: Migration = {
  id: '019_ota_execution_canceled_at',
  sql: ['ALTER TABLE ota_executions ADD COLUMN canceled_at BIGINT NULL'],
};
