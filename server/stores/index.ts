import type { Clock, Scheduler } from '../../core/ports/ports.js';
import type { StreamBus } from './bus/bus-port.js';
import { MemoryStreamBus } from './bus/memory-stream-bus.js';
import { RedisStreamBus } from './bus/redis-stream-bus.js';
import type { KeyValueStore } from './kv/kv-port.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from './kv/redis-key-value-store.js';
import { controlPlaneMigrations } from './sql/control-plane-migrations.js';
import { migrate } from './sql/migrate.js';
import { createMysqlDatabase } from './sql/mysql-database.js';
import type { SqlDatabase } from './sql/sql-port.js';
import { openSqlJsDatabase, type SqlJsDurability } from './sql/sqljs-database.js';
import { parseStoreUrl } from './store-url.js';

export type { SqlDatabase, SqlExecutor, SqlDialect, SqlValue, ExecuteResult } from './sql/sql-port.js';
export type { StreamBus, BusEntry, PendingEntry } from './bus/bus-port.js';
export { deadLetterStream, deadFields } from './bus/bus-port.js';
export type { KeyValueStore, SetOptions, MessageHandler } from './kv/kv-port.js';
export { migrate, type Migration } from './sql/migrate.js';
export { controlPlaneMigrations, controlPlaneTables } from './sql/control-plane-migrations.js';
export { openSqlJsDatabase, type SqlJsDatabase, type SqlJsDurability } from './sql/sqljs-database.js';
export { createMysqlDatabase } from './sql/mysql-database.js';
export { parseStoreUrl, redactUrlText, scrubPassword, type StoreTarget } from './store-url.js';
export { MemoryStreamBus } from './bus/memory-stream-bus.js';
export { RedisStreamBus } from './bus/redis-stream-bus.js';
export { RedisKeyValueStore, createEmbeddedKeyValueStore, createRedisKeyValueStore } from './kv/redis-key-value-store.js';

export interface OpenStoresOptions {
  /** Holds the embedded SQL file when no mysqlUrl is given. */
  readonly dataDir: string;
  /** Name of the embedded SQL file in dataDir (the adapter's default when absent). */
  readonly sqlFileName?: string;
  /** Real Redis for the bus and the key/value store; without it both are embedded. */
  readonly redisUrl?: string;
  /** Real MySQL/MariaDB; without it SQL is sql.js in dataDir. */
  readonly mysqlUrl?: string;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Prefix for Redis keys and channels (default `sdc:`), so several deployments can share a server. */
  readonly keyPrefix?: string;
  readonly sqlDurability?: SqlJsDurability;
  /** Apply controlPlaneMigrations on open (default true). */
  readonly migrate?: boolean;
}

export interface Stores {
  readonly sql: SqlDatabase;
  readonly bus: StreamBus;
  readonly kv: KeyValueStore;
  readonly embedded: { readonly sql: boolean; readonly redis: boolean };
  /** Closes all three; the first failure (e.g. a final save that failed) is rethrown after all were tried. */
  close(): Promise<void>;
}

/** The SQL store alone: MySQL when a URL is given, sql.js in dataDir otherwise; migrated unless told not to. */
export async function openSqlStore(options: OpenStoresOptions): Promise<SqlDatabase> {
  const sql = options.mysqlUrl !== undefined
    ? await createMysqlDatabase({ url: options.mysqlUrl })
    : await openSqlJsDatabase({
      dataDir: options.dataDir,
      ...(options.sqlFileName === undefined ? {} : { fileName: options.sqlFileName }),
      scheduler: options.scheduler,
      ...(options.sqlDurability === undefined ? {} : { durability: options.sqlDurability }),
    });
  try {
    if (options.migrate !== false) await migrate(sql, controlPlaneMigrations, { clock: options.clock });
  } catch (error) {
    await sql.close().catch(() => undefined);
    throw error;
  }
  return sql;
}

/**
 * The bus and the key/value store: Redis clients when a URL is given (they connect in the
 * background and retry on their own; the first command says whether Redis answers), embedded
 * otherwise.
 */
export function openBusAndKv(options: Pick<OpenStoresOptions, 'redisUrl' | 'keyPrefix' | 'clock' | 'scheduler'>): { bus: StreamBus; kv: KeyValueStore } {
  const keyPrefix = options.keyPrefix ?? 'sdc:';
  const bus: StreamBus = options.redisUrl !== undefined
    ? new RedisStreamBus({ url: options.redisUrl, keyPrefix: `${keyPrefix}bus:` })
    : new MemoryStreamBus({ clock: options.clock, scheduler: options.scheduler });
  const kv = options.redisUrl !== undefined
    ? createRedisKeyValueStore({ url: options.redisUrl, keyPrefix: `${keyPrefix}kv:` })
    : createEmbeddedKeyValueStore({ keyPrefix: `${keyPrefix}kv:` });
  return { bus, kv };
}

/** The three opened stores as one Stores object; close() closes all three. */
export function combineStores(sql: SqlDatabase, busAndKv: { bus: StreamBus; kv: KeyValueStore }, embedded: Stores['embedded']): Stores {
  const { bus, kv } = busAndKv;
  return {
    sql, bus, kv, embedded,
    async close() {
      const results = await Promise.allSettled([bus.close(), kv.close(), sql.close()]);
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
    },
  };
}

/** Opens the three stores, real where a URL is given and embedded otherwise, and migrates the SQL schema. */
export async function openStores(options: OpenStoresOptions): Promise<Stores> {
  // Both URLs are checked before anything opens; ioredis would retry an unusable one without naming it.
  if (options.redisUrl !== undefined) parseStoreUrl('redis', options.redisUrl);
  if (options.mysqlUrl !== undefined) parseStoreUrl('mysql', options.mysqlUrl);
  const sql = await openSqlStore(options);
  return combineStores(sql, openBusAndKv(options), { sql: options.mysqlUrl === undefined, redis: options.redisUrl === undefined });
}
