import { Redis } from 'ioredis';
import { testStoreTag } from './test-store-namespace.js';

/**
 * A key prefix unique to this test process, so test files sharing a Redis server never collide; the
 * test runner's namespace inside (testStoreTag), so that the runner removes the keys of a killed file.
 */
export function testKeyPrefix(kind: string): string {
  return `sdc-test:${kind}:${process.pid}:${testStoreTag()}:`;
}

/** Deletes every key under `prefix` (SCAN, bounded batches). */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 3 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await client.quit();
  }
}
