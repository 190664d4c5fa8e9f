import type { Migration } from './migrate.js';

/**
 * 003: `commands.dispatched_at`, when a `deliver` entry for the command was last appended to a
 * gateway's stream (or the redelivery sweep last looked for a gateway and found none). The
 * control plane's redelivery sweep uses it to re-dispatch commands that are still waiting, at
 * most once per interval. NULL: never dispatched.
 */
export const controlPlaneMigration003: Migration = {
  id: '003_command_dispatched_at',
  sqlite: [
    'ALTER TABLE commands ADD COLUMN dispatched_at BIGINT NULL',
  ],
  mysql: [
    'ALTER TABLE commands ADD COLUMN dispatched_at BIGINT NULL',
  ],
};
