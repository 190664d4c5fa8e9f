import type { Migration } from './migrate.js';

/**
 * 002: what the control plane's services need beyond 001.
 * - `counters`: named monotonic counters (per-device command sequence, CRL number). Incremented
 *   with `UPDATE ... SET value = value + 1` inside the caller's transaction, which takes a row lock
 *   on MySQL, so two control-plane processes never hand out the same number.
 * - `devices.last_command_seq`: the highest device_seq the agent reported at AUTH.
 * - `devices.gateway_id`: the gateway holding the device's session, from the last presence event.
 * - `commands.gateway_id`: where the command was last dispatched (cleared on requeue).
 * - `commands.result_json`: the device's signed COMMAND_RESULT frame, verbatim.
 * Plain `ALTER TABLE ... ADD COLUMN` with a NULL default is valid on SQLite and MySQL alike.
 */
export const controlPlaneMigration002: Migration = {
  id: '002_control_plane_services',
  sqlite: [
    'CREATE TABLE counters (name VARCHAR(191) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)',
    'ALTER TABLE devices ADD COLUMN last_command_seq BIGINT NULL',
    'ALTER TABLE devices ADD COLUMN gateway_id VARCHAR(64) NULL',
    'ALTER TABLE commands ADD COLUMN gateway_id VARCHAR(64) NULL',
    'ALTER TABLE commands ADD COLUMN result_json TEXT NULL',
  ],
  mysql: [
    'CREATE TABLE counters (name VARCHAR(191) NOT NULL PRIMARY KEY, value BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
    'ALTER TABLE devices ADD COLUMN last_command_seq BIGINT NULL',
    'ALTER TABLE devices ADD COLUMN gateway_id VARCHAR(64) NULL',
    'ALTER TABLE commands ADD COLUMN gateway_id VARCHAR(64) NULL',
    'ALTER TABLE commands ADD COLUMN result_json LONGTEXT NULL',
  ],
};
