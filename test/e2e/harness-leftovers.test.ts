// The e2e harness (startE2e) runs the deployment on Redis under a key prefix of its own,
// sdc-e2e-<tag>:. stop() removes those keys (SDC_TEST_KEEP_STORES=1 keeps them): before, every
// e2e file on Redis left its streams and key/value entries behind (3,000 keys after a day's runs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startE2e, storeTargets } from './support/e2e-harness.js';
import { keysUnder } from '../../server/stores/leftovers-test-support.js';

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
});
