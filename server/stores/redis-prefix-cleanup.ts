import { SdcError } from '../../core/errors/index.js';
import { ioredisLibrary } from './store-libraries.js';

/** Keys unlinked per round trip: SCAN's COUNT hint and the largest UNLINK sent. */
export const prefixCleanupBatch = 500;

/** `prefix` as a SCAN MATCH pattern that matches it literally (glob metacharacters escaped). */
export function literalMatchPattern(prefix: string): string {
  return `${prefix.replace(/[\\*?[\]^-]/g, (c) => `\\${c}`)}*`;
}

/**
 * Removes every key under `prefix` (SCAN MATCH on the prefix, UNLINK in batches of at most
 * prefixCleanupBatch) and answers how many were removed. For a run's or a test's own unique prefix
 * (e.g. `sdc-chaos-<tag>:`): a prefix without a separator at its end, or one that is too short to be
 * a run's own, is refused (STORE_INVALID_ARGUMENT), so that a mistake cannot empty a shared server.
 */
export async function removeKeysWithPrefix(url: string, prefix: string): Promise<number> {
  if (prefix.length < 8 || !prefix.endsWith(':')) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `refusing to remove keys under ${JSON.stringify(prefix)}: a run's own prefix ends with ':' and is at least 8 characters`);
  }
  const { Redis } = ioredisLibrary();
  const client = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: true });
  client.on('error', () => undefined);
  let removed = 0;
  try {
    await client.connect();
    const match = literalMatchPattern(prefix);
    let cursor = '0';
    // SCAN ends when the cursor comes back to 0; the bound only guards against a server that never says so.
    for (let round = 0; round < 10_000_000; round += 1) {
      const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', prefixCleanupBatch);
      for (let i = 0; i < keys.length; i += prefixCleanupBatch) removed += await client.unlink(...keys.slice(i, i + prefixCleanupBatch));
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    client.disconnect();
  }
  return removed;
}
