import type { Migration } from './migrate.js';

/**
 * 016: OTA rollouts and their per-device executions (issue 10, docs/ota.md "Rollouts").
 * - `ota_rollouts`: one row per rollout, the coordinator's record (core/ota/rollout-decisions.ts
 *   RolloutRecord: plan, waves fixed at start, status, current wave, what the operator accepted)
 *   as JSON, with its status copied into a column for listing, and the platform the director
 *   names in every document.
 * - `ota_executions`: one row per device of a rollout once it is notified; its state
 *   (core/ota/execution-machine.ts), when it and its current state began (the timeouts count from
 *   there), the health check's nonce, the release counters (target, previous) and the notice the
 *   device gets (director's document, signed kernel commands). `(rollout_id, device_id)` is unique:
 *   a device runs a rollout once.
 */
export const controlPlaneMigration016: Migration = {
  id: '016_ota_rollouts',
  sqlite: [
    `CREATE TABLE ota_rollouts (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      release_id VARCHAR(128) NOT NULL,
      platform VARCHAR(64) NOT NULL,
      status VARCHAR(16) NOT NULL,
      record_json TEXT NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    )`,
    'CREATE INDEX ota_rollouts_status ON ota_rollouts (status)',
    `CREATE TABLE ota_executions (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      rollout_id VARCHAR(64) NOT NULL,
      device_id VARCHAR(64) NOT NULL,
      wave INTEGER NOT NULL,
      state VARCHAR(16) NOT NULL,
      created_at BIGINT NOT NULL,
      state_entered_at BIGINT NOT NULL,
      ended_at BIGINT NULL,
      health_nonce VARCHAR(64) NULL,
      target_release_counter BIGINT NOT NULL,
      previous_release_counter BIGINT NOT NULL,
      notice_json TEXT NOT NULL,
      last_error_code VARCHAR(64) NULL,
      updated_at BIGINT NOT NULL
    )`,
    'CREATE UNIQUE INDEX ota_executions_rollout_device ON ota_executions (rollout_id, device_id)',
    'CREATE INDEX ota_executions_device ON ota_executions (device_id, state)',
  ],
  mysql: [
    `CREATE TABLE ota_rollouts (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      release_id VARCHAR(128) NOT NULL,
      platform VARCHAR(64) NOT NULL,
      status VARCHAR(16) NOT NULL,
      record_json LONGTEXT NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      INDEX ota_rollouts_status (status)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    `CREATE TABLE ota_executions (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      rollout_id VARCHAR(64) NOT NULL,
      device_id VARCHAR(64) NOT NULL,
      wave INTEGER NOT NULL,
      state VARCHAR(16) NOT NULL,
      created_at BIGINT NOT NULL,
      state_entered_at BIGINT NOT NULL,
      ended_at BIGINT NULL,
      health_nonce VARCHAR(64) NULL,
      target_release_counter BIGINT NOT NULL,
      previous_release_counter BIGINT NOT NULL,
      notice_json LONGTEXT NOT NULL,
      last_error_code VARCHAR(64) NULL,
      updated_at BIGINT NOT NULL,
      UNIQUE INDEX ota_executions_rollout_device (rollout_id, device_id),
      INDEX ota_executions_device (device_id, state)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
