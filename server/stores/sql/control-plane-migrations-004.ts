import type { Migration } from './migrate.js';

/**
 * 004: `device_certificates`, every certificate issued to a device (enrollment and renewal). A
 * revocation covers every unexpired certificate of the device, not only the newest, and renewal
 * is accepted only with a certificate on record here. Rows for the certificates enrolled before
 * this migration are copied from `devices`.
 */
export const controlPlaneMigration004: Migration = {
  id: '004_device_certificates',
  sqlite: [
    `CREATE TABLE device_certificates (
      serial VARCHAR(128) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      not_after BIGINT NOT NULL,
      issued_at BIGINT NOT NULL
    )`,
    'CREATE INDEX device_certificates_device ON device_certificates (device_id, not_after)',
    `INSERT INTO device_certificates (serial, device_id, not_after, issued_at)
      SELECT cert_serial, id, cert_not_after, created_at FROM devices WHERE cert_serial IS NOT NULL AND cert_not_after IS NOT NULL`,
  ],
  mysql: [
    `CREATE TABLE device_certificates (
      serial VARCHAR(128) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      not_after BIGINT NOT NULL,
      issued_at BIGINT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    'CREATE INDEX device_certificates_device ON device_certificates (device_id, not_after)',
    `INSERT INTO device_certificates (serial, device_id, not_after, issued_at)
      SELECT cert_serial, id, cert_not_after, created_at FROM devices WHERE cert_serial IS NOT NULL AND cert_not_after IS NOT NULL`,
  ],
};
