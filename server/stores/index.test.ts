import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStores } from './index.js';
import { deleteKeysWithPrefix, testKeyPrefix } from './redis-test-keys.js';
import { VirtualTime } from '../../core/time/virtual-time.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('openStores', () => {
  it('opens embedded stores, migrates the schema, and keeps SQL data in dataDir', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-stores-'));
    dirs.push(dataDir);
    const time = new VirtualTime();
    const stores = await openStores({ dataDir, clock: time, scheduler: time, keyPrefix: `${testKeyPrefix('open')}` });
    assert.deepEqual(stores.embedded, { sql: true, redis: true });
    await stores.sql.execute('INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', ['u1', 'alice', 'admin', 'h', time.nowMs()]);
    await stores.bus.ensureGroup('s', 'g', '0');
    await stores.bus.append('s', { n: '1' });
    assert.equal((await stores.bus.readGroup('s', 'g', 'c', { count: 1 })).length, 1);
    assert.equal(await stores.kv.incr('n'), 1);
    await stores.close();
    assert.deepEqual(await readdir(dataDir), ['control-plane.sqlite']);
    const reopened = await openStores({ dataDir, clock: time, scheduler: time });
    assert.deepEqual(await reopened.sql.query('SELECT name FROM users'), [{ name: 'alice' }]);
    await reopened.close();
  });

  const redisUrl = process.env['REDIS_URL'];
  const mysqlUrl = process.env['MYSQL_URL'];
  // Needs both servers; without them the embedded case above still covers the wiring.
  it('opens the real adapters when URLs are given', { skip: redisUrl && mysqlUrl ? false : 'REDIS_URL and MYSQL_URL are not both set' }, async () => {
    const time = new VirtualTime();
    const keyPrefix = testKeyPrefix('open');
    // migrate: false keeps this test out of the shared database's tables; the SQL contract covers migrations.
    const stores = await openStores({ dataDir: '/nonexistent', redisUrl, mysqlUrl, clock: time, scheduler: time, keyPrefix, migrate: false });
    try {
      assert.deepEqual(stores.embedded, { sql: false, redis: false });
      assert.equal(stores.sql.dialect, 'mysql');
      assert.equal(await stores.kv.incr('n'), 1);
      await stores.bus.append('s', { n: '1' });
      assert.equal(await stores.bus.length('s'), 1);
    } finally {
      await stores.close();
      await deleteKeysWithPrefix(redisUrl as string, keyPrefix);
    }
  });
});
