import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import { assertStatesLatencyHistogram, samplesCsvSummaries } from '../../bench/latency-table-test-support.js';

test('sdc bench ioctl --json reports mock and native rows for ping and status in the common shape, and --out writes them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-ioctl-'));
  try {
    let out = '';
    let err = '';
    const code = await main(['bench', 'ioctl', '--calls', '20', '--json', '--out', dir], {
      stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, readStdin: async () => '', env: {},
    });
    assert.equal(code, 0, err);
    const report = JSON.parse(out) as { benchmark: string; latency_histogram?: unknown; parameters: { calls: number }; units: Record<string, string>; results: Array<{ backend: string; opcode: string; calls: number; calls_per_s: number; p50_us: number; p99_us: number; ratio_to_mock_p50: number | null }> };
    assert.equal(report.benchmark, 'ioctl');
    assert.deepEqual(report.parameters, { calls: 20 });
    assert.deepEqual(report.results.map((r) => `${r.backend}:${r.opcode}`), [
      'mock:EXEC_PING_KERNEL', 'mock:EXEC_GET_STATUS', 'native:EXEC_PING_KERNEL', 'native:EXEC_GET_STATUS',
    ]);
    for (const row of report.results) {
      assert.equal(row.calls, 20);
      assert.ok(row.calls_per_s > 0 && row.p99_us > 0, `${row.backend} ${row.opcode} measured nothing`);
    }
    assert.equal(report.units.p99_us, 'microseconds');
    // Issue 14: the same-run baseline is the mock device (the bridge without the native library); each row's p50 over its opcode's mock p50.
    for (const row of report.results) {
      const mock = report.results.find((r) => r.backend === 'mock' && r.opcode === row.opcode)!;
      if (row.backend === 'mock') assert.equal(row.ratio_to_mock_p50, 1);
      else assert.ok(Math.abs(row.ratio_to_mock_p50! - row.p50_us / mock.p50_us) <= 0.002 * Math.max(1, row.ratio_to_mock_p50!), JSON.stringify([row, mock]));
    }
    assert.match(report.units['ratio_to_mock_p50'] ?? '', /^ratio of p50_us to the mock device/);
    // Progress without a terminal ends on 100 %.
    assert.match(err, /bench ioctl: 100% 80\/80 calls\n/);
    // --out writes the common four: JSON, CSV, a Markdown table and an SVG plot.
    assert.deepEqual((await readdir(dir)).sort(), ['ioctl-percentiles.csv', 'ioctl-samples.csv', 'ioctl.csv', 'ioctl.json', 'ioctl.md', 'ioctl.svg']);
    // And each backend and opcode's call latencies as a CDF for sdc report (12 fixed percentiles each).
    const cdf = (await readFile(join(dir, 'ioctl-percentiles.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(cdf[0], 'series,percentile,latency_ms');
    assert.deepEqual([...new Set(cdf.slice(1).map((line) => line.split(',')[0]))], ['mock_exec_ping_kernel', 'mock_exec_get_status', 'native_exec_ping_kernel', 'native_exec_get_status']);
    assert.equal(cdf.length, 1 + 4 * 12);
    assert.match(await readFile(join(dir, 'ioctl.md'), 'utf8'), /^\|.*\|$/m, 'the Markdown holds a table');
    assert.match((await readFile(join(dir, 'ioctl.svg'), 'utf8')).trim(), /^<svg[\s\S]*<\/svg>$/, 'the SVG is one element');
    const csv = (await readFile(join(dir, 'ioctl.csv'), 'utf8')).split('\n');
    assert.equal(csv[0], 'backend,opcode,calls,calls_per_s,p50_us,p99_us,ratio_to_mock_p50');
    assert.ok(!csv.some((line) => / ,|, /.test(line)), 'CSV cells are not padded');
    // Issue 14: the table's p50/p99 are HdrHistogram's (the precision the JSON states) over each series's samples,
    // not the nearest-rank call to 0.1 µs the table held before 4 December 2026.
    assertStatesLatencyHistogram(report);
    const summaries = samplesCsvSummaries(await readFile(join(dir, 'ioctl-samples.csv'), 'utf8'));
    for (const row of report.results) {
      const s = summaries.get(`${row.backend}_${row.opcode.toLowerCase()}`)!;
      assert.deepEqual([row.p50_us, row.p99_us], [s.p50, s.p99].map((ms) => Math.round(ms * 10_000) / 10), `${row.backend} ${row.opcode}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sdc bench ioctl refuses a zero call count with CLI_USAGE', async () => {
  let err = '';
  const code = await main(['bench', 'ioctl', '--calls', '0'], { stdout: () => {}, stderr: (t) => { err += t; }, readStdin: async () => '', env: {} });
  assert.equal(code, 2);
  assert.match(err, /CLI_USAGE/);
});
