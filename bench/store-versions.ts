import type { BenchValue } from './output.js';

/** A version query is one round trip; a store that does not answer in this time is reported as unreachable, not waited for. */
const storeVersionTimeoutMs = 2_000;

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), storeVersionTimeoutMs); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function redisVersion(url: string): Promise<string> {
  // Loaded here, not at the top: `sdc --help` must not load the store clients (test/packaging/built-cli.test.ts).
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: storeVersionTimeoutMs });
  try {
    await withTimeout(client.connect());
    const info = await withTimeout(client.info('server'));
    return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
  } finally {
    client.disconnect();
  }
}

async function mysqlVersion(url: string): Promise<string> {
  const mysql = (await import('mysql2/promise')).default;
  const connection = await withTimeout(mysql.createConnection({ uri: url, connectTimeout: storeVersionTimeoutMs }));
  try {
    const [rows] = await withTimeout(connection.query('SELECT VERSION() AS v'));
    return String((rows as Array<{ v: string }>)[0]?.v ?? 'unknown');
  } finally {
    await connection.end().catch(() => undefined);
  }
}

const urlOf = (value: BenchValue | string | boolean | string[] | boolean[] | undefined) => (typeof value === 'string' && /^(redis|rediss|mysql):\/\//.test(value) ? value : undefined);

/**
 * Versions of the stores a bench used: Redis from `--redis URL` (or a redis URL in its
 * parameters), MariaDB/MySQL from `--mysql URL`. A store that cannot be asked is reported as
 * `unreachable: <reason>` rather than failing a finished bench.
 */
export async function storeVersions(parameters: Readonly<Record<string, BenchValue>>, options: ParsedValues, _env: Readonly<Record<string, string | undefined>>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const redisUrl = urlOf(options['redis']) ?? Object.values(parameters).map(urlOf).find((u) => u?.startsWith('redis'));
  const mysqlUrl = urlOf(options['mysql']) ?? Object.values(parameters).map(urlOf).find((u) => u?.startsWith('mysql'));
  if (redisUrl !== undefined) out['redis'] = await redisVersion(redisUrl).catch((e: Error) => `unreachable: ${e.message}`);
  if (mysqlUrl !== undefined) out['mysql'] = await mysqlVersion(mysqlUrl).catch((e: Error) => `unreachable: ${e.message}`);
  return out;
}

type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;
