// A connection lost while its COMMIT is in flight leaves the outcome unknown to the client: the
// server may have committed and lost only the reply. The adapter says so (STORE_COMMIT_UNKNOWN),
// instead of STORE_UNAVAILABLE, which callers read as "not done" (a create answered as failed for a
// command that is stored and runs). A relay between the adapter and MySQL is cut while a
// committing batch (the COMMIT after a SLEEP) is on the server; a statement outside a COMMIT cut the
// same way stays STORE_UNAVAILABLE.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createConnection } from 'mysql2/promise';
import { SdcError } from '../../../core/errors/index.js';
import { createMysqlDatabase } from './mysql-database.js';

const mysqlUrl = process.env['MYSQL_URL'];

/** A TCP relay to the MySQL server whose connections the test can cut. */
async function startRelay(target: { host: string; port: number }): Promise<{ port: number; cut: () => void; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => { for (const socket of sockets) socket.destroy(); },
    close: () => new Promise<void>((resolve) => { for (const socket of sockets) socket.destroy(); server.close(() => resolve()); }),
  };
}

/** Waits (bounded by looks, not by time) until the server runs a statement whose text holds `marker`. */
async function untilRunning(admin: Awaited<ReturnType<typeof createConnection>>, marker: string): Promise<void> {
  for (let look = 0; look < 2_000; look += 1) {
    const [rows] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()', [`%${marker}%`]);
    if (Number((rows as Array<{ n: number }>)[0]?.n) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the server never ran the statement marked ${marker}`);
}

if (mysqlUrl === undefined || mysqlUrl === '') {
  describe('mysql2: a connection lost with the COMMIT in flight', { skip: 'MYSQL_URL is not set (a MySQL-only outcome: sql.js commits in process)' }, () => {});
} else {
  describe('mysql2: a connection lost with the COMMIT in flight', () => {
    const databaseName = `sdc_test_cu_${process.pid}_${randomBytes(4).toString('hex')}`;
    const given = new URL(mysqlUrl);
    let admin: Awaited<ReturnType<typeof createConnection>>;
    let relay: Awaited<ReturnType<typeof startRelay>>;
    let relayedUrl: string;

    before(async () => {
      admin = await createConnection({ uri: mysqlUrl });
      await admin.query(`CREATE DATABASE \`${databaseName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      await admin.query(`CREATE TABLE \`${databaseName}\`.cu (id VARCHAR(16) NOT NULL PRIMARY KEY)`);
      relay = await startRelay({ host: given.hostname, port: Number(given.port || 3306) });
      const url = new URL(mysqlUrl);
      url.hostname = '127.0.0.1';
      url.port = String(relay.port);
      url.pathname = `/${databaseName}`;
      relayedUrl = url.toString();
    });
    after(async () => {
      await relay.close();
      await admin.query(`DROP DATABASE IF EXISTS \`${databaseName}\``);
      await admin.end();
    });

    it('a committing batch cut on the wire is STORE_COMMIT_UNKNOWN (the server may have committed), not STORE_UNAVAILABLE', async () => {
      const db = await createMysqlDatabase({ url: relayedUrl, connectionLimit: 1 });
      try {
        const marker = `cu_commit_${randomBytes(3).toString('hex')}`;
        const outcome = db.transaction(async (tx) => {
          await tx.executeBatch([
            { sql: "INSERT INTO cu (id) VALUES ('a')" },
            { sql: `SELECT SLEEP(0.5) AS ${marker}`, returnsRows: true },
          ], { commit: true });
        });
        const settled = outcome.then(() => undefined, (error: unknown) => error);
        await untilRunning(admin, marker);
        relay.cut();
        const error = await settled;
        assert.ok(SdcError.is(error, "STORE_COMMIT_UNKNOWN"), `refused with ${String(error)} ${(error as { code?: string }).code} ${JSON.stringify((error as { details?: unknown }).details)}`);
        assert.ok(SdcError.is(error.cause, 'STORE_UNAVAILABLE'), 'the cause names the lost connection');
      } finally {
        await db.close().catch(() => undefined);
      }
    });

    it('a transaction\'s statement cut on the wire before any COMMIT stays STORE_UNAVAILABLE: nothing was committing', async () => {
      const db = await createMysqlDatabase({ url: relayedUrl, connectionLimit: 1 });
      try {
        const marker = `cu_plain_${randomBytes(3).toString('hex')}`;
        const before = db.transaction(async (tx) => { await tx.query(`SELECT SLEEP(0.5) AS ${marker}`); }).then(() => undefined, (error: unknown) => error);
        await untilRunning(admin, marker);
        relay.cut();
        const error = await before;
        assert.ok(SdcError.is(error, 'STORE_UNAVAILABLE'), `refused with ${String(error)}: nothing was committing, so nothing may have been committed`);
      } finally {
        await db.close().catch(() => undefined);
      }
    });
  });
}
