import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { literalMatchPattern, prefixCleanupBatch, removeKeysWithPrefix } from './redis-prefix-cleanup.js';
import { refusalCodeOf } from '../control-plane/test-support.js';

const redisUrl = process.env['REDIS_URL'];
const skip = redisUrl === undefined || redisUrl === '' ? 'REDIS_URL is not set' : false;

test('the MATCH pattern matches the prefix literally', () => {
  assert.equal(literalMatchPattern('sdc-chaos-ab12:'), 'sdc\\-chaos\\-ab12:*');
  assert.equal(literalMatchPattern('a*b?[c]:'), 'a\\*b\\?\\[c\\]:*');
});

test('a prefix that is not a run\'s own is refused before anything is sent', async () => {
  for (const prefix of ['', '*', 'sdc:', 'sdc-chaos-', 'sdc-e2e-*']) {
    assert.equal(await refusalCodeOf(removeKeysWithPrefix('redis://127.0.0.1:1', prefix)), 'STORE_INVALID_ARGUMENT', prefix);
  }
});

test('removes every key under the prefix, in batches, and no other', { skip }, async () => {
  const client = new Redis(redisUrl!);
  const tag = `sdc-test-h11-${randomBytes(4).toString('hex')}`;
  try {
    const count = prefixCleanupBatch * 2 + 7;
    const pipeline = client.pipeline();
    for (let i = 0; i < count; i += 1) pipeline.set(`${tag}-a:k${i}`, '1');
    pipeline.xadd(`${tag}-a:bus:stream`, '*', 'f', 'v');
    pipeline.set(`${tag}-ab:other`, '1');
    pipeline.set(`${tag}-b:x`, '1');
    await pipeline.exec();
    assert.equal(await removeKeysWithPrefix(redisUrl!, `${tag}-a:`), count + 1);
    const left: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${tag}*`, 'COUNT', 1000);
      left.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    assert.deepEqual(left.sort(), [`${tag}-ab:other`, `${tag}-b:x`]);
  } finally {
    await client.del(`${tag}-ab:other`, `${tag}-b:x`);
    client.disconnect();
  }
});
