import type { Migration } from './migrate.js';

/**
 * 028: how many times each pairing token was presented for a device id other than its own. Since
 * cd34f90 such a try leaves the token usable (an installer's mistyped id must not spend it), but
 * someone holding a stolen token could then guess at its device id without end; the count lets
 * SqlPairingTokenStore.consume spend the token at the pairingWrongDeviceTriesMax-th such try, in
 * the same UPDATE that counts it (docs/security/threat-model.md). Existing rows start at 0.
 * `ALTER TABLE ... ADD COLUMN ... NOT NULL DEFAULT 0` is valid on SQLite and MySQL alike.
 */
export const controlPlaneMigration028: Migration = {
  id: '028_pairing_token_wrong_device_tries',
  sqlite: ['ALTER TABLE pairing_tokens ADD COLUMN wrong_device_tries INTEGER NOT NULL DEFAULT 0'],
  mysql: ['ALTER TABLE pairing_tokens ADD COLUMN wrong_device_tries INT NOT NULL DEFAULT 0'],
};
