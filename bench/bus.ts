import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { systemClock, systemScheduler } from '../runtime/system.js';
import type { StreamBus } from '../server/stores/bus/bus-port.js';
import { MemoryStreamBus } from '../server/stores/bus/memory-stream-bus.js';

/**
 * Stream appends per second through the bus port, one by one, with many in flight, and in
 * batches (appendBatch, one pipeline each), beside `redis-benchmark` XADD on the same server with
 * the same entry: the server's own ceiling, measured in the same run. The in-memory adapter has
 * its own same-run baseline (issue 14): a plain array push of the same entry in the same timed
 * loop, so its ratio shows what the adapter adds (ids, trimming, its copy of the fields).
 */

export interface BusBenchOptions {
  /** Wall time of each adapter case. */
  durationMsPerCase: number;
  /** redis://host:port/db; absent: the in-memory adapter only. */
  redisUrl?: string;
  batchEntries?: number;
  inFlight?: number;
  /** Bytes of the entry's payload field: about one telemetry frame. */
  payloadBytes?: number;
  nowMs?: () => number;
}

export interface BusBenchRow {
  adapter: 'memory' | 'array-push' | 'redis' | 'redis-benchmark';
  mode: string;
  appends: number;
  elapsed_ms: number;
  appends_per_s: number;
  /** appends_per_s / redis-benchmark's; null without the baseline. */
  ratio_to_redis_benchmark: number | null;
  /** The in-memory rows' appends_per_s / a plain array push's, measured in the same run; null for the other rows. */
  ratio_to_array_push: number | null;
}

export const busBenchDefaults = { batchEntries: 100, inFlight: 64, payloadBytes: 400 } as const;
/** Entries kept per bench stream: bounds the server's memory whatever the duration. */
const benchMaxLen = 100_000;
const benchStream = 'sdc-bench:bus';
/** A hard stop for a case whatever the clock says. */
const appendsMax = 50_000_000;
/** redis-benchmark gets as many requests as the fastest adapter case made, at least this many. */
const baselineRequestsMin = 20_000;
const baselineTimeoutMs = 120_000;

type Appender = () => Promise<number>;

function entry(payloadBytes: number): Record<string, string> {
  return { kind: 'telemetry', data: 'x'.repeat(payloadBytes) };
}

async function measure(append: Appender, durationMs: number, nowMs: () => number): Promise<{ appends: number; elapsedMs: number }> {
  for (let i = 0; i < 8; i++) await append(); // warm-up: connection, JIT
  const startMs = nowMs();
  let appends = 0;
  let elapsedMs = 0;
  while (elapsedMs < durationMs && appends < appendsMax) {
    appends += await append();
    elapsedMs = nowMs() - startMs;
  }
  return { appends, elapsedMs };
}

function appenders(bus: StreamBus, options: { batchEntries: number; inFlight: number; payloadBytes: number }): Array<[string, Appender]> {
  const fields = entry(options.payloadBytes);
  const batch = Array.from({ length: options.batchEntries }, () => fields);
  const opts = { maxLen: benchMaxLen };
  const one = async () => { await bus.append(benchStream, fields, opts); return 1; };
  return [
    ['sequential', one],
    [`${options.inFlight} in flight`, async () => (await Promise.all(Array.from({ length: options.inFlight }, one))).length],
    [`batch ${options.batchEntries}`, async () => (await bus.appendBatch(benchStream, batch, opts)).length],
    [`batch ${options.batchEntries}, 4 in flight`, async () => (await Promise.all(Array.from({ length: 4 }, () => bus.appendBatch(benchStream, batch, opts)))).flat().length],
  ];
}

async function measureAdapter(adapter: 'memory' | 'redis', bus: StreamBus, options: BusBenchOptions & { batchEntries: number; inFlight: number; payloadBytes: number }, nowMs: () => number): Promise<BusBenchRow[]> {
  const rows: BusBenchRow[] = [];
  for (const [mode, append] of appenders(bus, options)) {
    const { appends, elapsedMs } = await measure(append, options.durationMsPerCase, nowMs);
    rows.push({ adapter, mode, appends, elapsed_ms: elapsedMs, appends_per_s: elapsedMs > 0 ? (appends * 1000) / elapsedMs : 0, ratio_to_redis_benchmark: null, ratio_to_array_push: null });
  }
  return rows;
}

/**
 * The in-memory adapter's baseline: the same entry pushed onto a plain array through the same
 * timed loop (one awaited call per append, as the adapter's sequential case), emptied at the
 * stream's cap so that memory stays bounded whatever the duration.
 */
async function measureArrayPush(options: { durationMsPerCase: number; payloadBytes: number }, nowMs: () => number): Promise<BusBenchRow> {
  const fields = entry(options.payloadBytes);
  const array: Array<Record<string, string>> = [];
  const push = async () => {
    if (array.length >= benchMaxLen) array.length = 0;
    array.push(fields);
    return 1;
  };
  const { appends, elapsedMs } = await measure(push, options.durationMsPerCase, nowMs);
  return { adapter: 'array-push', mode: 'Array push, one by one (baseline of memory)', appends, elapsed_ms: elapsedMs, appends_per_s: elapsedMs > 0 ? (appends * 1000) / elapsedMs : 0, ratio_to_redis_benchmark: null, ratio_to_array_push: 1 };
}

/** `redis-benchmark` XADD with the same entry and trim; undefined if the tool is missing or fails (the reason in `note`). */
export async function redisBenchmarkXadd(redisUrl: string, requests: number, payloadBytes: number): Promise<{ perSecond: number; requests: number } | { note: string }> {
  const url = new URL(redisUrl);
  const db = url.pathname.replace('/', '') || '0';
  const args = ['-h', url.hostname, '-p', url.port || '6379', '--dbnum', db, '-n', String(requests), '-q',
    'XADD', `${benchStream}:redis-benchmark`, 'MAXLEN', '~', String(benchMaxLen), '*', 'kind', 'telemetry', 'data', 'x'.repeat(payloadBytes)];
  try {
    const { stdout } = await promisify(execFile)('redis-benchmark', args, { timeout: baselineTimeoutMs, maxBuffer: 1 << 20 });
    const match = /([\d.]+) requests per second/.exec(stdout.split('\r').at(-1) ?? stdout);
    if (match === null) return { note: `redis-benchmark printed no rate: ${stdout.slice(-200)}` };
    return { perSecond: Number(match[1]), requests };
  } catch (error) {
    return { note: `redis-benchmark did not run: ${(error as Error).message.split('\n')[0]}` };
  }
}

export interface BusBenchOutcome {
  rows: BusBenchRow[];
  /** Why there is no redis-benchmark row, if there is none. */
  baselineNote?: string;
}

export async function runBusBench(input: BusBenchOptions): Promise<BusBenchOutcome> {
  const options: BusBenchOptions & { batchEntries: number; inFlight: number; payloadBytes: number } = { ...busBenchDefaults, ...input };
  const nowMs = input.nowMs ?? (() => performance.now());
  const memory = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler, entriesPerStreamMax: benchMaxLen });
  const memoryRows = await measureAdapter('memory', memory, options, nowMs);
  await memory.close();
  const arrayPush = await measureArrayPush(options, nowMs);
  const rows = [
    ...memoryRows.map((row) => ({ ...row, ratio_to_array_push: arrayPush.appends_per_s > 0 ? row.appends_per_s / arrayPush.appends_per_s : null })),
    arrayPush,
  ];
  if (input.redisUrl === undefined) return { rows, baselineNote: 'no --redis URL: the in-memory adapter only' };
  // Imported here, not at the top: ioredis would cost every start of the CLI (`sdc --help` loads the bench commands).
  const { RedisStreamBus } = await import('../server/stores/bus/redis-stream-bus.js');
  const redis = new RedisStreamBus({ url: input.redisUrl, keyPrefix: '' });
  let redisRows: BusBenchRow[];
  try {
    redisRows = await measureAdapter('redis', redis, options, nowMs);
  } finally {
    await redis.close();
  }
  const requests = Math.max(baselineRequestsMin, ...redisRows.map((r) => r.appends));
  const baseline = await redisBenchmarkXadd(input.redisUrl, requests, options.payloadBytes);
  await deleteBenchStreams(input.redisUrl);
  if ('note' in baseline) return { rows: [...rows, ...redisRows], baselineNote: baseline.note };
  const ratio = (perSecond: number) => perSecond / baseline.perSecond;
  return {
    rows: [
      ...rows,
      ...redisRows.map((row) => ({ ...row, ratio_to_redis_benchmark: ratio(row.appends_per_s) })),
      { adapter: 'redis-benchmark', mode: 'XADD, 50 clients (its default)', appends: baseline.requests, elapsed_ms: (baseline.requests * 1000) / baseline.perSecond, appends_per_s: baseline.perSecond, ratio_to_redis_benchmark: 1, ratio_to_array_push: null },
    ],
  };
}

async function deleteBenchStreams(redisUrl: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await client.del(benchStream, `${benchStream}:redis-benchmark`);
  } finally {
    client.disconnect();
  }
}
