import type { Migration } from './migrate.js';

/**
 * 010: compliance and dead-letter remediation (issue 12, roadmap 10.3 and 11.4).
 *
 * `device_compliance`: one row per device, the facts it last reported (AUTH posture, through the
 * gateway's presence entry) and the state the evaluator last gave them. The state is re-evaluated
 * by a sweep (a certificate comes closer to expiry without any new fact), so the fleet summary is
 * a COUNT over this table, not an evaluation of every device per request.
 *
 * `dead_letters`: what operators did with a dead-lettered command (retries, a discard with its
 * reason). The dead letter itself is the command in state `dead_lettered` (the commands table is
 * the index per device and fleet-wide); a row here exists only once an operator acted.
 */
const deviceCompliance = (text: string, tableOptions: string): string => `CREATE TABLE device_compliance (
      device_id VARCHAR(64) NOT NULL PRIMARY KEY,
      state VARCHAR(16) NOT NULL,
      reasons_json ${text} NOT NULL,
      facts_json ${text} NOT NULL,
      reported_at BIGINT NOT NULL,
      evaluated_at BIGINT NOT NULL
    )${tableOptions}`;
const deadLetters = (tableOptions: string): string => `CREATE TABLE dead_letters (
      command_id VARCHAR(64) NOT NULL PRIMARY KEY,
      device_id VARCHAR(64) NOT NULL,
      retries INT NOT NULL,
      last_retry_at BIGINT NULL,
      last_retry_by VARCHAR(256) NULL,
      discarded_at BIGINT NULL,
      discarded_by VARCHAR(256) NULL,
      discard_reason VARCHAR(512) NULL
    )${tableOptions}`;
const mysqlTable = ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

export const controlPlaneMigration010: Migration = {
  id: '010_compliance_dead_letters',
  sqlite: [
    deviceCompliance('TEXT', ''),
    'CREATE INDEX device_compliance_state ON device_compliance (state, device_id)',
    'CREATE INDEX device_compliance_evaluated ON device_compliance (evaluated_at)',
    deadLetters(''),
    'CREATE INDEX commands_state_created ON commands (state, created_at, id)',
  ],
  mysql: [
    deviceCompliance('LONGTEXT', mysqlTable),
    'CREATE INDEX device_compliance_state ON device_compliance (state, device_id)',
    'CREATE INDEX device_compliance_evaluated ON device_compliance (evaluated_at)',
    deadLetters(mysqlTable),
    'CREATE INDEX commands_state_created ON commands (state, created_at, id)',
  ],
};
