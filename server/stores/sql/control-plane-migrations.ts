import type { SqlDialect } from './sql-port.js';
import type { Migration } from './migrate.js';

/**
 * The control plane's schema, migration by migration. Later migrations extend it; published
 * ones are never edited.
 *
 * Conventions, chosen so one set of queries runs unchanged on SQLite and MySQL/MariaDB:
 * - Times are BIGINT epoch milliseconds (`*_at`, `ts`). DATETIME/TIMESTAMP differ between the two
 *   dialects (SQLite has no such type; MySQL's TIMESTAMP converts through the session time zone
 *   and stops at 2038), while an integer means the same thing everywhere and compares exactly.
 * - Keys are VARCHAR(n), short enough for a utf8mb4 InnoDB index; JSON is text (`*_json`),
 *   LONGTEXT on MySQL whose TEXT stops at 64 KiB.
 * - MySQL tables use utf8mb4_bin so comparisons and UNIQUE keys are byte-exact and case-sensitive,
 *   as they are in SQLite.
 * - No foreign keys: SQLite enforces them only per connection with a pragma that sql.js loses on
 *   every export, so integrity would differ between the dialects. The services keep references.
 */

interface DialectTypes {
  readonly json: string;
  readonly autoId: string;
  readonly tableOptions: string;
}

const types: Record<SqlDialect, DialectTypes> = {
  sqlite: { json: 'TEXT', autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT', tableOptions: '' },
  mysql: {
    json: 'LONGTEXT',
    autoId: 'BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY',
    tableOptions: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
  },
};

function schema001(dialect: SqlDialect): string[] {
  const { json, autoId, tableOptions } = types[dialect];
  return [
    `CREATE TABLE devices (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      status VARCHAR(32) NOT NULL,
      created_at BIGINT NOT NULL,
      last_seen_at BIGINT NULL,
      cert_serial VARCHAR(128) NULL,
      cert_not_after BIGINT NULL,
      public_key VARCHAR(128) NULL
    )${tableOptions}`,
    'CREATE INDEX devices_cert_serial ON devices (cert_serial)',
    `CREATE TABLE pairing_tokens (
      token_hash VARCHAR(128) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      expires_at BIGINT NOT NULL,
      used_at BIGINT NULL,
      created_by VARCHAR(128) NOT NULL,
      created_at BIGINT NOT NULL
    )${tableOptions}`,
    `CREATE TABLE revocations (
      serial VARCHAR(128) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      reason VARCHAR(64) NOT NULL,
      revoked_at BIGINT NOT NULL
    )${tableOptions}`,
    'CREATE INDEX revocations_device ON revocations (device_id)',
    `CREATE TABLE users (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      name VARCHAR(128) NOT NULL UNIQUE,
      role VARCHAR(32) NOT NULL,
      password_hash VARCHAR(255) NOT NULL,
      created_at BIGINT NOT NULL
    )${tableOptions}`,
    // idempotency_key is unique per creator; NULL keys (no idempotency asked) never collide on either dialect.
    `CREATE TABLE commands (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      opcode VARCHAR(64) NOT NULL,
      args_json ${json} NOT NULL,
      state VARCHAR(32) NOT NULL,
      created_by VARCHAR(128) NOT NULL,
      idempotency_key VARCHAR(128) NULL,
      device_seq BIGINT NULL,
      signed_json ${json} NULL,
      expires_at BIGINT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      UNIQUE (created_by, idempotency_key),
      UNIQUE (device_id, device_seq)
    )${tableOptions}`,
    'CREATE INDEX commands_device_state ON commands (device_id, state)',
    'CREATE INDEX commands_state_expires ON commands (state, expires_at)',
    `CREATE TABLE command_events (
      id ${autoId},
      command_id VARCHAR(64) NOT NULL,
      state VARCHAR(32) NOT NULL,
      at BIGINT NOT NULL,
      detail_json ${json} NULL
    )${tableOptions}`,
    'CREATE INDEX command_events_command ON command_events (command_id, id)',
    `CREATE TABLE telemetry (
      id ${autoId},
      device_id VARCHAR(64) NOT NULL,
      ts BIGINT NOT NULL,
      metrics_json ${json} NOT NULL,
      risk_score DOUBLE NULL
    )${tableOptions}`,
    'CREATE INDEX telemetry_device_ts ON telemetry (device_id, ts)',
    // seq is assigned by the audit writer, not by the database, because each row's hash covers it.
    `CREATE TABLE audit_log (
      seq BIGINT NOT NULL PRIMARY KEY,
      ts BIGINT NOT NULL,
      kind VARCHAR(64) NOT NULL,
      actor VARCHAR(128) NOT NULL,
      subject VARCHAR(255) NULL,
      payload_json ${json} NOT NULL,
      prev_hash VARCHAR(128) NOT NULL,
      hash VARCHAR(128) NOT NULL UNIQUE
    )${tableOptions}`,
    'CREATE INDEX audit_log_ts ON audit_log (ts)',
    `CREATE TABLE alerts (
      id VARCHAR(64) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NULL,
      kind VARCHAR(64) NOT NULL,
      severity VARCHAR(16) NOT NULL,
      state VARCHAR(16) NOT NULL,
      message VARCHAR(1024) NOT NULL,
      detail_json ${json} NULL,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      acknowledged_by VARCHAR(128) NULL
    )${tableOptions}`,
    'CREATE INDEX alerts_state_created ON alerts (state, created_at)',
    'CREATE INDEX alerts_device_created ON alerts (device_id, created_at)',
  ];
}

export const controlPlaneMigrations: readonly Migration[] = [
  { id: '001_initial_schema', sqlite: schema001('sqlite'), mysql: schema001('mysql') },
];

/** Tables created by controlPlaneMigrations, for tests and tooling that need to list or drop them. */
export const controlPlaneTables = [
  'devices', 'pairing_tokens', 'revocations', 'users', 'commands', 'command_events', 'telemetry', 'audit_log', 'alerts',
] as const;
