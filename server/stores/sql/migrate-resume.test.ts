import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { SdcError } from '../../../core/errors/index.js';
import { isStoreLoss } from '../../deployment/start-store-loss.js';
import { migrate, type Migration } from './migrate.js';
import { createMysqlDatabase } from './mysql-database.js';
import type { SqlDatabase, SqlExecutor } from './sql-port.js';
import { withOneByOneBatches } from './sql-batch.js';

// A MySQL migration cut between two of its DDL statements (issue 11): MySQL commits each DDL
// statement at once, so the statements before the cut stay applied and the migration unrecorded.
// Before, the next start ran the migration from its first statement again and failed
// STORE_MIGRATION_FAILED on a table that was there already, every time. Now each applied statement
// is recorded and the next run goes on from the first unrecorded one. On MariaDB / MySQL only
// (MYSQL_URL): SQLite runs a migration in one transaction, all or nothing.

const mysqlUrl = process.env['MYSQL_URL'];

const statements = [
  'CREATE TABLE resume_a (id INT NOT NULL PRIMARY KEY)',
  'CREATE TABLE resume_b (id INT NOT NULL PRIMARY KEY)',
  'ALTER TABLE resume_a ADD COLUMN note VARCHAR(16) NULL',
] as const;
const migrations: readonly Migration[] = [{ id: 'resume_test_001', sql: statements }];

/**
 * `db` whose connection is lost right after `statement` was applied (before anything else of its
 * migration reaches the server): what a MySQL outage in the middle of a migration looks like.
 */
function cutAfter(db: SqlDatabase, statement: string): SqlDatabase {
  const cut = (tx: SqlExecutor): SqlExecutor => ({
    dialect: tx.dialect,
    query: (sql, params) => tx.query(sql, params),
    execute: async (sql, params) => {
      const result = await tx.execute(sql, params);
      if (sql === statement) throw new SdcError('STORE_UNAVAILABLE', 'Connection lost: The server closed the connection.');
      return result;
    },
  });
  return { ...db, dialect: db.dialect, query: (sql, params) => db.query(sql, params), execute: (sql, params) => db.execute(sql, params), transaction: (fn) => db.transaction((tx) => fn(withOneByOneBatches(cut(tx)))) };
}

describe('a MySQL migration cut between two DDL statements', { skip: mysqlUrl === undefined || mysqlUrl === '' ? 'MYSQL_URL is not set' : false }, () => {
  const databaseName = `sdc_test_migrate_${process.pid}_${randomBytes(4).toString('hex')}`;
  let db: SqlDatabase;
  before(async () => {
    const admin = await createConnection({ uri: mysqlUrl! });
    await admin.query(`CREATE DATABASE \`${databaseName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await admin.end();
    const url = new URL(mysqlUrl!);
    url.pathname = `/${databaseName}`;
    db = await createMysqlDatabase({ url: url.toString(), connectionLimit: 2 });
  });
  after(async () => {
    await db?.close();
    const admin = await createConnection({ uri: mysqlUrl! });
    await admin.query(`DROP DATABASE IF EXISTS \`${databaseName}\``);
    await admin.end();
  });

  it('the next run completes it from the first unrecorded statement; a store loss, so a starting deployment waits and starts again', async () => {
    // Cut once the second statement was applied: the first is recorded (the second's implicit commit), the second is not.
    const failed = await migrate(cutAfter(db, statements[1]), migrations).then(() => undefined, (error: unknown) => error);
    assert.ok(failed instanceof Error, 'the cut migration failed');
    assert.ok(isStoreLoss(failed), `a store loss (ridden out at start): ${String(failed)}`);
    const tables = async () => (await db.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'resume_%' ORDER BY table_name")).map((row) => row.name);
    assert.deepEqual(await tables(), ['resume_a', 'resume_b'], 'the statements before the cut stayed applied (MySQL commits DDL at once)');
    assert.deepEqual(await db.query('SELECT id FROM schema_migrations WHERE id = ?', ['resume_test_001']), [], 'the migration is not recorded');

    assert.deepEqual(await migrate(db, migrations), ['resume_test_001'], 'the next run applies it');
    assert.deepEqual(await tables(), ['resume_a', 'resume_b']);
    const columns = await db.query<{ name: string }>("SELECT column_name AS name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'resume_a' ORDER BY ordinal_position");
    assert.deepEqual(columns.map((row) => row.name), ['id', 'note'], 'the statement after the cut ran');
    assert.equal((await db.query('SELECT id FROM schema_migrations WHERE id = ?', ['resume_test_001'])).length, 1);
    assert.deepEqual(await db.query('SELECT step FROM schema_migration_steps WHERE migration_id = ?', ['resume_test_001']), [], 'its step records are gone once it is recorded');
    assert.deepEqual(await migrate(db, migrations), [], 'and it is not applied twice');
  });

  it('a statement that fails for any other reason, or past the first unrecorded one, still stops the migration', async () => {
    const broken: Migration[] = [{ id: 'resume_test_002', sql: ['CREATE TABLE resume_c (id INT NOT NULL PRIMARY KEY)', 'CREATE TABLE resume_a (id INT NOT NULL PRIMARY KEY)'] }];
    // resume_a exists (the test above), and the statement creating it is the second unrecorded one: not forgiven.
    await assert.rejects(migrate(db, broken), (error: unknown) => SdcError.is(error, 'STORE_MIGRATION_FAILED') && !isStoreLoss(error));
    await assert.rejects(migrate(db, [{ id: 'resume_test_003', sql: ['ALTER TABLE resume_missing ADD COLUMN x INT'] }]), (error: unknown) => SdcError.is(error, 'STORE_MIGRATION_FAILED'));
  });
});
