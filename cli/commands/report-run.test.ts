import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../command.js';
import { main } from '../main.js';
import { runReportSet } from './report-run.js';
import { runSet } from './report-sets.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

/** The report's Simulation results and Fault matrix sections: everything the seeds fix. */
function seededSections(md: string): string {
  const from = md.indexOf('\n## Simulation results\n');
  const to = md.indexOf('\n## Observability\n');
  assert.ok(from > 0 && to > from, 'Simulation results, then the fault matrix, then Observability');
  return md.slice(from, to);
}

// Its own file: the whole tiny set, then its seeded steps again. The benches run once: they are
// wall-clock, and nothing about them is compared between runs.
test('sdc report --run tiny: runs the set into OUT/runs, names each command, draws the /metrics series, and its seeded figures are byte-identical on a second run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-run-'));
  try {
    const first = await sdc(['report', '--run', 'tiny', '--out', join(dir, 'a'), '--mermaid', 'source']);
    assert.equal(first.code, 0, first.stderr);
    const manifest = JSON.parse(await readFile(join(dir, 'a', 'runs', 'run-set.json'), 'utf8')) as { run_set: string; steps: Array<{ dir: string; command: string; exit_code: number }> };
    assert.equal(manifest.run_set, 'tiny');
    assert.deepEqual(manifest.steps.map((s) => s.exit_code), manifest.steps.map(() => 0));
    assert.ok(manifest.steps.some((s) => s.dir.startsWith('sim-')) && manifest.steps.some((s) => s.dir.startsWith('bench-')) && manifest.steps.some((s) => s.dir === 'chaos-matrix'));
    const md = await readFile(join(dir, 'a', 'report.md'), 'utf8');
    assert.match(md, /Produced by `sdc report --run tiny`/);
    // Every bench names the command of its step; every seed its reproduce line.
    for (const step of manifest.steps.filter((s) => s.dir.startsWith('bench-'))) assert.ok(md.includes(`Command: \`${step.command}\``), step.command);
    assert.match(md, /`sdc sim --seed 1 --scenario sim\/scenarios\/smoke.json --agents 2 --duration 10000ms`/);
    assert.match(md, /\| smoke \| 2 \| 2 \|/);
    assert.match(md, /\| partition \| none_lost \|/);
    const names = (await readdir(join(dir, 'a'))).filter((n) => n !== 'runs').sort();
    // The round trip's latency CDF, from its HdrHistogram points: the commands and the echo baseline.
    const cdfName = names.find((n) => /^bench-\d+-roundtrip-cdf\.svg$/.test(n));
    assert.ok(cdfName !== undefined, names.join(', '));
    assert.ok(md.includes(`](${cdfName})`), 'report.md shows the CDF');
    const cdfSeries = new Set([...(await readFile(join(dir, 'a', cdfName), 'utf8')).matchAll(/class="series" data-series="([^"]*)"/g)].map((m) => m[1]));
    assert.deepEqual([...cdfSeries].sort(), ['baseline_echo', 'command_client', 'command_server']);
    assert.ok(names.some((n) => /^bench-\d+-roundtrip-ratio\.svg$/.test(n)), 'and its ratio to the echo baseline');
    // /metrics: the commands phase as a series (its start and end scrapes and every second between): each panel over time.
    assert.match(md, /From `bench-roundtrip\/metrics-series.jsonl` \(\d+ scrapes over [\d.]+ s, by `sdc bench roundtrip --agents 2 --commands 3 --out runs\/bench-roundtrip`\)/);
    assert.ok(!md.includes('metrics-start.prom` and `'), 'the series replaces the start/end pair beside it');
    const finished = await readFile(join(dir, 'a', 'metrics-1-panel-3.svg'), 'utf8');
    assert.match(finished, /<title>Commands finished by final state<\/title>/);
    assert.match(finished, />per second</);
    assert.match(finished, /<polyline class="series" data-series="succeeded"/);
    // A gauge at each scrape: the two devices online, by either role.
    const online = [...(await readFile(join(dir, 'a', 'metrics-1-panel-1.svg'), 'utf8')).matchAll(/data-series="([^"]*)"[^>]* points="([^"]*)"/g)];
    assert.deepEqual(online.map((m) => m[1]), ['control-plane', 'gateway']);
    // Online all along: every point of each line at the same height, one point per scrape.
    for (const [, , points] of online) assert.equal(new Set(points!.split(' ').map((p) => p.split(',')[1])).size, 1, points);
    // --mermaid source: the browser is not started here (bench/report-mermaid-render.test.ts draws the diagrams).
    assert.match(md, /Not drawn here: not asked for \(--mermaid source\)\. The Mermaid sources stand alone/);

    // The seeded steps again (the set's simulations and matrix, not its benches), and a report from them.
    const tiny = runSet('tiny')!;
    const quiet: CliIo = { stdout: () => undefined, stderr: () => undefined, readStdin: async () => '', env: {} };
    await runReportSet({ set: { ...tiny, steps: tiny.steps.filter((s) => !s.dir.startsWith('bench-')) }, runsDir: join(dir, 'b', 'runs'), stores: {}, io: quiet });
    const second = await sdc(['report', '--from', join(dir, 'b', 'runs'), '--out', join(dir, 'b'), '--mermaid', 'source']);
    assert.equal(second.code, 0, second.stderr);
    const seeded = names.filter((n) => n.startsWith('sim-') || n.startsWith('matrix-') || n.endsWith('.mmd'));
    assert.ok(seeded.filter((n) => n.startsWith('sim-')).length >= 2, seeded.join(', '));
    for (const name of seeded) assert.equal(await readFile(join(dir, 'b', name), 'utf8'), await readFile(join(dir, 'a', name), 'utf8'), `${name} differs between runs`);
    assert.equal(seededSections(await readFile(join(dir, 'b', 'report.md'), 'utf8')), seededSections(md), 'the simulation and matrix sections differ between runs');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
