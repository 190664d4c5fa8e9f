import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addBaselineRatios } from './baseline-ratio.js';
import { benchReport, type BenchReport } from './output.js';
import { ratioFigure } from './report-plots.js';

const environment = { node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'c', cpu_count: 2, memory_total_mib: 1, git_commit: null, kernel: 'k', load_average_before: [1, 1, 1], load_average_after: [1, 1, 1], loaded_machine: false, seed: null };

test('reconnect: the agents\' re-authentication over the bare TLS re-handshake, at p50 and p99; the baseline row is 1', () => {
  const report = benchReport({
    benchmark: 'reconnect', parameters: {}, environment, units: { count: 'connections', p50_ms: 'ms', p99_ms: 'ms' },
    results: [{ what: 'agents_reauthenticated_after_kill', count: 67, p50_ms: 773, p99_ms: 952 }, { what: 'bare_tls_rehandshake', count: 67, p50_ms: 351, p99_ms: 573 }],
  });
  addBaselineRatios(report as BenchReport<object>);
  assert.deepEqual(report.results.map((r) => [r['ratio_to_bare_p50'], r['ratio_to_bare_p99']]), [[2.202, 1.661], [1, 1]]);
  assert.match(report.units['ratio_to_bare_p50']!, /^ratio to the bare baseline row/);
  // sdc report draws the columns as the bench's ratio figure.
  const files: Record<string, string> = {};
  assert.ok(ratioFigure({ path: 'r', report: report as never, percentiles: [] }, 0, files));
  assert.ok(files['bench-1-reconnect-ratio.svg']);
});

test('connections: memory per connection over the bare server\'s; none where either figure is not positive, nor without a baseline row', () => {
  const rows = [
    { server: 'gw-1', role: 'gateway', connections: 500, rss_per_connection_kib: 96.912, heap_per_connection_kib: 13.245 },
    { server: 'gw-2', role: 'gateway', connections: 500, rss_per_connection_kib: -27.12, heap_per_connection_kib: 16.11 },
    { server: 'bare-ws', role: 'bare', connections: 500, rss_per_connection_kib: 51.736, heap_per_connection_kib: 5.857 },
  ];
  const units = { connections: 'connections', rss_per_connection_kib: 'KiB', heap_per_connection_kib: 'KiB' };
  const report = benchReport({ benchmark: 'connections', parameters: {}, environment, units, results: rows });
  addBaselineRatios(report as BenchReport<object>);
  assert.deepEqual(report.results.map((r) => [r['ratio_to_bare_rss_per_connection'], r['ratio_to_bare_heap_per_connection']]), [[1.873, 2.261], [null, 2.751], [1, 1]]);
  const noBaseline = benchReport({ benchmark: 'connections', parameters: {}, environment, units, results: rows.slice(0, 2) });
  addBaselineRatios(noBaseline as BenchReport<object>);
  assert.deepEqual(noBaseline.results.map((r) => r['ratio_to_bare_rss_per_connection']), [null, null]);
  // Any other bench is left alone.
  const other = benchReport({ benchmark: 'ioctl', parameters: {}, environment, units: { calls: 'calls' }, results: [{ backend: 'mock', calls: 1 }] });
  addBaselineRatios(other as BenchReport<object>);
  assert.deepEqual(other.results, [{ backend: 'mock', calls: 1 }]);
});
