// The scale-out benches (`sdc bench connections` and `reconnect`) keep their fleet under a Redis
// key prefix of the data directory's (sdc-bench-conn-<hash>:). A run in a temporary directory
// removes the directory and, now, its keys when it closes; a kept --dir keeps both for the next run.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { removeKeysWithPrefix } from '../server/stores/redis-prefix-cleanup.js';
import { startScaleOut } from './connections-setup.js';
import { keysUnder } from '../server/stores/leftovers-test-support.js';

const redisUrl = process.env['REDIS_URL'];

const smallest = { agents: 1, gateways: [], rampPerSecond: 100, agentsPerProcess: 1, progress: () => undefined };

describe('bench scale-out set-up: its Redis keys', { skip: redisUrl ? false : 'needs REDIS_URL' }, () => {
  it('a run in a temporary directory leaves no key under its prefix', async () => {
    const scale = await startScaleOut({ ...smallest, redisUrl: redisUrl! });
    assert.match(scale.keyPrefix, /^sdc-bench-conn-[0-9a-f]{12}:$/);
    assert.ok((await keysUnder(redisUrl!, scale.keyPrefix)).length > 0, 'the fleet is in Redis while the run is on');
    await scale.close();
    assert.deepEqual(await keysUnder(redisUrl!, scale.keyPrefix), []);
  });

  it('a kept --dir keeps its keys for the next run', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-bench-conn-kept-'));
    const scale = await startScaleOut({ ...smallest, redisUrl: redisUrl!, dataDir });
    try {
      await scale.close();
      assert.ok((await keysUnder(redisUrl!, scale.keyPrefix)).length > 0);
    } finally {
      await removeKeysWithPrefix(redisUrl!, scale.keyPrefix);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
