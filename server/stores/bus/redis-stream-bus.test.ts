import { after, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { deleteKeysWithPrefix, testKeyPrefix } from '../redis-test-keys.js';
import { runBusContract } from './bus-contract.js';
import { RedisStreamBus } from './redis-stream-bus.js';

const redisUrl = process.env['REDIS_URL'];

if (redisUrl === undefined || redisUrl === '') {
  // No server configured (REDIS_URL unset, e.g. redis://127.0.0.1:6379/0). The same contract runs
  // against the in-memory adapter in memory-stream-bus.test.ts, so the port is still covered.
  describe('StreamBus contract: Redis Streams', { skip: 'REDIS_URL is not set; memory-stream-bus.test.ts runs the contract in memory' }, () => {});
} else {
  const basePrefix = testKeyPrefix('bus');
  let resets = 0;
  let prefix = basePrefix;
  after(() => deleteKeysWithPrefix(redisUrl, basePrefix));

  runBusContract('Redis Streams (ioredis)', {
    create: async () => new RedisStreamBus({ url: redisUrl, keyPrefix: prefix }),
    // A fresh prefix per test: nothing to delete now, everything under basePrefix goes at the end.
    reset: async () => { prefix = `${basePrefix}${resets++}:`; },
    // Idle times are measured by the Redis server, so real time has to pass.
    advance: (ms) => sleep(ms),
    // Every key of this test's bus, so FLUSHALL's effect without touching the shared server's other keys.
    wipe: () => deleteKeysWithPrefix(redisUrl, prefix),
  });
}
