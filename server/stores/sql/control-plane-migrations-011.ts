import type { Migration } from './migrate.js';

/**
 * 011: device tags and the agent's version (issue 12, docs/policy.md "Tags and groups").
 * - `device_tags`: one row per (device, tag). A table rather than a JSON column so that
 *   `GET /v1/devices?tag=x` is an index lookup on both dialects; groups are tags spelled
 *   `group:NAME`, so they need no table of their own.
 * - `devices.agent_version`: the version string the agent reported at its last AUTH, for the
 *   policy's `agentVersionAtLeast` posture condition; NULL until one is recorded (fails closed).
 */
export const controlPlaneMigration011: Migration = {
  id: '011_device_tags_and_agent_version',
  sqlite: [
    `CREATE TABLE device_tags (
      device_id VARCHAR(64) NOT NULL,
      tag VARCHAR(64) NOT NULL,
      PRIMARY KEY (device_id, tag)
    )`,
    'CREATE INDEX device_tags_tag ON device_tags (tag, device_id)',
    'ALTER TABLE devices ADD COLUMN agent_version VARCHAR(64) NULL',
  ],
  mysql: [
    `CREATE TABLE device_tags (
      device_id VARCHAR(64) NOT NULL,
      tag VARCHAR(64) NOT NULL,
      PRIMARY KEY (device_id, tag)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    'CREATE INDEX device_tags_tag ON device_tags (tag, device_id)',
    'ALTER TABLE devices ADD COLUMN agent_version VARCHAR(64) NULL',
  ],
};
