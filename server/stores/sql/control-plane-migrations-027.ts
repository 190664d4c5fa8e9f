import type { Migration } from './migrate.js';

/**
 * 027: the presigned release uploads a control plane handed out (docs/ota.md, "Uploading a
 * release by presigned PUT"). One row per pending object `ota/release-uploads/<release>/<sha256>-<length>`
 * whose PUT URL was issued, with the URL's expiry (the latest, when the same upload was asked
 * for again). The blob store has no listing, so these rows are how abandoned objects are found:
 * the OTA sweep deletes each object once its URL has expired (completed or not: a late PUT after
 * completion recreates it) and then the row. They also count a release's outstanding URLs, which
 * are capped (OTA_UPLOAD_URLS_LIMIT). One CREATE TABLE and one index on each dialect.
 */
export const controlPlaneMigration027: Migration = {
  id: '027_ota_release_uploads',
  sqlite: [
    `CREATE TABLE ota_release_uploads (
      release_id VARCHAR(128) NOT NULL,
      artifact_sha256 CHAR(64) NOT NULL,
      artifact_length BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (release_id, artifact_sha256, artifact_length)
    )`,
    'CREATE INDEX ota_release_uploads_expiry ON ota_release_uploads (expires_at)',
  ],
  mysql: [
    `CREATE TABLE ota_release_uploads (
      release_id VARCHAR(128) NOT NULL,
      artifact_sha256 CHAR(64) NOT NULL,
      artifact_length BIGINT NOT NULL,
      expires_at BIGINT NOT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (release_id, artifact_sha256, artifact_length),
      INDEX ota_release_uploads_expiry (expires_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
