import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hdrLatencySummary, hdrLatencyTableSummary, hdrPercentileRows } from './latency-hdr.js';
import { latencyHistogramPrecision, summarizeLatencies } from './stats.js';

/** Deterministic spread of latencies (a linear congruential sequence, no Math.random in tests). */
function samples(count: number): number[] {
  let state = 12345;
  const out: number[] = [];
  for (let i = 0; i < count; i += 1) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    out.push(0.05 + (state / 2 ** 31) ** 3 * 2_000); // long tail, 0.05 ms to 2 s
  }
  return out;
}

test('HdrHistogram percentiles agree with the exact nearest-rank ones within the stated precision', () => {
  const values = samples(20_000);
  const exact = summarizeLatencies(values);
  const hdr = hdrLatencySummary(values);
  assert.equal(hdr.count, 20_000);
  for (const [h, e] of [[hdr.p50_ms, exact.p50], [hdr.p90_ms, exact.p90], [hdr.p99_ms, exact.p99], [hdr.max_ms, exact.max]] as const) {
    assert.ok(Math.abs(h - e) <= Math.max(0.002, e * 0.002), `hdr ${h} vs exact ${e}`);
  }
  assert.ok(hdr.p50_ms < hdr.p90_ms && hdr.p90_ms < hdr.p99_ms && hdr.p99_ms <= hdr.p999_ms && hdr.p999_ms <= hdr.max_ms);
});

test('percentile rows rise monotonically and end at the maximum; no samples gives no rows', () => {
  const rows = hdrPercentileRows(samples(1_000));
  assert.equal(rows.at(-1)!.percentile, 100);
  for (let i = 1; i < rows.length; i += 1) assert.ok(rows[i]!.latency_ms >= rows[i - 1]!.latency_ms);
  assert.deepEqual(hdrPercentileRows([]), []);
  assert.equal(hdrLatencySummary([]).count, 0);
});

test('the tables\' summary is HdrHistogram\'s at the stated precision, not the nearest-rank sample', () => {
  // 1..100 ms: nearest rank gives 50, 90, 99. Recorded in µs with 3 significant digits, 50,000 µs
  // falls in a 32 µs bucket (32,768-65,535) and reads as its highest equivalent value, 50.015 ms.
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(summarizeLatencies(values), { count: 100, p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5 });
  const hdr = hdrLatencyTableSummary(values);
  assert.deepEqual({ ...hdr, mean: Math.round(hdr.mean * 1000) / 1000 }, { count: 100, p50: 50.015, p90: 90.047, p99: 99.007, max: 100, mean: 50.504 });
  // Below 2.048 ms every microsecond is a bucket of its own: the percentiles are the samples to the µs.
  assert.deepEqual(hdrLatencyTableSummary([0.0234, 0.0251, 1.5]), { count: 3, p50: 0.025, p90: 1.5, p99: 1.5, max: 1.5, mean: hdrLatencyTableSummary([0.0234, 0.0251, 1.5]).mean });
});

test('the stated precision is the one used: 3 digits, 1 µs, a fixed highest trackable value of an hour', () => {
  assert.deepEqual({ ...latencyHistogramPrecision }, {
    library: 'hdr-histogram-js', significant_digits: 3, lowest_discernible_ms: 0.001, highest_trackable_ms: 3_600_000,
    value_at_percentile: 'highest equivalent value, capped at the maximum',
  });
  // A sample past the highest trackable value is recorded as it (no auto-resize): the range stated is the range used.
  const s = hdrLatencyTableSummary([1, 2, 5_000_000]);
  assert.equal(s.max, 3_600_000);
  assert.equal(s.p99, 3_600_000);
});
