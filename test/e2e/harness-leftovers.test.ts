// The e2e harness (startE2e) runs the deployment on Redis under a key prefix of its own,
// sdc-e2e-<tag>:. stop() removes those keys (SDC_TEST_KEEP_STORES=1 keeps them): before, every
// e2e file on Redis left its streams and key/value entries behind (3,000 keys after a day's runs).
// On MySQL it runs on a database of its own, sdc_e2e_<tag>, which stop() drops: before, every
// deployment wrote into the shared database the URL names (`test`), whose 26 tables each run reused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startE2e, storeTargets } from './support/e2e-harness.js';
import { createConnection } from 'mysql2/promise';
import { databaseExists, keysUnder } from '../../server/stores/leftovers-test-support.js';

const target = storeTargets().find((t) => t.redisUrl !== undefined);

describe('e2e harness: what a run leaves on Redis', () => {
  it('stop() removes every key under the run\'s prefix, and only those', { skip: target === undefined ? 'REDIS_URL and MYSQL_URL are not set' : false }, async () => {
    const other = new Redis(target!.redisUrl!);
    const neighbour = `sdc-e2e-neighbour-${process.pid}:k`;
    try {
      await other.set(neighbour, '1');
      const system = await startE2e({ target: target! });
      await system.api('GET', '/v1/devices');
      assert.ok((await keysUnder(target!.redisUrl!, system.keyPrefix)).length > 0, 'the running deployment has keys under its prefix');
      await system.stop();
      assert.deepEqual(await keysUnder(target!.redisUrl!, system.keyPrefix), []);
      assert.equal(await other.get(neighbour), '1', 'a key under another prefix stays');
    } finally {
      await other.del(neighbour);
      other.disconnect();
    }
  });

  const mysqlTarget = storeTargets().find((t) => t.mysqlUrl !== undefined);
  it('the deployment runs on a MySQL database of its own, which stop() drops', { skip: mysqlTarget === undefined ? 'REDIS_URL and MYSQL_URL are not set' : false }, async () => {
    const system = await startE2e({ target: mysqlTarget! });
    let stopped = false;
    try {
      const name = system.mysqlDatabase!;
      assert.match(name, /^sdc_e2e_[0-9a-f]+$/);
      assert.notEqual(name, new URL(mysqlTarget!.mysqlUrl!).pathname.slice(1));
      const connection = await createConnection({ uri: mysqlTarget!.mysqlUrl! });
      try {
        const [rows] = await connection.query('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [name, 'users']);
        assert.equal(Number((rows as Array<{ n: number }>)[0]!.n), 1, 'the control plane\'s tables are in its own database');
      } finally {
        await connection.end();
      }
      await system.stop();
      stopped = true;
      assert.equal(await databaseExists(mysqlTarget!.mysqlUrl!, name), false, `${name} is still on the server`);
    } finally {
      if (!stopped) await system.stop();
    }
  });
});
