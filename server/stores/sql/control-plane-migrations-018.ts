import type { Migration } from './migrate.js';

/**
 * 018: one device's dead letters in index order (docs/decisions/0007-dead-letters.md). The
 * per-device list asks for `device_id = ? AND state = 'dead_lettered'` newest first; with only
 * (device_id, state) and (state, created_at, id), SQLite walked every dead letter of the fleet
 * and kept the device's (5-17 ms at 10,000 dead letters, growing with the fleet). This index
 * answers it from the device's own rows in order, and pages by (created_at, id) within them.
 */
export const controlPlaneMigration018: Migration = {
  id: '018_commands_device_state_created',
  sql: ['CREATE INDEX commands_device_state_created ON commands (device_id, state, created_at, id)'],
};
