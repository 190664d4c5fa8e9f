import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import { literalMatchPattern } from './redis-prefix-cleanup.js';

/**
 * Test support for the "what a run leaves on the real stores" tests (chaos run, e2e harness,
 * control-plane harness, connection benches): the keys under a prefix, and whether a database is there.
 */
export async function keysUnder(redisUrl: string, prefix: string): Promise<string[]> {
  const client = new Redis(redisUrl);
  try {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', literalMatchPattern(prefix), 'COUNT', 1_000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    return found;
  } finally {
    client.disconnect();
  }
}

export async function databaseExists(mysqlUrl: string, name: string): Promise<boolean> {
  const connection = await createConnection({ uri: mysqlUrl });
  try {
    const [rows] = await connection.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name]);
    return (rows as unknown[]).length > 0;
  } finally {
    await connection.end();
  }
}
