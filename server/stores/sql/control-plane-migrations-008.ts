import type { Migration } from './migrate.js';

/**
 * 008: what the command states may claim (docs/protocol.md, "What a command state says about
 * execution") and the device clock's offset.
 * - `commands.first_dispatched_at`: when a `deliver` entry for the command was first about to be
 *   appended to a gateway's stream, set before the append. NULL: no gateway ever held it, so no
 *   device can have it, and its TTL passing makes it `expired` (guaranteed not run); otherwise it
 *   becomes `timed_out` (outcome unknown). Commands stored before this migration that may have
 *   been dispatched (any dispatch stamp, or past `queued`) count as dispatched.
 * - `devices.clock_offset_ms`: the device clock minus the gateway's, measured at its last AUTH.
 */
export const controlPlaneMigration008: Migration = {
  id: '008_command_first_dispatch_and_clock_offset',
  sql: [
    'ALTER TABLE commands ADD COLUMN first_dispatched_at BIGINT NULL',
    "UPDATE commands SET first_dispatched_at = COALESCE(dispatched_at, created_at) WHERE dispatched_at IS NOT NULL OR gateway_id IS NOT NULL OR state <> 'queued'",
    'ALTER TABLE devices ADD COLUMN clock_offset_ms BIGINT NULL',
  ],
};
