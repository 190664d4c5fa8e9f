// What sending the key/value store's scripts by SHA (EVALSHA) instead of by text (EVAL) saves per
// compare-and-set, the call the gateway's presence refresh makes for every heartbeat (issue 15).
// Not a test and not a bench with a baseline: a measurement to repeat against a real Redis.
//
//   npx tsx scripts/measure-kv-scripts.ts [--calls 20000] [--rounds 3] [--widths 1,100] [--redis URL]
//   (default URL: REDIS_URL, else redis://127.0.0.1:6379)
//
// Both ways run through the same RedisKeyValueStore in the same process, alternating, `rounds`
// times: "sha" is the store as it is; "text" replaces the client's EVALSHA with an EVAL of the
// script's text (what the store sent before). `width` calls are started at once
// (width 1: one at a time; width 100: ioredis autopipelining joins them into one write, as the
// gateway's presence refresh window does). Per call: bytes the client's socket wrote, Redis's
// total_net_input_bytes (server-wide: other clients of the server count too), the CPU of this
// process (process.cpuUsage) and of Redis (INFO cpu, user + sys). Keys and values are shaped like
// the gateway's presence records and are deleted at the end.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { kvScripts, RedisKeyValueStore } from '../server/stores/kv/redis-key-value-store.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, rounds: { type: 'string' }, widths: { type: 'string' }, redis: { type: 'string' } } });
const callsPerRun = Number(values.calls ?? 20_000);
const rounds = Number(values.rounds ?? 3);
const widths = (values.widths ?? '1,100').split(',').map(Number);
const redisUrl = values.redis ?? (process.env['REDIS_URL'] || 'redis://127.0.0.1:6379');
/** Distinct presence keys cycled through; enough that a width-100 window never repeats a key. */
const devicesCount = 1000;
const presenceTtlMs = 90_000;
const keyPrefix = `sdc-measure-kv:${process.pid}:`;

type Way = 'text' | 'sha';

interface Sample { readonly way: Way; readonly width: number; readonly clientBytes: number; readonly serverBytes: number; readonly cpuUs: number; readonly redisCpuUs: number; readonly wallMs: number }

// Made once, so the per-call CPU is the store's and the client's, not the measurement's.
const presenceKeys = Array.from({ length: devicesCount }, (_, device) => `sdc:presence:dev-${device.toString(16).padStart(32, '0')}`);
const presenceRecords = Array.from({ length: devicesCount }, (_, device) =>
  JSON.stringify({ gateway_id: 'gw-bench-1', session_id: `s-${device.toString(16).padStart(30, '0')}`, since_ms: 1_796_000_000_000 + device }));

/** The store before this change: every script sent as EVAL with its text. */
function sendScriptsAsText(client: Redis): void {
  const textBySha1 = new Map(Object.values(kvScripts).map((script) => [script.sha1, script.lua]));
  (client as unknown as { evalsha: (sha1: string, keysCount: number, ...args: string[]) => Promise<unknown> }).evalsha =
    (sha1, keysCount, ...args) => client.eval(textBySha1.get(sha1)!, keysCount, ...args);
}

async function serverCounters(admin: Redis): Promise<{ bytes: number; cpuUs: number }> {
  const info = await admin.info();
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return { bytes: field('total_net_input_bytes'), cpuUs: (field('used_cpu_user') + field('used_cpu_sys')) * 1e6 };
}

async function runOnce(way: Way, width: number, admin: Redis): Promise<Sample> {
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 3, enableAutoPipelining: true });
  const store = new RedisKeyValueStore({ client, keyPrefix });
  if (way === 'text') sendScriptsAsText(client);
  try {
    for (let device = 0; device < devicesCount; device += 1) await store.set(presenceKeys[device]!, presenceRecords[device]!, { ttlMs: presenceTtlMs });
    await refreshAll(store, 2000, width); // warm-up: the script loaded, the JIT settled
    const socket = (client as unknown as { stream: { bytesWritten: number } }).stream;
    const serverBefore = await serverCounters(admin);
    const bytesBefore = socket.bytesWritten;
    const cpuBefore = process.cpuUsage();
    const startMs = performance.now();
    await refreshAll(store, callsPerRun, width);
    const wallMs = performance.now() - startMs;
    const cpu = process.cpuUsage(cpuBefore);
    const clientBytes = socket.bytesWritten - bytesBefore;
    const serverAfter = await serverCounters(admin);
    return {
      way, width, wallMs,
      clientBytes: clientBytes / callsPerRun,
      serverBytes: (serverAfter.bytes - serverBefore.bytes) / callsPerRun,
      cpuUs: (cpu.user + cpu.system) / callsPerRun,
      redisCpuUs: (serverAfter.cpuUs - serverBefore.cpuUs) / callsPerRun,
    };
  } finally {
    await store.close();
  }
}

/** `calls` presence refreshes (compare-and-set of a record on itself), `width` at a time. */
async function refreshAll(store: RedisKeyValueStore, calls: number, width: number): Promise<void> {
  for (let sent = 0; sent < calls; sent += width) {
    const batch: Promise<boolean>[] = [];
    for (let i = sent; i < Math.min(calls, sent + width); i += 1) {
      const device = i % devicesCount;
      batch.push(store.compareAndSet(presenceKeys[device]!, presenceRecords[device]!, presenceRecords[device]!, { ttlMs: presenceTtlMs }));
    }
    const replies = await Promise.all(batch);
    if (replies.includes(false)) throw new Error('a compare-and-set found another record: the measurement is not what it says');
  }
}

/** One row over runs of one way and width: each column's median, or its best (least cost, most calls/s). */
function summaryRow(runs: readonly Sample[], summary: 'median' | 'best'): string {
  const cost = (f: (s: Sample) => number): string => (summary === 'median' ? median(runs.map(f)) : Math.min(...runs.map(f))).toFixed(1);
  const rates = runs.map((s) => (callsPerRun / s.wallMs) * 1000);
  const rate = summary === 'median' ? median(rates) : Math.max(...rates);
  return `| ${runs[0]!.way} | ${runs[0]!.width} | ${cost((s) => s.clientBytes)} | ${cost((s) => s.serverBytes)} | ${cost((s) => s.cpuUs)} | ${cost((s) => s.redisCpuUs)} | ${rate.toFixed(0)} |`;
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const admin = new Redis(redisUrl);
  const samples: Sample[] = [];
  try {
    console.log(`# ${callsPerRun} compare-and-sets per run, ${rounds} rounds, widths ${widths.join(', ')}, ${redisUrl}; key ${presenceKeys[0]!.length} B, value ${presenceRecords[0]!.length} B`);
    for (let round = 0; round < rounds; round += 1) {
      for (const width of widths) {
        // Alternate which way goes first, so a drift in the machine's load falls on both.
        const ways: Way[] = round % 2 === 0 ? ['text', 'sha'] : ['sha', 'text'];
        for (const way of ways) samples.push(await runOnce(way, width, admin));
      }
    }
    const cells = (s: Sample): string => `${s.clientBytes.toFixed(1)} | ${s.serverBytes.toFixed(1)} | ${s.cpuUs.toFixed(1)} | ${s.redisCpuUs.toFixed(1)} | ${((callsPerRun / s.wallMs) * 1000).toFixed(0)}`;
    console.log('| way | width | client B/call | Redis in B/call | node CPU µs/call | Redis CPU µs/call | calls/s |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const s of samples) console.log(`| ${s.way} | ${s.width} | ${cells(s)} |`);
    // Other work on a shared machine only adds to a run's CPU and time, so the best of the runs is
    // printed beside the median: the closer of the two to what the calls alone cost.
    for (const summary of ['median', 'best'] as const) {
      console.log(`${summary} of ${rounds} runs:`);
      for (const width of widths) {
        for (const way of ['text', 'sha'] as const) console.log(summaryRow(samples.filter((s) => s.way === way && s.width === width), summary));
      }
    }
  } finally {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    admin.disconnect();
  }
}

await main();
