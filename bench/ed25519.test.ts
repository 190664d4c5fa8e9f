import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderEd25519BenchTable, runEd25519Bench } from './ed25519.js';

test('runs every provider for the given duration on the injected clock and reports rates', () => {
  let now = 0;
  // Each clock read advances 1 ms: the loop then runs exactly 4 batches of 16 operations.
  const results = runEd25519Bench({ durationMsPerCase: 4, messageBytes: 64, nowMs: () => now++ });
  assert.deepEqual(results.map((r) => `${r.provider}/${r.operation}`), [
    'node:crypto (cached KeyObjects)/sign', 'node:crypto (cached KeyObjects)/verify',
    'node:crypto (uncached, KeyObject per call)/sign', 'node:crypto (uncached, KeyObject per call)/verify',
    '@noble/ed25519/sign', '@noble/ed25519/verify',
  ]);
  for (const result of results) {
    assert.equal(result.operations, 64);
    assert.equal(result.elapsedMs, 4);
    assert.equal(result.operationsPerSecond, 16_000);
  }
  const table = renderEd25519BenchTable(results);
  assert.match(table, /^provider\s+op\s+ops\/s\s+us\/op\s+operations\n/);
  assert.match(table, /@noble\/ed25519\s+verify\s+16,000\s+62\.5\s+64\n$/);
});
