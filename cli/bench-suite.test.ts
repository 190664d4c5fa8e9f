import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchGroup } from './commands/bench.js';
import { parseCommandArgs, type CliIo } from './command.js';
import { benchReportErrors, benchReportSchemas } from '../bench/schemas.js';
import { parseMetricsSeriesJsonl } from '../bench/metrics-series.js';
import { main } from './main.js';

/**
 * Each cheap bench runs at a tiny size through the real `sdc bench` command (with the suite's
 * --repeat/--out wrapping) and its JSON validates against its schema. The heavy benches
 * (roundtrip, connections, reconnect, api) validate in their own tests, which already start a
 * deployment.
 */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [name, ...rest] = argv;
  const command = benchGroup.commands.find((c) => c.name === name)!;
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
  const code = await command.run(parseCommandArgs(command, rest), io);
  return { code, stdout, stderr };
}

const tiny: Array<[string, string[]]> = [
  ['ed25519', ['--duration', '20ms']],
  ['ioctl', ['--calls', '50']],
  ['bus', ['--duration-ms', '10']],
  ['sim', ['--tier', 'model', '--duration', '1s', '--max-agents', '5']],
  ['ingest', ['--connections', '1', '--duration', '300ms']],
];

for (const [name, args] of tiny) {
  test(`sdc bench ${name} (tiny) --json validates against its schema`, async () => {
    const { code, stdout, stderr } = await run([name, ...args, '--json']);
    assert.equal(code, 0, stderr);
    const json = JSON.parse(stdout) as unknown;
    assert.deepEqual(benchReportErrors(json), []);
    assert.ok((json as { results: unknown[] }).results.length > 0);
  });
}

test('--repeat 2 --out: merged report validates, with spread; the files are JSON, CSV, Markdown, SVG', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-suite-'));
  try {
    const { code, stdout, stderr } = await run(['bus', '--duration-ms', '10', '--repeat', '2', '--json', '--out', dir]);
    assert.equal(code, 0, stderr);
    const json = JSON.parse(stdout) as { repeats: { count: number; spread: unknown[] } };
    assert.deepEqual(benchReportErrors(json), []);
    assert.equal(json.repeats.count, 2);
    assert.ok(json.repeats.spread.length > 0);
    assert.deepEqual((await readdir(dir)).sort(), ['bus-repeats.csv', 'bus.csv', 'bus.json', 'bus.md', 'bus.svg']);
    assert.match(await readFile(join(dir, 'bus.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\n?$/);
    assert.match(await readFile(join(dir, 'bus.md'), 'utf8'), /Across 2 repeats/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// Issue 14: under --repeat the suite ran each repeat without --out, and the /metrics series (and
// the start/end pair) of roundtrip and ingest were lost, so `sdc report` drew no Observability
// panel for such a run. Now each repeat's land in DIR under its own name and the report draws a
// set of panels per repeat, each caption naming its repeat.
test('roundtrip --repeat 2 --out: each repeat\'s /metrics series and pair in DIR, and sdc report draws panels from both', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-suite-rt-'));
  try {
    const { code, stderr } = await run(['roundtrip', '--agents', '1', '--commands', '1', '--scrape-interval-ms', '0', '--repeat', '2', '--out', join(dir, 'rt')]);
    assert.equal(code, 0, stderr);
    const names = (await readdir(join(dir, 'rt'))).sort();
    for (const repeat of [1, 2]) {
      for (const end of ['series.jsonl', 'start.prom', 'end.prom']) assert.ok(names.includes(`metrics-repeat-${repeat}-${end}`), `metrics-repeat-${repeat}-${end} in ${names.join(', ')}`);
      const series = parseMetricsSeriesJsonl(await readFile(join(dir, 'rt', `metrics-repeat-${repeat}-series.jsonl`), 'utf8'))!;
      assert.equal(series.entries.length, 2, 'interval 0: the first and the last scrape');
      assert.match(series.entries.at(-1)!.text!, /^sdc_command_latency_seconds_count\{.*\} [1-9]\d*$/m);
    }
    assert.ok(!names.includes('metrics-series.jsonl'), 'no unnumbered series: which repeat would it be?');
    const merged = JSON.parse(await readFile(join(dir, 'rt', 'roundtrip.json'), 'utf8')) as { repeats: { count: number } };
    assert.equal(merged.repeats.count, 2);
    // The repeats' latencies pooled, as the medians are over both runs.
    const cdf = await readFile(join(dir, 'rt', 'roundtrip-percentiles.csv'), 'utf8');
    assert.match(cdf, /^series,percentile,latency_ms\n/);
    assert.match(cdf, /^command_server,50,/m);

    // --mermaid source: no browser started to draw the diagrams, which this test does not look at
    // (bench/report-mermaid-render.test.ts draws them).
    const report = await main(['report', '--from', dir, '--out', join(dir, 'report'), '--mermaid', 'source'], { stdout: () => {}, stderr: () => {}, readStdin: async () => '', env: {} });
    assert.equal(report, 0);
    const md = await readFile(join(dir, 'report', 'report.md'), 'utf8');
    for (const repeat of [1, 2]) {
      assert.match(md, new RegExp(`From \`rt/metrics-repeat-${repeat}-series\\.jsonl\` \\(2 scrapes over [^)]*, by \`sdc bench roundtrip\` with parameters agents=1[^)]*, repeat ${repeat} of 2\\)`));
      assert.match(md, new RegExp(`!\\[Agents online[^\\]]*repeat ${repeat} of 2 \\(wall-clock\\)\\]`));
    }
    assert.ok(!/From `rt\/metrics-repeat-\d-(start|end)\.prom`/.test(md), 'each pair is drawn once, as its series');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ingest --repeat 2 --out: each repeat\'s series and pair per mode, named metrics-MODE-repeat-K-*', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-suite-ingest-'));
  try {
    const { code, stderr } = await run(['ingest', '--connections', '1', '--duration', '200ms', '--modes', 'session-mac', '--scrape-interval-ms', '0', '--repeat', '2', '--out', dir]);
    assert.equal(code, 0, stderr);
    const metrics = (await readdir(dir)).filter((n) => n.startsWith('metrics-')).sort();
    assert.deepEqual(metrics, [1, 2].flatMap((k) => ['end.prom', 'series.jsonl', 'start.prom'].map((end) => `metrics-session-mac-repeat-${k}-${end}`)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the schemas refuse a report missing its key figures or its environment block', () => {
  assert.deepEqual(Object.keys(benchReportSchemas).sort(), ['agents', 'api', 'bus', 'connections', 'ed25519', 'enroll', 'ingest', 'ioctl', 'reconnect', 'roundtrip', 'sim']);
  const env = { node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'c', cpu_count: 2, memory_total_mib: 1, git_commit: null, kernel: 'k', load_average_before: [1, 1, 1], load_average_after: [1, 1, 1], loaded_machine: false, seed: null };
  const good = { benchmark: 'ioctl', schema_version: 1, environment: env, parameters: {}, units: {}, results: [{ backend: 'mock', opcode: 'X', calls: 1, calls_per_s: 1, p50_us: 1, p99_us: 1 }] };
  assert.deepEqual(benchReportErrors(good), []);
  assert.notDeepEqual(benchReportErrors({ ...good, results: [{ backend: 'mock', opcode: 'X', calls: 1 }] }), []);
  const { load_average_after: _dropped, ...noLoad } = env;
  assert.notDeepEqual(benchReportErrors({ ...good, environment: noLoad }), []);
  assert.notDeepEqual(benchReportErrors({ ...good, benchmark: 'nope' }), []);
});
