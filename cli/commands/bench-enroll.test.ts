import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchReportErrors } from '../../bench/schemas.js';
import { main } from '../main.js';
import { assertStatesLatencyHistogram, samplesCsvSummaries } from '../../bench/latency-table-test-support.js';

interface EnrollReport {
  benchmark: string;
  results: Array<{ path: string; requests: number; failures: number; per_s: number; server_cpu_ms_per_request: number; p50_ms: number; p99_ms: number }>;
  latency_histogram?: unknown;
  details: { stores: string; goal_per_s: number; goal_met: boolean; first_failure: string | null };
}

async function runBench(argv: string[]): Promise<{ code: number; report: EnrollReport; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['bench', 'enroll', '--json', ...argv], {
    stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, readStdin: async () => '', env: {},
  });
  return { code, report: JSON.parse(out) as EnrollReport, err };
}

test('sdc bench enroll enrolls every device through POST /v1/enroll and measures the bare HTTPS baseline in the same run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-enroll-out-'));
  const { code, report, err } = await runBench(['--devices', '6', '--concurrency', '2', '--out', dir]);
  assert.equal(code, 0, err);
  assert.deepEqual(benchReportErrors(report), []);
  assert.deepEqual(report.results.map((row) => row.path), ['bare-https', 'enroll']);
  for (const row of report.results) {
    assert.equal(row.requests, 6);
    assert.equal(row.failures, 0, report.details.first_failure ?? '');
    assert.ok(row.per_s > 0 && row.server_cpu_ms_per_request > 0, `${row.path} measured nothing`);
  }
  assert.equal(report.details.stores, 'sql.js + embedded kv');
  assert.equal(report.details.goal_per_s, 100);
  assert.match(err, /bare HTTPS/);
  // Each request's latency as a CDF for sdc report: both paths, 12 fixed percentiles each.
  const cdf = (await readFile(join(dir, 'enroll-percentiles.csv'), 'utf8')).trimEnd().split('\n');
  // Issue 14: the table's p50/p99 are HdrHistogram's (the precision the JSON states) over each path's samples.
  const summaries = samplesCsvSummaries(await readFile(join(dir, 'enroll-samples.csv'), 'utf8'));
  await rm(dir, { recursive: true, force: true });
  assert.equal(cdf[0], 'series,percentile,latency_ms');
  assert.deepEqual(cdf.slice(1).map((line) => line.split(',')[0]), [...Array(12).fill('bare_https'), ...Array(12).fill('enroll')]);
  assertStatesLatencyHistogram(report);
  for (const row of report.results) {
    const s = summaries.get(row.path.replace('-', '_'))!;
    assert.deepEqual([row.p50_ms, row.p99_ms], [s.p50, s.p99], row.path);
  }
});

test('sdc bench enroll refuses a device count past its bound before starting anything', async () => {
  let err = '';
  const code = await main(['bench', 'enroll', '--devices', '20001'], { stdout: () => undefined, stderr: (t) => { err += t; }, readStdin: async () => '', env: {} });
  assert.notEqual(code, 0);
  assert.match(err, /CLI_USAGE/);
});
