import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../main.js';
import { benchReportErrors } from '../../bench/schemas.js';

// Issue 14: every bench with a baseline measured in the same run and its ratio. ed25519's baseline
// is node:crypto with cached KeyObjects (what the services and agents use): each row's rate over
// that provider's rate for the same operation.
test('sdc bench ed25519 --json: every provider\'s rate as a ratio to node:crypto with cached KeyObjects, per operation', async () => {
  let out = '';
  let err = '';
  const code = await main(['bench', 'ed25519', '--duration', '20ms', '--json'], { stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, readStdin: async () => '', env: {} });
  assert.equal(code, 0, err);
  const report = JSON.parse(out) as { results: Array<{ provider: string; operation: string; ops_per_s: number; ratio_to_node_crypto_cached: number | null }>; units: Record<string, string> };
  assert.deepEqual(benchReportErrors(report), []);
  assert.equal(report.results.length, 6);
  for (const row of report.results) {
    const baseline = report.results.find((r) => r.provider === 'node:crypto (cached KeyObjects)' && r.operation === row.operation)!;
    if (row === baseline) assert.equal(row.ratio_to_node_crypto_cached, 1);
    else assert.ok(Math.abs(row.ratio_to_node_crypto_cached! - row.ops_per_s / baseline.ops_per_s) <= 0.002 * Math.max(1, row.ratio_to_node_crypto_cached!), JSON.stringify([row, baseline]));
  }
  assert.match(report.units['ratio_to_node_crypto_cached'] ?? '', /^ratio of ops_per_s to node:crypto with cached KeyObjects/);
});
