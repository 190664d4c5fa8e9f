import type { Migration } from './migrate.js';

/**
 * 023: rollouts that wait for approvals (docs/ota.md, "Rollouts that need approvals").
 * `ota_rollouts.approval_json`: for a rollout the command policy lets start only with approvals,
 * what it waits for (the rule, count and roles, the policy revision), the subject approvers sign
 * (core/ota/rollout-approval.ts) with its hash, and once the wait ended how (`outcome`: started
 * with which approvals, rejected, expired, aborted). NULL for every rollout that needed none.
 * The approvers' decisions are rows of `command_approvals` (migration 012) keyed by the rollout's
 * id (`ro-...`, never a command's `c_...`): one signed decision per rollout and approver, refused
 * twice by that table's primary key, as for commands. `ota_rollouts.status` (VARCHAR(16)) holds
 * the new statuses `pending_approval`, `rejected` and `expired` as it is.
 * One ALTER on each dialect; re-run on MySQL after a cut, ER_DUP_FIELDNAME counts as applied.
 */
export const controlPlaneMigration023: Migration = {
  id: '023_ota_rollout_approvals',
  sqlite: ['ALTER TABLE ota_rollouts ADD COLUMN approval_json TEXT NULL'],
  mysql: ['ALTER TABLE ota_rollouts ADD COLUMN approval_json LONGTEXT NULL'],
};
