import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { RandomSource, Scheduler } from '../../core/ports/ports.js';
import { streamNames } from '../bus-contract/streams.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { combineStores, openBusAndKv, openSqlStore, type OpenStoresOptions, type Stores } from '../stores/index.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { parseStoreUrl, scrubPassword, type StoreTarget } from '../stores/store-url.js';
import type { Dependency, Readiness } from './readiness.js';

/**
 * How long a starting process waits for a store that does not answer yet (a database still
 * starting under compose or systemd). Attempts back off exponentially from backoffMsInitial up to
 * backoffMsMax, with jitter, so processes started together do not knock in step; after
 * attemptsMax the start fails with STORE_UNAVAILABLE.
 */
export interface StoreRetryLimits {
  readonly attemptsMax: number;
  readonly backoffMsInitial: number;
  readonly backoffMsMax: number;
}

/** One attempt: a store that is down fails the start at once (sdc demo, tests). */
export const storeRetryNone: StoreRetryLimits = Object.freeze({ attemptsMax: 1, backoffMsInitial: 0, backoffMsMax: 0 });

/** `sdc serve` and `sdc gateway`: 40 attempts, waits of 0.5 s doubling to 15 s, about 9 minutes in all. */
export const storeRetryServe: StoreRetryLimits = Object.freeze({ attemptsMax: 40, backoffMsInitial: 500, backoffMsMax: 15_000 });

export interface UntilReachableOptions<T> {
  /** What is reached, for logs and readiness: `mysql` or `redis`. */
  readonly target: StoreTarget;
  readonly limits: StoreRetryLimits;
  readonly scheduler: Scheduler;
  readonly random: RandomSource;
  readonly logger: Logger;
  readonly readiness?: Readiness;
  /** Set when a sibling connect failed for good: stop waiting. */
  readonly abandoned?: () => boolean;
  readonly connect: () => Promise<T>;
}

/** The wait before attempt `attempt + 1`: exponential, capped, the upper half jittered. */
export function retryDelayMs(limits: StoreRetryLimits, attempt: number, random: RandomSource): number {
  const capped = Math.min(limits.backoffMsMax, limits.backoffMsInitial * 2 ** Math.min(attempt - 1, 30));
  const half = Math.floor(capped / 2);
  return half + (half > 0 ? random.intBelow(half + 1) : 0);
}

function sleep(scheduler: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => scheduler.schedule(ms, resolve));
}

/**
 * Calls `connect` until it succeeds. Only STORE_UNAVAILABLE (not reachable, refused, not up yet)
 * is retried; anything else (a bad password is also STORE_UNAVAILABLE on MySQL, and is retried
 * within the same bound) fails at once. Every failed attempt is logged with the store and its
 * address, never its password.
 */
export async function untilReachable<T>(options: UntilReachableOptions<T>): Promise<T> {
  const { target, limits, logger } = options;
  const store = target.kind;
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await options.connect();
      options.readiness?.markUp(store);
      if (attempt > 1) logger.info({ store, target: target.display, attempt }, `${store} reachable`);
      return value;
    } catch (error) {
      const retriable = SdcError.is(error, 'STORE_UNAVAILABLE') && attempt < limits.attemptsMax && options.abandoned?.() !== true;
      const detail = scrubPassword(error instanceof Error ? error.message : String(error), target);
      options.readiness?.markDown(store, SdcError.is(error) ? error.code : 'STORE_UNAVAILABLE');
      if (!retriable) {
        if (!SdcError.is(error, 'STORE_UNAVAILABLE')) throw error;
        logger.error({ store, target: target.display, attempt, attemptsMax: limits.attemptsMax, detail }, `${store} not reachable; giving up`);
        throw new SdcError('STORE_UNAVAILABLE', `${store} at ${target.display} not reachable after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${detail}`, { store }, { cause: error });
      }
      const retryInMs = retryDelayMs(limits, attempt, options.random);
      logger.warn({ store, target: target.display, attempt, attemptsMax: limits.attemptsMax, retryInMs, detail }, `${store} not reachable; retrying`);
      await sleep(options.scheduler, retryInMs);
    }
  }
}

/** Redis answers when both clients do: the bus's and the key/value store's. */
export async function pingBusAndKv(stores: { bus: StreamBus; kv: KeyValueStore }): Promise<void> {
  await Promise.all([stores.bus.length(streamNames.events), stores.kv.get('readyz')]);
}

/** The store targets of a deployment's URLs, checked (STORE_URL_INVALID) before anything opens. */
export function storeTargets(urls: { mysqlUrl?: string | undefined; redisUrl?: string | undefined }): { mysql?: StoreTarget; redis?: StoreTarget } {
  return {
    ...(urls.mysqlUrl === undefined ? {} : { mysql: parseStoreUrl('mysql', urls.mysqlUrl) }),
    ...(urls.redisUrl === undefined ? {} : { redis: parseStoreUrl('redis', urls.redisUrl) }),
  };
}

export interface ConnectStoresOptions {
  readonly open: OpenStoresOptions;
  /** False for a gateway-only process: no SQL, and the bus and key/value store must be Redis. */
  readonly withSql: boolean;
  readonly limits: StoreRetryLimits;
  readonly random: RandomSource;
  readonly logger: Logger;
  readonly readiness?: Readiness;
}

/** What connectStores opened: the three stores, or a gateway-only process's bus and key/value store. */
export type ConnectedStores = Stores | (Omit<Stores, 'sql'> & { readonly sql: undefined });

/**
 * Opens a deployment's stores, waiting for each real one within `limits`: SQL and Redis are
 * awaited side by side, so readiness names each one that is down. If one fails for good, the
 * other stops waiting and whatever was opened is closed before the failure is thrown.
 */
export async function connectStores(options: ConnectStoresOptions): Promise<ConnectedStores> {
  const { open } = options;
  const targets = storeTargets(open);
  const busAndKv = openBusAndKv(open);
  let failed = false;
  const common = { limits: options.limits, scheduler: open.scheduler, random: options.random, logger: options.logger, readiness: options.readiness, abandoned: () => failed };
  const noteFailure = (error: unknown): never => { failed = true; throw error; };
  const sqlTask: Promise<SqlDatabase | undefined> = !options.withSql ? Promise.resolve(undefined)
    : targets.mysql !== undefined ? untilReachable({ ...common, target: targets.mysql, connect: () => openSqlStore(open) }).catch(noteFailure)
      : openSqlStore(open).then((sql) => { options.readiness?.markUp('sql.js'); return sql; }, noteFailure);
  const redisTask: Promise<void> = targets.redis !== undefined
    ? untilReachable({ ...common, target: targets.redis, connect: () => pingBusAndKv(busAndKv) }).catch(noteFailure)
    : Promise.resolve(options.readiness?.markUp('embedded'));
  const [sqlResult, redisResult] = await Promise.allSettled([sqlTask, redisTask]);
  if (sqlResult.status === 'rejected' || redisResult.status === 'rejected') {
    const closing: Array<Promise<unknown>> = [busAndKv.bus.close(), busAndKv.kv.close()];
    if (sqlResult.status === 'fulfilled' && sqlResult.value !== undefined) closing.push(sqlResult.value.close());
    await Promise.allSettled(closing);
    throw sqlResult.status === 'rejected' ? sqlResult.reason : (redisResult as PromiseRejectedResult).reason;
  }
  const embedded = { sql: options.withSql && targets.mysql === undefined, redis: targets.redis === undefined };
  if (sqlResult.value !== undefined) return combineStores(sqlResult.value, busAndKv, embedded);
  return {
    sql: undefined, ...busAndKv, embedded,
    async close() {
      await Promise.allSettled([busAndKv.bus.close(), busAndKv.kv.close()]);
    },
  };
}

/** The stores a control-plane process depends on, by the names readiness reports. */
export function deploymentDependencies(urls: { mysqlUrl?: string | undefined; redisUrl?: string | undefined }, withSql: boolean): Dependency[] {
  return [
    ...(withSql ? [{ name: urls.mysqlUrl === undefined ? 'sql.js' : 'mysql', role: 'sql' as const }] : []),
    { name: urls.redisUrl === undefined ? 'embedded' : 'redis', role: 'bus and key/value' as const },
  ];
}

/** Live probes of the opened stores for /readyz, by dependency name. */
export function storeProbes(stores: ConnectedStores): Map<string, () => Promise<unknown>> {
  const probes = new Map<string, () => Promise<unknown>>();
  if (stores.sql !== undefined) probes.set(stores.embedded.sql ? 'sql.js' : 'mysql', () => stores.sql!.query('SELECT 1 AS ok'));
  probes.set(stores.embedded.redis ? 'embedded' : 'redis', () => pingBusAndKv(stores));
  return probes;
}
