import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyRecorder } from './latency-recorder.js';
import { SeededRandom } from '../core/random/prng.js';

/** The exact nearest-rank percentile, for comparison. */
function exact(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

test('exact below 128 ms: 1..100 gives p50 50, p90 90, p99 99, max 100', () => {
  const recorder = new LatencyRecorder();
  for (let v = 100; v >= 1; v -= 1) recorder.record(v);
  assert.deepEqual(recorder.summary(), { count: 100, p50Ms: 50, p90Ms: 90, p99Ms: 99, maxMs: 100 });
});

test('above 128 ms a percentile is at or above the true one by at most 1/64, and never above the maximum', () => {
  const random = new SeededRandom(11);
  const values = Array.from({ length: 5_000 }, () => random.nextUint32() % 3_600_000);
  const recorder = new LatencyRecorder();
  for (const v of values) recorder.record(v);
  for (const p of [50, 90, 99, 100]) {
    const truth = exact(values, p);
    const got = recorder.percentile(p)!;
    assert.ok(got >= truth && got <= truth * (1 + 1 / 64), `p${p}: ${got} vs ${truth}`);
  }
  assert.equal(recorder.summary().maxMs, Math.max(...values));
});

test('no values: count 0 and null percentiles; negative and huge values are clamped, not thrown', () => {
  assert.deepEqual(new LatencyRecorder().summary(), { count: 0, p50Ms: null, p90Ms: null, p99Ms: null, maxMs: null });
  const recorder = new LatencyRecorder();
  recorder.record(-5);
  recorder.record(2 ** 40);
  assert.deepEqual(recorder.summary(), { count: 2, p50Ms: 0, p90Ms: 2 ** 31 - 1, p99Ms: 2 ** 31 - 1, maxMs: 2 ** 31 - 1 });
});
