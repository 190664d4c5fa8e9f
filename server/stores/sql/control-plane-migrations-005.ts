import type { Migration } from './migrate.js';

/**
 * 005: audit actor and subject columns as wide as the audit chain allows (256 characters,
 * core/protocol/audit-chain.ts auditLimits.nameLengthMax). MySQL enforced 128/255 and would
 * refuse a long actor that the chain accepts; SQLite does not enforce VARCHAR lengths.
 */
export const controlPlaneMigration005: Migration = {
  id: '005_audit_name_width',
  sqlite: [],
  mysql: ['ALTER TABLE audit_log MODIFY actor VARCHAR(256) NOT NULL, MODIFY subject VARCHAR(256) NULL'],
};
