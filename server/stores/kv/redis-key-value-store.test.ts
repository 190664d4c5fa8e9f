import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deleteKeysWithPrefix, testKeyPrefix } from '../redis-test-keys.js';
import { runKvContract } from './kv-contract.js';
import { createRedisKeyValueStore, subscriberConnectionName } from './redis-key-value-store.js';

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

  describe('KeyValueStore on Redis: a lost subscription', () => {
    it('tells the subscriber when its connection came back (what was published meanwhile is lost), and keeps delivering', async () => {
      const keyPrefix = `${basePrefix}resub:`;
      const store = createRedisKeyValueStore({ url: redisUrl, keyPrefix });
      const admin = new Redis(redisUrl);
      try {
        const heard: string[] = [];
        let resubscribed = 0;
        await store.subscribe('chan', (message) => { heard.push(message); }, { onResubscribed: () => { resubscribed += 1; } });
        await store.publish('chan', 'before');
        await eventually(() => heard.length === 1);
        assert.equal(resubscribed, 0, 'the first connection is not a resubscription');
        // Only our store's subscriber connection: other test files share this server.
        const list = String(await admin.client('LIST'));
        const ours = list.split('\n').filter((line) => line.includes(` name=${subscriberConnectionName(keyPrefix)} `));
        assert.equal(ours.length, 1);
        const id = /(?:^| )id=(\d+)/.exec(ours[0]!)![1]!;
        await admin.client('KILL', 'ID', id);
        await eventually(() => resubscribed === 1);
        await store.publish('chan', 'after');
        await eventually(() => heard.includes('after'));
        assert.deepEqual(heard, ['before', 'after']);
      } finally {
        await store.close();
        admin.disconnect();
      }
    });
  });
}

/** Polls `condition` every 20 ms for up to 10 s of real time (a reconnect takes ioredis tens of ms). */
async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(condition(), 'condition not met within 10 s');
}
