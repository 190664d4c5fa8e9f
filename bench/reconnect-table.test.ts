import { test } from 'node:test';
import assert from 'node:assert/strict';
import { distributionRow } from './reconnect.js';

test('a reconnect table row holds HdrHistogram percentiles (3 significant digits in µs), not nearest-rank samples', () => {
  // 1..100 ms: nearest rank would give p50 50, p90 90, p99 99 (bench/latency-hdr.test.ts).
  const samples = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(distributionRow('agents_reauthenticated_after_kill', samples.length, samples), {
    what: 'agents_reauthenticated_after_kill', count: 100, p50_ms: 50.015, p90_ms: 90.047, p99_ms: 99.007, max_ms: 100,
  });
});
