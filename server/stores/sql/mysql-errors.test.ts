// A query on a mysql2 connection that the server already closed fails with "Can't add new command
// when connection is in closed state": no driver code, `fatal` set. The connection is gone, so it
// is STORE_UNAVAILABLE like the PROTOCOL_CONNECTION_LOST before it, not STORE_QUERY_FAILED: a start
// that met it while MySQL was cut (test/e2e/chaos-stores.test.ts, mysql-lost-mid-start, on a busy
// machine) exited `STORE_QUERY_FAILED` instead of waiting for MySQL (start-store-loss.ts retries
// store losses only).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Connection } from 'mysql2';
import { mapMysqlError } from './mysql-errors.js';

const mysqlUrl = process.env['MYSQL_URL'];

function query(connection: Connection, sql: string): Promise<unknown> {
  return new Promise((resolve, reject) => { connection.query(sql, (error, rows) => (error ? reject(error) : resolve(rows))); });
}

describe('mapMysqlError', () => {
  it('a fatal error without a driver code (the connection is closed) is STORE_UNAVAILABLE', () => {
    const closed = Object.assign(new Error("Can't add new command when connection is in closed state"), { fatal: true });
    assert.equal(mapMysqlError(closed).code, 'STORE_UNAVAILABLE');
  });

  it('a non-fatal error without a driver code stays STORE_QUERY_FAILED', () => {
    assert.equal(mapMysqlError(new Error('something else')).code, 'STORE_QUERY_FAILED');
  });

  it('a query on a connection the server closed (KILL) is STORE_UNAVAILABLE, as the loss itself', { skip: mysqlUrl === undefined }, async () => {
    const victim = createConnection({ uri: mysqlUrl! });
    const lost = new Promise<unknown>((resolve) => { victim.once('error', resolve); });
    const killer = createConnection({ uri: mysqlUrl! });
    try {
      const rows = await query(victim, 'SELECT CONNECTION_ID() AS id') as Array<{ id: number }>;
      await query(killer, `KILL ${rows[0]!.id}`);
      assert.equal(mapMysqlError(await lost).code, 'STORE_UNAVAILABLE');
      const after = await query(victim, 'SELECT 1').then(() => undefined, (error: unknown) => error);
      assert.ok(after instanceof Error, 'the closed connection refused the query');
      assert.equal(mapMysqlError(after).code, 'STORE_UNAVAILABLE', (after as Error).message);
    } finally {
      victim.destroy();
      killer.end();
    }
  });
});
