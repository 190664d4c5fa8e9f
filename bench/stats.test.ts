import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { percentile, summarizeLatencies } from './stats.js';

test('nearest-rank percentiles on a known sample', () => {
  const samples = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(summarizeLatencies(samples), { count: 100, p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5 });
  assert.equal(percentile([], 0.5), 0);
  assert.equal(percentile([7], 0.99), 7);
});

test('a percentile is always an observed sample and ordered p50 <= p90 <= p99 <= max', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 300 }), (samples) => {
    const s = summarizeLatencies(samples);
    for (const v of [s.p50, s.p90, s.p99, s.max]) assert.ok(samples.includes(v));
    assert.ok(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
  }));
});
