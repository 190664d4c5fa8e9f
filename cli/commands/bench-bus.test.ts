import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../main.js';
import { benchReportErrors } from '../../bench/schemas.js';

interface BusReport {
  benchmark: string;
  results: Array<{ adapter: string; mode: string; appends: number; appends_per_s: number; ratio_to_redis_benchmark: number | null; ratio_to_array_push: number | null }>;
  details: { baseline_note: string | null };
}

async function runBench(argv: string[]): Promise<BusReport> {
  let out = '';
  let err = '';
  const code = await main(['bench', 'bus', '--duration-ms', '20', '--batch', '10', '--json', ...argv], {
    stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, readStdin: async () => '', env: {},
  });
  assert.equal(code, 0, err);
  return JSON.parse(out) as BusReport;
}

test('sdc bench bus --json measures the in-memory adapter one by one, in flight and batched, against a plain array push in the same run', async () => {
  const report = await runBench([]);
  assert.equal(report.benchmark, 'bus');
  assert.deepEqual(benchReportErrors(report), []);
  assert.deepEqual(report.results.map((r) => `${r.adapter}:${r.mode}`), [
    'memory:sequential', 'memory:64 in flight', 'memory:batch 10', 'memory:batch 10, 4 in flight', 'array-push:Array push, one by one (baseline of memory)',
  ]);
  for (const row of report.results) assert.ok(row.appends > 0 && row.appends_per_s > 0, `${row.mode} measured nothing`);
  // Issue 14: without Redis the in-memory bus still has its same-run baseline and ratio.
  const push = report.results.at(-1)!;
  assert.equal(push.ratio_to_array_push, 1);
  for (const row of report.results.slice(0, 4)) {
    assert.equal(row.ratio_to_redis_benchmark, null);
    // Rounded to 3 decimals in the JSON.
    assert.ok(Math.abs(row.ratio_to_array_push! - row.appends_per_s / push.appends_per_s) <= 0.002, `${row.mode}: ${row.ratio_to_array_push} for ${row.appends_per_s} / ${push.appends_per_s}`);
  }
  assert.match(report.details.baseline_note ?? '', /no --redis URL/);
});

const redisUrl = process.env['REDIS_URL'];
// Skipped without REDIS_URL: the in-memory run above covers the command; .ci/run sets it.
test('sdc bench bus --redis adds the Redis adapter rows and redis-benchmark XADD as the ratio baseline', { skip: redisUrl === undefined }, async () => {
  const report = await runBench(['--redis', redisUrl as string]);
  const redis = report.results.filter((r) => r.adapter === 'redis');
  assert.equal(redis.length, 4);
  const baseline = report.results.find((r) => r.adapter === 'redis-benchmark');
  if (baseline === undefined) {
    // redis-benchmark is not installed here: the report says so instead of a ratio.
    assert.match(report.details.baseline_note ?? '', /redis-benchmark/);
    return;
  }
  assert.equal(baseline.ratio_to_redis_benchmark, 1);
  for (const row of redis) assert.ok((row.ratio_to_redis_benchmark ?? 0) > 0, `${row.mode} has no ratio`);
  for (const row of [...redis, baseline]) assert.equal(row.ratio_to_array_push, null, `${row.adapter} ${row.mode}: the array push is the in-memory rows' baseline only`);
  assert.deepEqual(benchReportErrors(report), []);
});
