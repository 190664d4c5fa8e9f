import { after, before, describe } from 'node:test';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { runSqlContract } from './sql-contract.js';
import { createMysqlDatabase } from './mysql-database.js';

const mysqlUrl = process.env['MYSQL_URL'];

if (mysqlUrl === undefined || mysqlUrl === '') {
  // No server configured (MYSQL_URL unset, e.g. mysql://root@127.0.0.1:3306/test). The same contract
  // runs against the embedded adapter in sqljs-database.test.ts, so the port is still covered.
  describe('SqlDatabase contract: mysql2', { skip: 'MYSQL_URL is not set; sqljs-database.test.ts runs the contract on the embedded adapter' }, () => {});
} else {
  // A database of our own per run, so parallel test files and earlier runs never share tables.
  const databaseName = `sdc_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const testUrl = new URL(mysqlUrl);
  testUrl.pathname = `/${databaseName}`;

  before(async () => {
    const admin = await createConnection({ uri: mysqlUrl });
    await admin.query(`CREATE DATABASE \`${databaseName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await admin.end();
  });
  after(async () => {
    const admin = await createConnection({ uri: mysqlUrl });
    await admin.query(`DROP DATABASE IF EXISTS \`${databaseName}\``);
    await admin.end();
  });

  runSqlContract('mysql2 (MySQL / MariaDB)', {
    create: () => createMysqlDatabase({ url: testUrl.toString(), connectionLimit: 4 }),
    reset: async () => {
      const admin = await createConnection({ uri: testUrl.toString() });
      const [tables] = await admin.query('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?', [databaseName]);
      for (const { name } of tables as Array<{ name: string }>) await admin.query(`DROP TABLE \`${name}\``);
      await admin.end();
    },
  });
}
