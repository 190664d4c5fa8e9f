import type { Migration } from './migrate.js';

/**
 * 017: the W3C trace context a command was created under (issue 12, "Structured logs"): the
 * `traceparent` of the API request that created it, so that every later step (dispatch, the
 * redelivery sweep, a dead-letter retry, an approval's release, the result) is logged under the
 * same trace id, however long after the request it happens. NULL for a command created without
 * one (before this migration, or by a caller that is not the API). 55 characters: version 00.
 */
export const controlPlaneMigration017: Migration = {
  id: '017_command_traceparent',
  sql: ['ALTER TABLE commands ADD COLUMN traceparent VARCHAR(55) NULL'],
};
