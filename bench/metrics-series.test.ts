import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMetricsSeriesJsonl, renderMetricsSeriesJsonl, startMetricsSeries } from './metrics-series.js';
import { scrapeIntervalOption } from './metrics-series-option.js';
import { readReportInputs } from './report-inputs.js';
import { pairScrapes } from './report-scrapes.js';

/** A scrape function whose n-th call returns `c_total n` (the 2nd throws), and a clock that ticks 1 s per reading. */
function fakeService(onCall: (n: number) => void = () => undefined) {
  let calls = 0;
  let nowMs = 1_000_000;
  return {
    scrape: async () => {
      calls += 1;
      onCall(calls);
      if (calls === 2) throw new Error('collector failed');
      return `# TYPE c_total counter\nc_total ${calls}\n`;
    },
    nowMs: () => (nowMs += 1_000),
  };
}

test('interval 0: only the first and the last scrape, in order, with their times', async () => {
  const service = fakeService();
  const recorder = await startMetricsSeries({ ...service, intervalMs: 0 });
  const series = await recorder.stop();
  assert.deepEqual(series.entries, [{ atMs: 1_001_000, text: '# TYPE c_total counter\nc_total 1\n' }, { atMs: 1_002_000, error: 'collector failed' }]);
  assert.equal(series.failures, 1);
});

test('at the cap every other scrape is dropped (the first kept) and the interval doubles; a failed scrape is noted, not thrown', async () => {
  let reached: () => void = () => undefined;
  const sixCalls = new Promise<void>((resolve) => { reached = resolve; });
  // The recorder's timer is unref'd (a forgotten recorder must not keep a process alive): this keeps the test's alive.
  const keepAlive = setInterval(() => undefined, 1_000);
  const recorder = await startMetricsSeries({ ...fakeService((n) => { if (n === 6) reached(); }), intervalMs: 100, scrapesMax: 4 });
  await sixCalls;
  const series = await recorder.stop();
  clearInterval(keepAlive);
  // Calls 1-4 filled the cap; the 5th halved it to 1 and 3 (interval 200 ms); then 5, 6 and maybe more before stop, then the last.
  assert.ok(series.entries.length <= 4, `${series.entries.length} kept`);
  assert.ok(series.decimations >= 1);
  assert.equal(series.intervalMs, 100 * 2 ** series.decimations);
  assert.equal(series.entries[0]!.text, '# TYPE c_total counter\nc_total 1\n');
  const values = series.entries.map((e) => Number(/c_total (\d+)/.exec(e.text ?? '')?.[1] ?? NaN));
  assert.ok(values.every((v, i) => i === 0 || Number.isNaN(v) || v > values[i - 1]!), `in order: ${values}`);
  assert.equal(series.failures, 1, 'the second scrape failed, counted even after it was dropped');
  assert.deepEqual(series.entries.map((e) => e.atMs), [...series.entries.map((e) => e.atMs)].sort((a, b) => a - b));
});

test('the JSONL round-trips, a malformed line is skipped, and the report reads it as one series beside its start/end pair', async () => {
  const text = renderMetricsSeriesJsonl({
    intervalMsRequested: 1_000, intervalMs: 1_000, scrapesMax: 600, decimations: 0, failures: 1,
    entries: [{ atMs: 1_000, text: 'sdc_agents_online 1\n' }, { atMs: 2_000, error: 'boom' }, { atMs: 3_000, text: 'sdc_agents_online 2\n' }],
  });
  const parsed = parseMetricsSeriesJsonl(`${text}{"kind":"scrape","at_ms":"x"}\nnot json\n`)!;
  assert.equal(parsed.header['kind'], 'metrics_series');
  assert.deepEqual(parsed.entries, [{ atMs: 1_000, text: 'sdc_agents_online 1\n' }, { atMs: 2_000, error: 'boom' }, { atMs: 3_000, text: 'sdc_agents_online 2\n' }]);
  assert.equal(parseMetricsSeriesJsonl('{"kind":"other"}\n'), undefined);
  const dir = await mkdtemp(join(tmpdir(), 'sdc-metrics-series-'));
  try {
    await mkdir(join(dir, 'rt'));
    await writeFile(join(dir, 'rt', 'metrics-series.jsonl'), text);
    await writeFile(join(dir, 'rt', 'metrics-start.prom'), 'sdc_agents_online 1 1000\n');
    await writeFile(join(dir, 'rt', 'metrics-end.prom'), 'sdc_agents_online 2 3000\n');
    await writeFile(join(dir, 'rt', 'other-series.jsonl'), 'not a series\n');
    const inputs = await readReportInputs(dir);
    assert.deepEqual(inputs.skipped, [{ path: 'rt/other-series.jsonl', reason: 'not a metrics series (no metrics_series header line)' }]);
    const sources = pairScrapes(inputs.scrapes);
    assert.deepEqual(sources.map((s) => [s.start?.path, s.end.path, s.series?.map((m) => m.atMs), s.failed]), [['rt/metrics-series.jsonl#0001', 'rt/metrics-series.jsonl#0003', [1_000, 3_000], 1]]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--scrape-interval-ms: absent is 1000, 0 and 100 ms to 1 h pass, anything else is CLI_USAGE', () => {
  assert.deepEqual([undefined, '0', '100', '3600000'].map(scrapeIntervalOption), [1_000, 0, 100, 3_600_000]);
  for (const bad of ['50', '3600001', '-1', '1.5', 'x']) assert.throws(() => scrapeIntervalOption(bad), (e: { code?: string }) => e.code === 'CLI_USAGE', bad);
});
