import type { Migration } from './migrate.js';

/**
 * 022: a per-user token generation (docs/security/threat-model.md, "Revoking a user's tokens").
 * Every JWT carries the generation its user had when it was issued (the private claim `gen`); a
 * password change or reset, a role change and POST /v1/auth/logout-all add one, and a token whose
 * generation is older than the user's is refused (API_TOKEN_REVOKED). Existing users start at 0,
 * which is also what a token issued before this migration (no `gen`) counts as: such tokens keep
 * working until the user's first revocation, so an upgrade does not log everyone out.
 * One ALTER on each dialect; re-run on MySQL after a cut, ER_DUP_FIELDNAME counts as applied.
 */
export const controlPlaneMigration022: Migration = {
  id: '022_users_token_generation',
  sql: ['ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0'],
};
