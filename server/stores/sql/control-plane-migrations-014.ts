import type { Migration } from './migrate.js';

/**
 * 014: alert episodes (issue 12, docs/api.md "Alerts"). A rule's alert is raised once per
 * episode: while the condition holds, `episode_key` names it (kind and subject, e.g.
 * `device_offline:dev-1`); when the condition clears, `episode_key` goes back to NULL and
 * `cleared_at` records when, so the next episode can raise a new alert. The UNIQUE index makes
 * the once-per-episode rule hold across control planes sharing one database: a second insert of
 * an open episode is a unique violation, not a second alert (NULLs never collide, on SQLite and
 * MySQL alike). `ack_note` is the note an operator gave with the acknowledgement.
 */
export const controlPlaneMigration014: Migration = {
  id: '014_alert_episodes',
  sql: [
    'ALTER TABLE alerts ADD COLUMN episode_key VARCHAR(191) NULL',
    'ALTER TABLE alerts ADD COLUMN cleared_at BIGINT NULL',
    'ALTER TABLE alerts ADD COLUMN ack_note VARCHAR(1024) NULL',
    'CREATE UNIQUE INDEX alerts_episode ON alerts (episode_key)',
  ],
};
