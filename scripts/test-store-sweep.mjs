// The test runner's clean-up of the real stores (REDIS_URL, MYSQL_URL) after a run.
//
// Each run of scripts/run-tests.mjs gives its test files a namespace of its own
// (SDC_TEST_STORE_NAMESPACE, 16 lowercase hex characters). The tests' harnesses put it into their
// Redis key prefixes and MySQL database names (server/stores/test-store-namespace.ts) and remove
// their data when they finish; a test file whose process was killed (the runner's file timeout) or
// crashed cannot, so after the run the runner deletes every key and database whose name carries the
// namespace, and says what it found (a passing file's missed clean-up shows there too). All the
// run's files have ended by then, and no other run shares it. ioredis and mysql2 are loaded only
// then, and only for a store whose URL is set: a run without the real stores loads neither.
// Cost, 6 December 2026 (load average 10): a sweep with nothing to remove on both stores, ioredis and
// mysql2 loaded, 0.18-0.19 s of CPU and 0.21-0.26 s wall (3 runs), once per run of the runner.
import { randomBytes } from 'node:crypto';

export const storeNamespaceVariable = 'SDC_TEST_STORE_NAMESPACE';
/** As server/stores/test-store-namespace.ts reads it: shorter or other characters are refused, never a broad pattern. */
const namespacePattern = /^[0-9a-f]{12,32}$/;
/** SCAN's COUNT hint and the largest UNLINK sent. */
const keyBatch = 500;
/** SCAN rounds at most: a bound on a server that never ends its cursor (a million keys scanned per 2,000 rounds). */
const scanRoundsMax = 200_000;
/** Databases dropped at most per sweep (a run makes a few per file). */
const databasesMax = 10_000;
const connectTimeoutMs = 5_000;

export function newStoreNamespace() {
  return randomBytes(8).toString('hex');
}

function checkNamespace(namespace) {
  if (typeof namespace !== 'string' || !namespacePattern.test(namespace)) {
    throw new Error(`refusing to sweep the stores under namespace ${JSON.stringify(namespace)}: a run's namespace is 12-32 lowercase hex characters`);
  }
}

/** Unlinks every key whose name contains `namespace`; answers how many. */
export async function sweepRedisKeys(url, namespace) {
  checkNamespace(namespace);
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: connectTimeoutMs, retryStrategy: () => null });
  client.on('error', () => undefined);
  let removed = 0;
  try {
    await client.connect();
    // Hex only, so no glob metacharacter to escape.
    const match = `*${namespace}*`;
    let cursor = '0';
    for (let round = 0; round < scanRoundsMax; round += 1) {
      const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', keyBatch);
      for (let i = 0; i < keys.length; i += keyBatch) removed += await client.unlink(...keys.slice(i, i + keyBatch));
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    client.disconnect();
  }
  return removed;
}

/** Drops every database whose name contains `namespace`; answers their names. */
export async function sweepMysqlDatabases(url, namespace) {
  checkNamespace(namespace);
  const { createConnection } = await import('mysql2/promise');
  // No database on the connection: the one the URL names is not ours to need.
  const server = new URL(url);
  server.pathname = '/';
  const connection = await createConnection({ uri: server.toString(), connectTimeout: connectTimeoutMs });
  const dropped = [];
  try {
    const [rows] = await connection.query('SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? LIMIT ?', [`%${namespace}%`, databasesMax]);
    for (const { name } of rows) {
      // LIKE's `_` matches any character: only names that hold the namespace itself, and no backtick.
      if (typeof name !== 'string' || !name.includes(namespace) || name.includes('`')) continue;
      await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      dropped.push(name);
    }
  } finally {
    await connection.end().catch(() => undefined);
  }
  return dropped;
}

/**
 * Both stores whose URL is set; a store that cannot be reached is reported, not thrown (the run's
 * outcome stands). Answers a line per store that had something left or could not be swept, for the runner to print.
 */
export async function sweepStores({ namespace, redisUrl, mysqlUrl }) {
  checkNamespace(namespace);
  const lines = [];
  if (redisUrl) {
    await sweepRedisKeys(redisUrl, namespace).then(
      (n) => { if (n > 0) lines.push(`Redis: ${n} keys left under the run's namespace ${namespace} removed`); },
      (error) => lines.push(`Redis: keys under the run's namespace ${namespace} not removed: ${error?.message ?? error}`));
  }
  if (mysqlUrl) {
    await sweepMysqlDatabases(mysqlUrl, namespace).then(
      (names) => { if (names.length > 0) lines.push(`MySQL: ${names.length} databases left with the run's namespace dropped (${names.join(', ')})`); },
      (error) => lines.push(`MySQL: databases of the run's namespace ${namespace} not dropped: ${error?.message ?? error}`));
  }
  return lines;
}
