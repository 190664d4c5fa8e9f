import type { Migration } from './migrate.js';

/**
 * 013: the OTA image repository and its releases (issue 10, docs/ota.md "The image repository").
 * - `tuf_metadata`: every signed TUF metadata file the repository served, by role and version,
 *   with the exact bytes. The primary key is what makes two control planes that both re-sign the
 *   timestamp collide instead of publishing two files under one version; versions only grow
 *   (the highest row is the current one, and the repository refuses to write a lower one).
 * - `ota_releases`: one row per release, its state (core/ota/release-machine.ts), the target's
 *   custom data, the uploaded artifact's length and digests, and the targets metadata proposed
 *   for the release signers to sign (its OLPC canonical bytes and the targets version it will be).
 *   `release_counter` is unique: the monotonic counter devices refuse to go below.
 * - `ota_release_signatures`: one release signer's signature over the proposal; the primary key
 *   counts one key once however often it is sent.
 */
export const controlPlaneMigration013: Migration = {
  id: '013_ota_repository',
  sqlite: [
    `CREATE TABLE tuf_metadata (
      role VARCHAR(16) NOT NULL,
      version BIGINT NOT NULL,
      body TEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (role, version)
    )`,
    `CREATE TABLE ota_releases (
      id VARCHAR(128) NOT NULL PRIMARY KEY,
      release_counter BIGINT NOT NULL UNIQUE,
      version VARCHAR(32) NOT NULL,
      state VARCHAR(16) NOT NULL,
      artifact_name VARCHAR(128) NOT NULL,
      custom_json TEXT NOT NULL,
      artifact_length BIGINT NULL,
      artifact_sha256 CHAR(64) NULL,
      artifact_sha512 CHAR(128) NULL,
      proposal_body TEXT NULL,
      proposal_version BIGINT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    )`,
    'CREATE INDEX ota_releases_state ON ota_releases (state)',
    `CREATE TABLE ota_release_signatures (
      release_id VARCHAR(128) NOT NULL,
      keyid CHAR(64) NOT NULL,
      sig VARCHAR(256) NOT NULL,
      signed_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (release_id, keyid)
    )`,
  ],
  mysql: [
    `CREATE TABLE tuf_metadata (
      role VARCHAR(16) NOT NULL,
      version BIGINT NOT NULL,
      body LONGTEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (role, version)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    `CREATE TABLE ota_releases (
      id VARCHAR(128) NOT NULL PRIMARY KEY,
      release_counter BIGINT NOT NULL UNIQUE,
      version VARCHAR(32) NOT NULL,
      state VARCHAR(16) NOT NULL,
      artifact_name VARCHAR(128) NOT NULL,
      custom_json TEXT NOT NULL,
      artifact_length BIGINT NULL,
      artifact_sha256 CHAR(64) NULL,
      artifact_sha512 CHAR(128) NULL,
      proposal_body LONGTEXT NULL,
      proposal_version BIGINT NULL,
      created_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      INDEX ota_releases_state (state)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    `CREATE TABLE ota_release_signatures (
      release_id VARCHAR(128) NOT NULL,
      keyid CHAR(64) NOT NULL,
      sig VARCHAR(256) NOT NULL,
      signed_by VARCHAR(256) NOT NULL,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (release_id, keyid)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
};
