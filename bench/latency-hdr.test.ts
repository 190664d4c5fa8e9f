import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hdrLatencySummary, hdrPercentileRows } from './latency-hdr.js';
import { summarizeLatencies } from './stats.js';

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
