import { after, describe } from 'node:test';
import { deleteKeysWithPrefix, testKeyPrefix } from '../redis-test-keys.js';
import { runKvContract } from './kv-contract.js';
import { createRedisKeyValueStore } from './redis-key-value-store.js';

const redisUrl = process.env['REDIS_URL'];

if (redisUrl === undefined || redisUrl === '') {
  // No server configured (REDIS_URL unset, e.g. redis://127.0.0.1:6379/0). The same contract runs
  // on ioredis-mock in embedded-key-value-store.test.ts, so the port is still covered.
  describe('KeyValueStore contract: Redis', { skip: 'REDIS_URL is not set; embedded-key-value-store.test.ts runs the contract on ioredis-mock' }, () => {});
} else {
  const basePrefix = testKeyPrefix('kv');
  let run = 0;
  after(() => deleteKeysWithPrefix(redisUrl, basePrefix));
  runKvContract('Redis (ioredis)', {
    create: async (namespace = 'main') => createRedisKeyValueStore({ url: redisUrl, keyPrefix: `${basePrefix}${run}:${namespace}:` }),
    reset: async () => { run++; },
  });
}
