import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xmlProblems } from './report-check.js';
import { pairScrapes, panelOverTime, parsePrometheusText, scrapeFigures, timestampScrape } from './report-scrapes.js';

const panels = [
  { title: 'Agents online', exprs: ['sdc_agents_online'] },
  { title: 'Latency', exprs: ['histogram_quantile(0.5, sum by (le) (rate(sdc_command_latency_seconds_bucket[5m])))'] },
  { title: 'Ingest', exprs: ['sum by (role) (rate(sdc_telemetry_samples_total[1m]))'] },
  { title: 'Alerts', exprs: ['sum by (kind) (increase(sdc_alerts_raised_total[1h]))'] },
];

const scrape = (online: number, telemetry: number, fast: number, slow: number, alerts: number) => [
  '# TYPE sdc_agents_online gauge', `sdc_agents_online{role="gateway"} ${online}`,
  `sdc_telemetry_samples_total{role="gateway"} ${telemetry}`,
  `sdc_command_latency_seconds_bucket{le="0.1"} ${fast}`, `sdc_command_latency_seconds_bucket{le="1"} ${fast + slow}`, `sdc_command_latency_seconds_bucket{le="+Inf"} ${fast + slow}`,
  `sdc_alerts_raised_total{kind="tamper"} ${alerts}`, '',
].join('\n');

const bars = (svg: string) => [...svg.matchAll(/data-series="([^"]*)" data-group="([^"]*)" data-value="([^"]*)"/g)].map((m) => `${m[1]}:${m[2]}=${m[3]}`);

test('timestampScrape stamps every sample line and leaves comments alone; the parser reads the stamp back', () => {
  const stamped = timestampScrape('# HELP x y\nx{a="1"} 2\ny 3\n', 1_700_000_000_123.4);
  assert.equal(stamped, '# HELP x y\nx{a="1"} 2 1700000000123\ny 3 1700000000123\n');
  assert.deepEqual(parsePrometheusText(stamped), [
    { name: 'x', labels: { a: '1' }, value: 2, timestampMs: 1_700_000_000_123 }, { name: 'y', labels: {}, value: 3, timestampMs: 1_700_000_000_123 },
  ]);
});

test('X-start.prom and X-end.prom pair when both are stamped and the end is later; any other scrape stands alone', () => {
  const at = (ms: number) => timestampScrape(scrape(1, 1, 1, 1, 1), ms);
  const sources = pairScrapes([
    { path: 'rt/metrics-end.prom', text: at(2_000) }, { path: 'rt/metrics-start.prom', text: at(1_000) },
    { path: 'old/metrics.prom', text: scrape(1, 1, 1, 1, 1) },
    { path: 'unstamped/metrics-end.prom', text: scrape(1, 1, 1, 1, 1) }, { path: 'unstamped/metrics-start.prom', text: scrape(1, 1, 1, 1, 1) },
    { path: 'backwards/m-end.prom', text: at(1_000) }, { path: 'backwards/m-start.prom', text: at(2_000) },
  ]);
  assert.deepEqual(sources.map((s) => `${s.start?.path ?? '-'} ${s.end.path}`), [
    'rt/metrics-start.prom rt/metrics-end.prom', '- old/metrics.prom', '- unstamped/metrics-end.prom', '- unstamped/metrics-start.prom', '- backwards/m-end.prom', '- backwards/m-start.prom',
  ]);
});

test('between two scrapes 10 s apart: rate() per second, increase() as the increase, quantiles over the new commands, gauges at both', () => {
  const [source] = pairScrapes([
    { path: 'rt/metrics-start.prom', text: timestampScrape(scrape(2, 40, 100, 0, 5), 1_000) },
    // 1,000 samples more; 10 commands more, all slow; the alert counter was reset (a restart): its end value is the increase.
    { path: 'rt/metrics-end.prom', text: timestampScrape(scrape(3, 1_040, 100, 10, 2), 11_000) },
  ]);
  const files: Record<string, string> = {};
  const blocks = scrapeFigures(source!, 0, panels, files, '`sdc bench roundtrip`');
  assert.deepEqual(bars(files['metrics-1-panel-1.svg']!), ['at start:gateway=2', 'at end:gateway=3']);
  // Every command finished in the window took 0.1-1 s: the median is half-way through that bucket (the 100 older fast ones are not counted).
  assert.deepEqual(bars(files['metrics-1-panel-2.svg']!), ['value:p50=0.55']);
  assert.deepEqual(bars(files['metrics-1-panel-3.svg']!), ['sdc_telemetry_samples_total:gateway=100']);
  assert.match(files['metrics-1-panel-3.svg']!, />per second</);
  assert.deepEqual(bars(files['metrics-1-panel-4.svg']!), ['sdc_alerts_raised_total:tamper=2']);
  for (const svg of Object.values(files)) assert.deepEqual(xmlProblems(svg), []);
  assert.match(JSON.stringify(blocks), /scraped 10 s apart by `sdc bench roundtrip`/);
  // Each figure's caption names the command and says wall-clock, for a figure taken out of the report.
  const captions = blocks.flatMap((b) => (b.kind === 'figure' ? [b.caption] : []));
  assert.equal(captions.length, 4);
  for (const caption of captions) assert.match(caption, /, between the scrapes 10 s apart, by `sdc bench roundtrip` \(wall-clock\)$/);
});

test('one scrape alone: counters as totals since start, as before', () => {
  const [source] = pairScrapes([{ path: 'x/metrics.prom', text: scrape(2, 40, 100, 0, 5) }]);
  const files: Record<string, string> = {};
  const blocks = scrapeFigures(source!, 0, panels, files, undefined);
  assert.match(JSON.stringify(blocks.filter((b) => b.kind === 'figure')[0]), /at the scrape, `x\/metrics.prom` \(wall-clock\)/);
  assert.deepEqual(bars(files['metrics-1-panel-3.svg']!), ['sdc_telemetry_samples_total:gateway=40']);
  assert.match(files['metrics-1-panel-3.svg']!, />total since start</);
});

// A series: four scrapes at 0, 1, 2 and 4 s. The telemetry counter is reset between 2 s and 4 s
// (300 -> 50: a restart), so that interval's increase is 50, not -250, as Prometheus counts it.
const seriesScrape = (online: number, telemetry: number, fast: number, slow: number, alerts: number, atMs: number) => timestampScrape(scrape(online, telemetry, fast, slow, alerts), atMs);
const series = [
  { path: 'rt/metrics-series.jsonl#0001', text: seriesScrape(2, 0, 0, 0, 5, 10_000) },
  { path: 'rt/metrics-series.jsonl#0002', text: seriesScrape(3, 100, 4, 0, 7, 11_000) },
  { path: 'rt/metrics-series.jsonl#0003', text: seriesScrape(3, 300, 4, 4, 7, 12_000) },
  { path: 'rt/metrics-series.jsonl#0004', text: '' }, // a scrape the bench noted as failed
  { path: 'rt/metrics-series.jsonl#0005', text: seriesScrape(1, 50, 4, 4, 1, 14_000) },
];

/** Each polyline's points as [x, y] pixel pairs, by series name. */
const polylines = (svg: string) => new Map([...svg.matchAll(/data-series="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => [m[1]!, m[2]!.split(' ').map((p) => p.split(',').map(Number))]));

test('a series file is one source (its failed scrape counted) and replaces the start/end pair beside it; the pair alone still pairs', () => {
  const sources = pairScrapes([
    { path: 'rt/metrics-end.prom', text: seriesScrape(1, 50, 4, 4, 1, 14_000) }, ...series, { path: 'rt/metrics-start.prom', text: seriesScrape(2, 0, 0, 0, 5, 10_000) },
    { path: 'old/metrics-end.prom', text: seriesScrape(1, 1, 1, 1, 1, 2_000) }, { path: 'old/metrics-start.prom', text: seriesScrape(1, 1, 1, 1, 1, 1_000) },
  ]);
  assert.deepEqual(sources.map((s) => [s.start?.path ?? '-', s.end.path, s.series?.length ?? 0, s.failed ?? 0]), [
    ['rt/metrics-series.jsonl#0001', 'rt/metrics-series.jsonl#0005', 4, 1], ['old/metrics-start.prom', 'old/metrics-end.prom', 0, 0],
  ]);
});

test('panelOverTime: rate() per interval (a counter that went down restarts from zero), increase() since the first scrape, quantiles per interval, gauges at each scrape', () => {
  const [source] = pairScrapes(series);
  const lines = (p: number) => panelOverTime(panels[p]!, source!.series!)!.lines.map((l) => [l.name, l.points.map(([x, y]) => [x, Math.round(y * 1000) / 1000])]);
  assert.deepEqual(lines(0), [['gateway', [[0, 2], [1, 3], [2, 3], [4, 1]]]]);
  // Commands: 4 fast ones in the first second, 4 slow ones in the next, none after: no point there.
  assert.deepEqual(lines(1), [['p50', [[1, 0.05], [2, 0.55]]]]);
  assert.deepEqual(lines(2), [['gateway', [[1, 100], [2, 200], [4, 25]]]]);
  assert.deepEqual(lines(3), [['tamper', [[0, 0], [1, 2], [2, 2], [4, 3]]]]);
  assert.equal(panelOverTime(panels[2]!, source!.series!.slice(0, 1)), undefined, 'one scrape is no series');
});

test('scrapeFigures on a series: one well-formed line chart per panel with a point per interval, captions naming the command and wall-clock', () => {
  const [source] = pairScrapes(series);
  const files: Record<string, string> = {};
  const blocks = scrapeFigures(source!, 0, panels, files, '`sdc bench roundtrip --agents 2`');
  assert.deepEqual(Object.keys(files).sort(), [1, 2, 3, 4].map((p) => `metrics-1-panel-${p}.svg`));
  for (const svg of Object.values(files)) assert.deepEqual(xmlProblems(svg), []);
  const ingest = polylines(files['metrics-1-panel-3.svg']!).get('gateway')!;
  assert.equal(ingest.length, 3);
  // x: 1, 2 and 4 s of 0-4 s; y: 100, 200 and 25 per second on a 0-200 axis (plot 64-704 px wide, 40-290 px high).
  assert.deepEqual(ingest, [[224, 165], [384, 40], [704, 258.8]]);
  assert.match(files['metrics-1-panel-3.svg']!, />per second</);
  assert.match(files['metrics-1-panel-3.svg']!, /seconds since the first scrape \(wall-clock\)/);
  assert.equal(polylines(files['metrics-1-panel-1.svg']!).get('gateway')!.length, 4);
  assert.match(JSON.stringify(blocks[0]), /From `rt\/metrics-series.jsonl` \(4 scrapes over 4 s; 1 more noted as failed, by `sdc bench roundtrip --agents 2`\)/);
  const captions = blocks.flatMap((b) => (b.kind === 'figure' ? [b.caption] : []));
  assert.equal(captions.length, 4);
  for (const caption of captions) assert.match(caption, / over 4 s, 4 scrapes, by `sdc bench roundtrip --agents 2` \(wall-clock\)$/);
});

test('a series with one usable scrape beside its start/end pair: the pair is drawn, not also the lone scrape; without a pair the lone scrape stands alone', () => {
  const lone = [
    { path: 'rt/metrics-series.jsonl#0001', text: seriesScrape(2, 0, 0, 0, 5, 10_000) },
    { path: 'rt/metrics-series.jsonl#0002', text: '' }, // noted as failed
  ];
  const withPair = pairScrapes([
    ...lone, { path: 'rt/metrics-start.prom', text: seriesScrape(2, 0, 0, 0, 5, 10_000) }, { path: 'rt/metrics-end.prom', text: seriesScrape(1, 50, 4, 4, 1, 14_000) },
  ]);
  assert.deepEqual(withPair.map((s) => `${s.start?.path ?? '-'} ${s.end.path}`), ['rt/metrics-start.prom rt/metrics-end.prom']);
  // Only the end file beside it (the start was lost): that one scrape is drawn, once.
  const endOnly = pairScrapes([...lone, { path: 'rt/metrics-end.prom', text: seriesScrape(1, 50, 4, 4, 1, 14_000) }]);
  assert.deepEqual(endOnly.map((s) => `${s.start?.path ?? '-'} ${s.end.path}`), ['- rt/metrics-end.prom']);
  assert.deepEqual(pairScrapes(lone).map((s) => `${s.start?.path ?? '-'} ${s.end.path}`), ['- rt/metrics-series.jsonl#0001']);
});
