import type { Migration } from './migrate.js';

/**
 * 025: approvals for a resume past a safety stop (decision 0019, docs/ota.md "Resuming after a
 * safety stop"). `ota_rollouts.resume_request_id`: the id (`rr-…`) of the resume request waiting
 * for approvals, NULL when none waits; every write that starts or ends a wait is a compare-and-set
 * on it, so of two control planes (an approval resuming, an operator aborting) one wins.
 * `ota_rollouts.resume_approval_json`: the latest request (what it waits for, the subject
 * approvers sign with its hash, and once ended how), kept after it ended for the rollout's view;
 * earlier ones are in the audit log. The approvers' decisions are rows of `command_approvals`
 * (migration 012) under the request's id, one per approver, as for commands and rollout starts.
 * Two ALTERs on each dialect; re-run on MySQL after a cut, ER_DUP_FIELDNAME counts as applied.
 */
export const controlPlaneMigration025: Migration = {
  id: '025_ota_rollout_resume_approvals',
  sqlite: ['ALTER TABLE ota_rollouts ADD COLUMN resume_request_id VARCHAR(64) NULL', 'ALTER TABLE ota_rollouts ADD COLUMN resume_approval_json TEXT NULL'],
  mysql: ['ALTER TABLE ota_rollouts ADD COLUMN resume_request_id VARCHAR(64) NULL', 'ALTER TABLE ota_rollouts ADD COLUMN resume_approval_json LONGTEXT NULL'],
};
