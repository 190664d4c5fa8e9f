import type { Migration } from './migrate.js';

/**
 * 026: the signed CRLs, shared by every control plane on the database (decision 0021, dated
 * section 2026-12-06 h14). A control plane stores each CRL it signs with its number (the
 * `crl_number` counter) and its validity, and `GET /v1/crl` (and the CRL file) serves the
 * highest-numbered one still valid, whichever replica signed it: a revocation made on one replica
 * is served by all of them, not only by the one that re-signed. The last few rows are kept
 * (SqlCrlStore prunes the older ones). One CREATE TABLE on each dialect.
 */
export const controlPlaneMigration026: Migration = {
  id: '026_signed_crls',
  sqlite: ['CREATE TABLE crls (crl_number BIGINT NOT NULL PRIMARY KEY, pem TEXT NOT NULL, this_update_ms BIGINT NOT NULL, next_update_ms BIGINT NOT NULL)'],
  mysql: ['CREATE TABLE crls (crl_number BIGINT NOT NULL PRIMARY KEY, pem LONGTEXT NOT NULL, this_update_ms BIGINT NOT NULL, next_update_ms BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin'],
};
