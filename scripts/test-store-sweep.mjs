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
// Bounded in time (review h13): a store that accepts and never answers, or a database whose tables a
// still-live process holds open (a killed file's deployment child keeping its connection), must not
// keep the runner from ending. Each request has a time limit, the whole sweep has a deadline, and
// what was not removed is reported; the run's exit code stands either way.
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
/** One request's time limit (ioredis's commandTimeout, its CLIENT SETINFO at connect included; mysql2's query timeout). */
const requestTimeoutMs = 5_000;
/** MariaDB's wait for a metadata lock in DROP DATABASE, seconds: its default (lock_wait_timeout) is a day. */
const lockWaitTimeoutSeconds = 5;
/** Above lock_wait_timeout, so a held lock is reported as the server's lock wait error, not as our time-out. */
const dropTimeoutMs = 10_000;
/** The whole sweep, both stores: after it the connections are closed and what is left reported. */
export const sweepDeadlineMs = 30_000;

export function newStoreNamespace() {
  return randomBytes(8).toString('hex');
}

function checkNamespace(namespace) {
  if (typeof namespace !== 'string' || !namespacePattern.test(namespace)) {
    throw new Error(`refusing to sweep the stores under namespace ${JSON.stringify(namespace)}: a run's namespace is 12-32 lowercase hex characters`);
  }
}

/**
 * Unlinks every key whose name contains `namespace`; answers how many. `signal` ends it early: the
 * connection is closed and the answer is a rejection.
 */
export async function sweepRedisKeys(url, namespace, { signal } = {}) {
  checkNamespace(namespace);
  signal?.throwIfAborted();
  const { Redis } = await import('ioredis');
  // No reconnection and no request sent twice: a store that does not answer is reported, not waited for.
  const client = new Redis(url, {
    lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: connectTimeoutMs, commandTimeout: requestTimeoutMs,
    // No ready check: its INFO failing says only "Connection is closed"; SCAN's own time-out or error says what happened.
    retryStrategy: () => null, enableOfflineQueue: false, enableReadyCheck: false,
  });
  client.on('error', () => undefined);
  const stop = () => client.disconnect();
  signal?.addEventListener('abort', stop, { once: true });
  let removed = 0;
  try {
    await untilAborted(signal, async () => {
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
    });
  } finally {
    signal?.removeEventListener('abort', stop);
    client.disconnect();
  }
  return removed;
}

/**
 * Drops every database whose name contains `namespace`; answers their names. A database whose tables
 * another connection holds open is not waited for past lock_wait_timeout: the error names it, and
 * `error.dropped` the databases dropped before it. `signal` ends it early, as for Redis.
 */
export async function sweepMysqlDatabases(url, namespace, { signal } = {}) {
  checkNamespace(namespace);
  signal?.throwIfAborted();
  const { createConnection } = await import('mysql2/promise');
  // No database on the connection: the one the URL names is not ours to need.
  const server = new URL(url);
  server.pathname = '/';
  // connectTimeout covers the handshake too (mysql2 clears it once the connection is ready).
  const connecting = createConnection({ uri: server.toString(), connectTimeout: connectTimeoutMs });
  // One that connects after the deadline gave up on it is closed then, not left open.
  connecting.then((late) => { if (signal?.aborted) late.destroy(); }, () => undefined);
  const connection = await untilAborted(signal, () => connecting);
  // A query that timed out stays first in the connection's queue, so QUIT would wait behind it: destroyed instead.
  let clean = false;
  let usable = true;
  const stop = () => connection.destroy();
  signal?.addEventListener('abort', stop, { once: true });
  const dropped = [];
  const failed = [];
  try {
    await untilAborted(signal, async () => {
      await connection.query({ sql: `SET SESSION lock_wait_timeout = ${lockWaitTimeoutSeconds}`, timeout: requestTimeoutMs });
      const [rows] = await connection.query({
        sql: 'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? LIMIT ?', timeout: requestTimeoutMs,
      }, [`%${namespace}%`, databasesMax]);
      for (const { name } of rows) {
        // LIKE's `_` matches any character: only names that hold the namespace itself, and no backtick.
        if (typeof name !== 'string' || !name.includes(namespace) || name.includes('`')) continue;
        try {
          await connection.query({ sql: `DROP DATABASE IF EXISTS \`${name}\``, timeout: dropTimeoutMs });
          dropped.push(name);
        } catch (error) {
          failed.push(`${name} not dropped: ${error?.message ?? error}`);
          // A locked database is skipped, the others still dropped; after our own time-out the connection waits behind that query.
          if (error?.code === 'PROTOCOL_SEQUENCE_TIMEOUT') { usable = false; break; }
        }
      }
    });
    clean = usable;
    if (failed.length > 0) throw Object.assign(new Error(failed.join('; ')), { dropped });
  } finally {
    signal?.removeEventListener('abort', stop);
    if (clean) await connection.end().catch(() => connection.destroy());
    else connection.destroy();
  }
  return dropped;
}

/** `work()`, or a rejection as soon as `signal` aborts (its clean-up, closing the connection, is the caller's). */
async function untilAborted(signal, work) {
  if (!signal) return work();
  signal.throwIfAborted();
  let onAbort;
  const aborted = new Promise((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const running = work();
  // The work's own rejection after the abort is expected (its connection closed): not an unhandled one.
  running.catch(() => undefined);
  try {
    return await Promise.race([running, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Both stores whose URL is set; a store that cannot be reached, does not answer, or keeps a database
 * locked is reported, not thrown (the run's outcome stands), and the whole sweep ends by `deadlineMs`.
 * Answers a line per store that had something left or could not be swept, for the runner to print.
 */
export async function sweepStores({ namespace, redisUrl, mysqlUrl, deadlineMs = sweepDeadlineMs }) {
  checkNamespace(namespace);
  const lines = [];
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no answer within the sweep's ${deadlineMs} ms`)), deadlineMs);
  const { signal } = deadline;
  try {
    if (redisUrl) {
      await sweepRedisKeys(redisUrl, namespace, { signal }).then(
        (n) => { if (n > 0) lines.push(`Redis: ${n} keys left under the run's namespace ${namespace} removed`); },
        (error) => lines.push(`Redis: keys under the run's namespace ${namespace} not removed: ${error?.message ?? error}`));
    }
    if (mysqlUrl) {
      const droppedLine = (names) => `MySQL: ${names.length} databases left with the run's namespace dropped (${names.join(', ')})`;
      await sweepMysqlDatabases(mysqlUrl, namespace, { signal }).then(
        (names) => { if (names.length > 0) lines.push(droppedLine(names)); },
        (error) => {
          if (error?.dropped?.length > 0) lines.push(droppedLine(error.dropped));
          lines.push(`MySQL: databases of the run's namespace ${namespace} not dropped: ${error?.message ?? error}`);
        });
    }
  } finally {
    clearTimeout(timer);
  }
  return lines;
}
