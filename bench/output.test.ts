import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachLatencySamples, attachSideFiles, repeatFileName, takeSideFiles, benchEnvironment, benchReport, captureBenchReports, latencySamplesOf, mergeRepeats, progressReporter, renderLatencySamplesCsv, renderBenchCsv, renderBenchMarkdown, renderBenchTable, writeBenchOut, type BenchEnvironment } from './output.js';

const environment: BenchEnvironment = {
  node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'test cpu', cpu_count: 2, memory_total_mib: 1024, git_commit: null,
};

test('benchReport: one envelope, numbers rounded to 3 decimals, every numeric field with a unit', () => {
  const report = benchReport({
    benchmark: 'demo', environment, parameters: { seconds: 0.5 },
    results: [{ case: 'a', ops_per_s: 1234.56789, p50_ms: 0.1 }], units: { ops_per_s: 'operations per second', p50_ms: 'ms' },
  });
  assert.deepEqual(Object.keys(report), ['benchmark', 'schema_version', 'environment', 'parameters', 'results', 'units']);
  assert.deepEqual(report.results, [{ case: 'a', ops_per_s: 1234.568, p50_ms: 0.1 }]);
  assert.throws(() => benchReport({ benchmark: 'demo', environment, parameters: {}, results: [{ ops: 1 }], units: {} }), /ops has no unit/);
  assert.throws(() => benchReport({ benchmark: 'demo', environment, parameters: {}, results: [{ ops: Infinity }], units: { ops: 'n' } }), /Infinity/);
});

test('renderBenchCsv has no padding; the table aligns numbers to the right', () => {
  const report = benchReport({
    benchmark: 'demo', environment, parameters: {},
    results: [{ case: 'a, quoted', n: 1 }, { case: 'bb', n: 12.5 }], units: { n: 'count' },
  });
  assert.equal(renderBenchCsv(report), 'case,n\n"a, quoted",1\nbb,12.5\n');
  assert.equal(renderBenchTable(report), 'case          n\na, quoted     1\nbb         12.5\n');
});

test('writeBenchOut writes <benchmark>.json, .csv, a generic .svg and the bench\'s own .md over the generic one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-out-'));
  try {
    const report = benchReport({ benchmark: 'demo', environment, parameters: {}, results: [{ n: 1 }], units: { n: 'count' } });
    await writeBenchOut(dir, report, { 'demo.md': '# demo\n' });
    assert.deepEqual((await readdir(dir)).sort(), ['demo.csv', 'demo.json', 'demo.md', 'demo.svg']);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'demo.json'), 'utf8')), report);
    assert.equal(await readFile(join(dir, 'demo.md'), 'utf8'), '# demo\n');
    assert.match(await readFile(join(dir, 'demo.svg'), 'utf8'), /<rect class="bar"[^>]*data-value="1"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('attached latencies: writeBenchOut adds <benchmark>-percentiles.csv (not in the JSON); --repeat pools them per series', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-out-'));
  try {
    const make = (samples: number[]) => {
      const report = benchReport({ benchmark: 'demo', environment, parameters: {}, results: [{ what: 'op', count: samples.length }], units: { count: 'operations' } });
      attachLatencySamples(report, { op_ms: samples, empty: [] });
      return report;
    };
    const one = make(Array.from({ length: 100 }, (_, i) => i + 1));
    await writeBenchOut(dir, one);
    assert.deepEqual((await readdir(dir)).sort(), ['demo-percentiles.csv', 'demo-samples.csv', 'demo.csv', 'demo.json', 'demo.md', 'demo.svg']);
    // Issue 14, "CSV of raw samples and percentiles": every sample as recorded, in order; the empty series has no row.
    assert.equal(await readFile(join(dir, 'demo-samples.csv'), 'utf8'), `series,latency_ms\n${Array.from({ length: 100 }, (_, i) => `op_ms,${i + 1}\n`).join('')}`);
    assert.doesNotMatch(await readFile(join(dir, 'demo.json'), 'utf8'), /op_ms/);
    const rows = (await readFile(join(dir, 'demo-percentiles.csv'), 'utf8')).trimEnd().split('\n');
    // 12 fixed percentiles of the one series with samples; 1..100 ms: the median is 50 (HdrHistogram: within 0.1 %), the top 100.
    assert.equal(rows.length, 13);
    assert.equal(rows[0], 'series,percentile,latency_ms');
    const median = Number(rows.find((r) => r.startsWith('op_ms,50,'))?.split(',')[2]);
    assert.ok(median >= 50 && median <= 50.05, rows.join(' '));
    assert.equal(rows.at(-1), 'op_ms,100,100');
    const merged = mergeRepeats([one, make([1_000])]);
    assert.deepEqual(latencySamplesOf(merged)?.['op_ms']?.length, 101);
    // Past the row cap each series keeps the same share, its first samples, and none is dropped whole.
    assert.equal(renderLatencySamplesCsv({ a: [1, 2, 3, 4, 5, 6, 7, 8], b: [9.12345, 10], c: [11] }, 6), 'series,latency_ms\na,1\na,2\na,3\na,4\nb,9.123\nc,11\n');
    assert.equal(renderLatencySamplesCsv({ none: [] }), undefined);
    assert.throws(() => attachLatencySamples(one, { 'Not-snake': [1] }), /snake_case/);
    const none = benchReport({ benchmark: 'bare', environment, parameters: {}, results: [{ n: 1 }], units: { n: 'count' } });
    await writeBenchOut(dir, none);
    assert.ok(!(await readdir(dir)).includes('bare-percentiles.csv'), 'no latencies, no CDF file');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('progressReporter: periodic lines without a terminal, a bar that ends on 100 % with one', () => {
  let nowMs = 0;
  const lines: string[] = [];
  const plain = progressReporter({ sink: { write: (t) => lines.push(t), isTty: false }, label: 'work', total: 10, nowMs: () => nowMs });
  plain.update(1);
  plain.update(2); // within the interval: no line
  nowMs = 5_000;
  plain.update(3);
  plain.finish();
  assert.deepEqual(lines, ['work: 10% 1/10\n', 'work: 30% 3/10\n', 'work: 100% 10/10\n']);

  const drawn: string[] = [];
  const bar = progressReporter({ sink: { write: (t) => drawn.push(t), isTty: true }, label: 'work', total: 3, nowMs: () => 0 });
  bar.update(1);
  bar.update(1); // same percentage: not redrawn
  bar.update(2);
  bar.finish();
  assert.equal(drawn.length, 3);
  assert.match(drawn.at(-1)!, /\[#{25}\] 100% 3\/3\n$/);
});

test('mergeRepeats: medians in the rows, min/median/max per field, text from the first run, loaded flag kept', () => {
  const run = (ops: number, loaded: boolean) => benchReport({
    benchmark: 'demo', environment: { ...environment, loaded_machine: loaded }, parameters: {}, results: [{ case: 'a', ops_per_s: ops }, { case: 'b', ops_per_s: ops * 2 }], units: { ops_per_s: 'ops/s' },
  });
  const merged = mergeRepeats([run(10, false), run(30, true), run(20, false)]);
  assert.deepEqual(merged.results, [{ case: 'a', ops_per_s: 20 }, { case: 'b', ops_per_s: 40 }]);
  assert.deepEqual(merged.repeats, { count: 3, spread: [
    { row: 0, label: 'a', field: 'ops_per_s', min: 10, median: 20, max: 30 },
    { row: 1, label: 'b', field: 'ops_per_s', min: 20, median: 40, max: 60 },
  ] });
  assert.equal(merged.environment.loaded_machine, true);
  assert.match(renderBenchMarkdown(merged), /Across 3 repeats[\s\S]*\| 1 \| b \| ops_per_s \| 20 \| 40 \| 60 \|/);
  assert.match(renderBenchMarkdown(merged), /LOADED MACHINE/);
  assert.equal(mergeRepeats([run(7, false)]).results[0]!['ops_per_s'], 7);
});

test('the environment block: kernel, load before and after, the seed from the parameters; reports are captured per run', async () => {
  const env = benchEnvironment(42);
  assert.equal(env.seed, 42);
  assert.equal(env.load_average_before!.length, 3);
  assert.equal(env.load_average_after!.length, 3);
  assert.equal(typeof env.kernel, 'string');
  assert.equal(env.loaded_machine, env.load_average_before![0]! > env.cpu_count || env.load_average_after![0]! > env.cpu_count);
  const { reports } = await captureBenchReports(async () => {
    benchReport({ benchmark: 'demo', parameters: { seed: 'abc' }, results: [], units: {} });
  });
  assert.equal(reports.length, 1);
  assert.equal(reports[0]!.environment.seed, 'abc');
});

test('side files: a repeat\'s name keeps the ending sdc report pairs by; handed over once; names and count bounded', () => {
  assert.deepEqual(['metrics-series.jsonl', 'metrics-start.prom', 'metrics-end.prom', 'metrics-session-mac-series.jsonl', 'metrics-ed25519-end.prom', 'extra.csv'].map((n) => repeatFileName(n, 3)),
    ['metrics-repeat-3-series.jsonl', 'metrics-repeat-3-start.prom', 'metrics-repeat-3-end.prom', 'metrics-session-mac-repeat-3-series.jsonl', 'metrics-ed25519-repeat-3-end.prom', 'extra-repeat-3.csv']);
  const report = benchReport({ benchmark: 'x', parameters: {}, results: [], units: {}, environment });
  attachSideFiles(report, { 'metrics-series.jsonl': 'a' });
  assert.deepEqual(takeSideFiles(report), { 'metrics-series.jsonl': 'a' });
  assert.deepEqual(takeSideFiles(report), {}, 'taken once: the suite does not write a repeat twice');
  assert.throws(() => attachSideFiles(report, { '../escape': 'x' }), RangeError);
  assert.throws(() => attachSideFiles(report, Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}.txt`, '']))), RangeError);
});
