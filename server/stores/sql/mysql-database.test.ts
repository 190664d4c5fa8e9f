import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { runSqlContract } from './sql-contract.js';
import { createMysqlDatabase, mysqlRoundTrips } from './mysql-database.js';

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

  describe('mysql2 transactions without a START TRANSACTION round trip (issue 17)', () => {
    it('a transaction of one statement is two round trips, and still one transaction: invisible to other connections until its COMMIT', async () => {
      const db = await createMysqlDatabase({ url: testUrl.toString(), connectionLimit: 1 });
      try {
        await db.execute('CREATE TABLE IF NOT EXISTS tx_trips (id VARCHAR(16) NOT NULL PRIMARY KEY)');
        const before = mysqlRoundTrips();
        await db.transaction(async (tx) => { await tx.execute("INSERT INTO tx_trips (id) VALUES ('a')"); });
        // The INSERT and the COMMIT: were three with START TRANSACTION first.
        assert.equal(mysqlRoundTrips() - before, 2);
        await db.transaction(async (tx) => {
          await tx.execute("INSERT INTO tx_trips (id) VALUES ('b')");
          await tx.execute("INSERT INTO tx_trips (id) VALUES ('c')");
          // Another connection (the statement pool) does not see them yet: they are one uncommitted transaction.
          assert.deepEqual((await db.query<{ id: string }>('SELECT id FROM tx_trips ORDER BY id')).map((row) => row.id), ['a']);
        });
        await assert.rejects(db.transaction(async (tx) => {
          await tx.execute("INSERT INTO tx_trips (id) VALUES ('d')");
          throw new Error('rolled back');
        }), /rolled back/);
        // A row committed elsewhere meanwhile is seen by the next transaction on the same pooled connection (nothing left open on it).
        await db.execute("INSERT INTO tx_trips (id) VALUES ('e')");
        const seen = await db.transaction((tx) => tx.query<{ id: string }>('SELECT id FROM tx_trips ORDER BY id'));
        assert.deepEqual(seen.map((row) => row.id), ['a', 'b', 'c', 'e']);
      } finally {
        await db.close();
      }
    });
  });

  describe('mysql2 batches (issue 17)', () => {
    it('a batch of statements is one round trip, its COMMIT a second', async () => {
      const db = await createMysqlDatabase({ url: testUrl.toString(), connectionLimit: 1 });
      try {
        await db.execute('CREATE TABLE IF NOT EXISTS batch_trips (id VARCHAR(16) NOT NULL PRIMARY KEY, n BIGINT NOT NULL)');
        const before = mysqlRoundTrips();
        const results = await db.transaction((tx) => tx.executeBatch([
          { sql: 'INSERT INTO batch_trips (id, n) VALUES (?, ?)', params: ['a', 1] },
          { sql: 'UPDATE batch_trips SET n = n + 1 WHERE id = ?', params: ['a'] },
          { sql: 'SELECT n FROM batch_trips WHERE id = ?', params: ['a'], returnsRows: true },
        ]));
        // One multi-statement query and the COMMIT; three statements one by one would be four.
        assert.equal(mysqlRoundTrips() - before, 2);
        assert.deepEqual(results[2]?.rows, [{ n: 2 }]);
        // With the COMMIT in it, the whole transaction is one round trip.
        const beforeCommitted = mysqlRoundTrips();
        await db.transaction((tx) => tx.executeBatch([
          { sql: 'UPDATE batch_trips SET n = n + 1 WHERE id = ?', params: ['a'] },
          { sql: 'INSERT INTO batch_trips (id, n) VALUES (?, ?)', params: ['b', 1] },
        ], { commit: true }));
        assert.equal(mysqlRoundTrips() - beforeCommitted, 1);
        assert.deepEqual(await db.query('SELECT id, n FROM batch_trips ORDER BY id'), [{ id: 'a', n: 3 }, { id: 'b', n: 1 }]);
        // A transaction's single statements go on the same multi-statement connections: a second statement in a text is refused before it is sent.
        await assert.rejects(db.transaction((tx) => tx.execute('UPDATE batch_trips SET n = 0; DELETE FROM batch_trips')),
          (error: unknown) => (error as { code?: string }).code === 'STORE_INVALID_ARGUMENT');
        await assert.rejects(db.transaction((tx) => tx.query('SELECT 1; SELECT 2')), (error: unknown) => (error as { code?: string }).code === 'STORE_INVALID_ARGUMENT');
        assert.equal((await db.query('SELECT id FROM batch_trips')).length, 2);
        // Outside a transaction the statement pool still takes one statement per query.
        await assert.rejects(db.execute('SELECT 1; SELECT 2'), (error: unknown) => (error as { code?: string }).code === 'STORE_QUERY_FAILED');
      } finally {
        await db.close();
      }
    });
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
