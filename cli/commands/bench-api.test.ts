import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import { apiScenario, loadScenarioFile } from '../../bench/harness/scenario.js';
import { benchReportErrors } from '../../bench/schemas.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

test('the shared scenario file: every API scenario the k6 script can run, the harness can run too', async () => {
  const file = await loadScenarioFile();
  for (const [name, raw] of Object.entries(file.scenarios)) {
    if ((raw as { kind: string }).kind === 'api') assert.equal(apiScenario(file.scenarios, name).executor, 'constant-arrival-rate');
  }
  assert.throws(() => apiScenario(file.scenarios, 'agent-sessions'), /not an API scenario; known: api-commands, api-smoke/);
});

test('sdc bench api: a tiny open-loop run in process, thresholds from the definition, exit 99 when one is crossed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-api-test-'));
  try {
    // The smoke scenario's own thresholds, plus one no run can hold: the run must end in 99 with every figure written.
    const file = await loadScenarioFile();
    const smoke = file.scenarios['api-smoke'] as { thresholds: Record<string, string[]> };
    const scenarios = { scenarios: { tiny: { ...smoke, rate_per_s: 3, duration_s: 1, thresholds: { ...smoke.thresholds, sdc_command_create_ms: ['min<0'] } } } };
    await writeFile(join(dir, 'scenarios.json'), JSON.stringify(scenarios));
    const run = await sdc(['bench', 'api', '--scenarios', join(dir, 'scenarios.json'), '--scenario', 'tiny', '--agents', '1', '--json', '--out', join(dir, 'out')]);
    assert.equal(run.code, 99, run.stderr);
    const report = JSON.parse(run.stdout) as {
      benchmark: string; results: Array<Record<string, number | string>>;
      details: { thresholds: Array<{ metric: string; threshold: string; crossed: boolean }>; final_states: Record<string, number>; dropped_iterations: number };
    };
    assert.equal(report.benchmark, 'api');
    assert.deepEqual(benchReportErrors(report), []);
    const crossed = report.details.thresholds.filter((t) => t.crossed).map((t) => `${t.metric} ${t.threshold}`);
    assert.deepEqual(crossed, ['sdc_command_create_ms min<0']);
    // 3 arrivals, each created and polled until it succeeded on the real agent.
    assert.deepEqual(report.details.final_states, { succeeded: 3 });
    const terminal = report.results.find((r) => r['metric'] === 'sdc_command_terminal_ms')!;
    assert.equal(terminal['samples'], 3);
    assert.ok(Number(terminal['p99_ms']) >= Number(terminal['p50_ms']));
    assert.match(run.stderr, /^x sdc_command_create_ms min<0/m);
    assert.deepEqual((await readdir(join(dir, 'out'))).sort(), ['api-cdf.svg', 'api-percentiles.csv', 'api-samples.csv', 'api.csv', 'api.json', 'api.md', 'api.svg']);
    assert.match(await readFile(join(dir, 'out', 'api.md'), 'utf8'), /\| sdc_command_create_ms \| min<0 \| [\d.]+ \| yes \|/);
    assert.match(await readFile(join(dir, 'out', 'api-percentiles.csv'), 'utf8'), /^metric,percentile,latency_ms\n[a-z_]+,0,[\d.]+\n[\s\S]*^sdc_command_create_ms,100,[\d.]+$/m);
    assert.match(await readFile(join(dir, 'out', 'api-cdf.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\n?$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sdc bench api: usage errors before anything starts', async () => {
  assert.equal((await sdc(['bench', 'api', '--scenario', 'nope'])).code, 2);
  assert.equal((await sdc(['bench', 'api', '--scenario', 'api-smoke', '--rate', '0'])).code, 2);
  assert.equal((await sdc(['bench', 'api', '--scenario', 'api-smoke', '--api', 'https://127.0.0.1:1'])).code, 2);
});
