import type { Migration } from './migrate.js';

/**
 * 012: multi-approval (issue 12, docs/policy.md "Approvals", docs/decisions/0005-approvals.md).
 * - `user_signing_keys`: the Ed25519 public keys operators sign approvals with, one row per key,
 *   never deleted: registering a new key retires the previous one (`retired_at`), so an approval
 *   stored or embedded earlier still names a key that can be looked up.
 * - `command_approvals`: one signed decision (approve or reject) per command and approver; the
 *   primary key is what refuses a second one from the same approver on any control plane.
 * - `commands.approval_json`: for a command created in `pending_approval`, what it waits for (the
 *   rule, count and roles, the requester's role, the policy revision) and the hash of the command
 *   subject that approvers sign. NULL for every command that needed no approval.
 * A pending command's `device_seq` and `signed_json` stay NULL (both columns allow it since 001):
 * it takes its seq and is signed only when released, so a command approved late never carries a
 * seq below one the device has already run.
 */
export const controlPlaneMigration012: Migration = {
  id: '012_approvals',
  sqlite: [
    `CREATE TABLE user_signing_keys (
      kid VARCHAR(64) NOT NULL PRIMARY KEY,
      user_name VARCHAR(128) NOT NULL,
      public_key VARCHAR(64) NOT NULL,
      created_at BIGINT NOT NULL,
      retired_at BIGINT NULL
    )`,
    'CREATE INDEX user_signing_keys_user ON user_signing_keys (user_name, retired_at)',
    `CREATE TABLE command_approvals (
      command_id VARCHAR(64) NOT NULL,
      approver VARCHAR(128) NOT NULL,
      decision VARCHAR(16) NOT NULL,
      role VARCHAR(32) NOT NULL,
      kid VARCHAR(64) NOT NULL,
      expires_at BIGINT NOT NULL,
      signature VARCHAR(128) NOT NULL,
      reason VARCHAR(1024) NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (command_id, approver)
    )`,
    'ALTER TABLE commands ADD COLUMN approval_json TEXT NULL',
  ],
  mysql: [
    `CREATE TABLE user_signing_keys (
      kid VARCHAR(64) NOT NULL PRIMARY KEY,
      user_name VARCHAR(128) NOT NULL,
      public_key VARCHAR(64) NOT NULL,
      created_at BIGINT NOT NULL,
      retired_at BIGINT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    'CREATE INDEX user_signing_keys_user ON user_signing_keys (user_name, retired_at)',
    `CREATE TABLE command_approvals (
      command_id VARCHAR(64) NOT NULL,
      approver VARCHAR(128) NOT NULL,
      decision VARCHAR(16) NOT NULL,
      role VARCHAR(32) NOT NULL,
      kid VARCHAR(64) NOT NULL,
      expires_at BIGINT NOT NULL,
      signature VARCHAR(128) NOT NULL,
      reason VARCHAR(1024) NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (command_id, approver)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    'ALTER TABLE commands ADD COLUMN approval_json LONGTEXT NULL',
  ],
};
