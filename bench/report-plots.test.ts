import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchReport } from './output.js';
import { xmlProblems } from './report-check.js';
import { againstAgentsFigures, cdfFigure, commandsByStateFigure, faultBands, matrixRecoveryFigure, ratioFigure, recoveryFigure } from './report-plots.js';
import { pairScrapes, parsePrometheusText, scrapeFigures, timestampScrape } from './report-scrapes.js';
import type { SimRun } from './report-inputs.js';
import { renderLineChartSvg } from './report-figures.js';

const environment = { node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'cpu', cpu_count: 2, memory_total_mib: 1, git_commit: null };
const polylines = (svg: string) => [...svg.matchAll(/<polyline class="series" data-series="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => ({ name: m[1]!, points: m[2]!.split(' ') }));

function roundtrip(agents: number, commandsPhaseMs: number) {
  return benchReport<Record<string, unknown>>({
    benchmark: 'roundtrip', parameters: { agents }, environment,
    results: [{ measure: 'command_server', p50_ms: 10, p99_ms: 30 }], units: { p50_ms: 'ms', p99_ms: 'ms' },
    details: { real: { commands: { total: agents * 10 } }, phases_ms: { commands: commandsPhaseMs }, ratios: { server: { p50: 20, p99: 15 }, client: { p50: 25, p99: 18 } } },
  });
}

test('a latency CDF has one line per measure, on a log latency axis, from the recorded percentiles', () => {
  const files: Record<string, string> = {};
  const percentiles = [0, 50, 99, 100].flatMap((p, i) => [{ series: 'echo', percentile: p, latencyMs: 0.1 * (i + 1) }, { series: 'command', percentile: p, latencyMs: 10 * (i + 1) }]);
  const block = cdfFigure({ path: 'rt/roundtrip.json', report: roundtrip(2, 1000), percentiles }, 0, files);
  assert.equal(block?.kind, 'figure');
  const svg = files['bench-1-roundtrip-cdf.svg']!;
  assert.deepEqual(xmlProblems(svg), []);
  assert.deepEqual(polylines(svg).map((l) => [l.name, l.points.length]), [['echo', 4], ['command', 4]]);
  assert.match(svg, /latency \(ms\) \(log scale\)/);
  // Percentile rises along each line (SVG y falls).
  for (const line of polylines(svg)) {
    const ys = line.points.map((p) => Number(p.split(',')[1]));
    assert.deepEqual([...ys].sort((a, b) => b - a), ys);
  }
  assert.equal(cdfFigure({ path: 'x', report: roundtrip(2, 1000), percentiles: [] }, 0, files), undefined);
});

test('ratio to baseline from roundtrip details, and from a ratio column (bus)', () => {
  const files: Record<string, string> = {};
  ratioFigure({ path: 'a', report: roundtrip(2, 1000), percentiles: [] }, 0, files);
  const bars = [...files['bench-1-roundtrip-ratio.svg']!.matchAll(/data-series="([^"]*)" data-group="([^"]*)" data-value="([^"]*)"/g)].map((m) => `${m[2]}/${m[1]}=${m[3]}`);
  assert.deepEqual(bars, ['p50/server / baseline=20', 'p50/client / baseline=25', 'p99/server / baseline=15', 'p99/client / baseline=18']);
  const bus = benchReport({ benchmark: 'bus', parameters: {}, environment, results: [{ adapter: 'redis', appends_per_s: 100, ratio_to_redis_benchmark: 0.5 }, { adapter: 'redis-benchmark', appends_per_s: 200, ratio_to_redis_benchmark: 1 }], units: { appends_per_s: '1/s', ratio_to_redis_benchmark: 'x' } });
  ratioFigure({ path: 'b', report: bus as never, percentiles: [] }, 1, files);
  assert.equal(files['bench-2-bus-ratio.svg']!.match(/class="bar"/g)?.length, 2);
  const none = benchReport({ benchmark: 'ed25519', parameters: {}, environment, results: [{ op: 'sign', operations: 640, ops_per_s: 1 }], units: { operations: 'operations', ops_per_s: '1/s' } });
  assert.equal(ratioFigure({ path: 'c', report: none as never, percentiles: [] }, 2, files), undefined);
});

// Issue 14: a bench with two baselines (bus with Redis: redis-benchmark, and an array push for the
// in-memory rows) or a ratio per percentile (reconnect) drew only its first ratio column.
test('ratio to baseline: every ratio column is a series; a row without any ratio is left out, one without a column\'s has no bar there', () => {
  const files: Record<string, string> = {};
  const bus = benchReport({
    benchmark: 'bus', parameters: {}, environment, units: { appends_per_s: '1/s', ratio_to_redis_benchmark: 'ratio', ratio_to_array_push: 'ratio' },
    results: [
      { adapter: 'memory', appends_per_s: 50, ratio_to_redis_benchmark: null, ratio_to_array_push: 0.25 },
      { adapter: 'array-push', appends_per_s: 200, ratio_to_redis_benchmark: null, ratio_to_array_push: 1 },
      { adapter: 'redis', appends_per_s: 100, ratio_to_redis_benchmark: 0.5, ratio_to_array_push: null },
      { adapter: 'redis-benchmark', appends_per_s: 200, ratio_to_redis_benchmark: 1, ratio_to_array_push: null },
      { adapter: 'none', appends_per_s: 1, ratio_to_redis_benchmark: null, ratio_to_array_push: null },
    ],
  });
  const block = ratioFigure({ path: 'b', report: bus as never, percentiles: [] }, 0, files);
  const bars = [...files['bench-1-bus-ratio.svg']!.matchAll(/data-series="([^"]*)" data-group="([^"]*)" data-value="([^"]*)"/g)].map((m) => `${m[2]}/${m[1]}=${m[3]}`);
  assert.deepEqual(bars, [
    'memory/ratio_to_redis_benchmark=0', 'memory/ratio_to_array_push=0.25', 'array-push/ratio_to_redis_benchmark=0', 'array-push/ratio_to_array_push=1',
    'redis/ratio_to_redis_benchmark=0.5', 'redis/ratio_to_array_push=0', 'redis-benchmark/ratio_to_redis_benchmark=1', 'redis-benchmark/ratio_to_array_push=0',
  ]);
  assert.match((block as { caption: string }).caption, /ratio_to_redis_benchmark, ratio_to_array_push \(1 = the baseline; log scale; a missing bar has no ratio; wall-clock\)$/);
});

test('throughput against agents: one point per fleet size, only with two sizes or more', () => {
  const files: Record<string, string> = {};
  const runs = [roundtrip(10, 2000), roundtrip(2, 1000), roundtrip(50, 5000)].map((report, i) => ({ path: `r${i}`, report, percentiles: [] }));
  const blocks = againstAgentsFigures(runs, files);
  // The runs behind the points, then the chart.
  assert.deepEqual(blocks.map((b) => b.kind), ['list', 'figure']);
  assert.deepEqual(blocks[0]!.kind === 'list' && blocks[0]!.items, runs.map((r) => `${String(r.report.parameters['agents'])} agents: \`${r.path}\``).sort((a, b) => parseInt(a) - parseInt(b)));
  const [line] = polylines(files['bench-roundtrip-throughput-vs-agents.svg']!);
  assert.equal(line!.name, 'commands_per_s');
  assert.equal(line!.points.length, 3);
  const xs = line!.points.map((p) => Number(p.split(',')[0]));
  assert.deepEqual([...xs].sort((a, b) => a - b), xs);
  assert.deepEqual(againstAgentsFigures(runs.slice(0, 1), {}), []);
  // Memory from rows with an agents column (bench sim's fleets).
  const sim = benchReport({ benchmark: 'sim', parameters: {}, environment, results: [{ agents: 10, agent_s_per_wall_s: 100, peak_rss_mib: 50 }, { agents: 100, agent_s_per_wall_s: 90, peak_rss_mib: 80 }], units: { agents: 'agents', agent_s_per_wall_s: 'x', peak_rss_mib: 'MiB' } });
  const simFiles: Record<string, string> = {};
  assert.deepEqual(againstAgentsFigures([{ path: 's', report: sim as never, percentiles: [] }], simFiles).map((b) => (b.kind === 'list' ? b.items : b.kind)), [['10, 100 agents: `s`'], 'figure', 'figure']);
  assert.deepEqual(Object.keys(simFiles).sort(), ['bench-sim-memory-vs-agents.svg', 'bench-sim-throughput-vs-agents.svg']);
});

function simRun(): SimRun {
  return {
    path: 's/summary.json', onlineAgents: [[0, 0], [10_000, 4], [30_000, 4], [35_000, 2], [50_000, 4]],
    commandsByState: { header: ['t_ms', 'queued', 'succeeded', 'failed', 'expired'], rows: [[0, 1, 0, 0, 0], [10_000, 0, 3, 1, 0], [50_000, 0, 9, 1, 0]] },
    summary: {
      seed: 7, scenario: 'gateway-restart', reproduce: 'sdc sim --seed 7', traceHash: 'abc', agents: 4, virtualMs: 50_000, convergedAfterMs: 1500,
      commandsByState: { succeeded: 9, failed: 1 }, latencyMs: { count: 10, p50Ms: 5, p99Ms: 9 }, checkers: {},
      resolvedScenario: { faults: { gatewayRestarts: [{ atMs: 30_000, gateway: 'gw-1', downMs: 15_000 }], busOutages: [{ atMs: 60_000, durationMs: 3_000 }] } },
    },
  };
}

test('commands by state and recovery: the states that occur, the fault windows inside the run shaded', () => {
  const run = simRun();
  assert.deepEqual(faultBands(run), [{ from: 30, to: 45, label: 'gw-1 down' }]);
  const files: Record<string, string> = {};
  const commands = commandsByStateFigure(run, files);
  const svg = files['sim-gateway-restart-seed-7-commands.svg']!;
  assert.deepEqual(xmlProblems(svg), []);
  assert.deepEqual(polylines(svg).map((l) => l.name), ['succeeded', 'failed', 'queued']);
  assert.equal(svg.match(/class="band"/g)?.length, 1);
  assert.match(commands?.kind === 'figure' ? commands.caption : '', /gw-1 down 30-45 s/);
  recoveryFigure(run, files);
  assert.match(files['sim-gateway-restart-seed-7-recovery.svg']!, /data-label="gw-1 down"/);
  assert.equal(recoveryFigure({ ...run, summary: { ...run.summary, resolvedScenario: { faults: {} } } }, {}), undefined);
  const matrixFiles: Record<string, string> = {};
  matrixRecoveryFigure({ command: 'sdc chaos matrix', cells: [{ fault: 'partition', recovery_ms: { p50: 100, p99: 900 } }, { fault: 'partition', recovery_ms: { p50: 100, p99: 900 } }, { fault: 'drop', recovery_ms: { p50: null, p99: null } }] }, 0, matrixFiles);
  assert.equal(matrixFiles['matrix-1-recovery.svg']!.match(/class="bar"/g)?.length, 2);
});

test('a /metrics scrape: parsed, and each dashboard panel drawn from it (histogram quantiles from the summed buckets)', () => {
  const text = [
    '# HELP sdc_agents_online Devices online', '# TYPE sdc_agents_online gauge',
    'sdc_agents_online{role="control-plane"} 4', 'sdc_agents_online{role="gateway"} 3',
    'sdc_command_latency_seconds_bucket{le="0.1",opcode="A",final_state="succeeded"} 5', 'sdc_command_latency_seconds_bucket{le="0.1",opcode="B",final_state="succeeded"} 5',
    'sdc_command_latency_seconds_bucket{le="1",opcode="A",final_state="succeeded"} 10', 'sdc_command_latency_seconds_bucket{le="1",opcode="B",final_state="succeeded"} 10',
    'sdc_command_latency_seconds_bucket{le="+Inf",opcode="A",final_state="succeeded"} 10', 'sdc_command_latency_seconds_bucket{le="+Inf",opcode="B",final_state="succeeded"} 10',
    'sdc_command_latency_seconds_count{opcode="A",final_state="succeeded"} 10', 'sdc_command_latency_seconds_count{opcode="B",final_state="failed"} 10',
    'sdc_http_errors_total{code="A\\"B",status="400"} 2', 'not a sample line',
  ].join('\n');
  const samples = parsePrometheusText(text);
  assert.equal(samples.length, 11);
  assert.deepEqual(samples.at(-1), { name: 'sdc_http_errors_total', labels: { code: 'A"B', status: '400' }, value: 2 });
  const files: Record<string, string> = {};
  const blocks = scrapeFigures({ end: { path: 'rt/metrics.prom', samples, atMs: undefined } }, 0, [
    { title: 'Agents online', exprs: ['sdc_agents_online'] },
    { title: 'Latency', exprs: ['histogram_quantile(0.5, sum by (le) (rate(sdc_command_latency_seconds_bucket[5m])))', 'histogram_quantile(0.99, sum by (le) (rate(sdc_command_latency_seconds_bucket[5m])))'] },
    { title: 'By final state', exprs: ['sum by (final_state) (rate(sdc_command_latency_seconds_count[5m]))'] },
    { title: 'Dead letters', exprs: ['sdc_dlq_depth'] },
  ], files, '`sdc bench roundtrip --agents 2`');
  const values = (name: string) => [...files[name]!.matchAll(/data-group="([^"]*)" data-value="([^"]*)"/g)].map((m) => `${m[1]}=${m[2]}`);
  assert.deepEqual(values('metrics-1-panel-1.svg'), ['control-plane=4', 'gateway=3']);
  // 20 commands, 10 at or under 0.1 s: the median is the 0.1 s edge; p99 is 99 % of the way to 1 s.
  assert.deepEqual(values('metrics-1-panel-2.svg'), ['p50=0.1', 'p99=0.982']);
  assert.deepEqual(values('metrics-1-panel-3.svg'), ['failed=10', 'succeeded=10']);
  assert.equal(files['metrics-1-panel-4.svg'], undefined);
  assert.match(JSON.stringify(blocks), /No samples in this scrape for: Dead letters/);
  assert.match(JSON.stringify(blocks), /scraped at the end of `sdc bench roundtrip --agents 2`/);
});

test('a line chart with a log x axis drops non-positive x and draws decade ticks', () => {
  const svg = renderLineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', xLog: true, series: [{ name: 'a', points: [[0, 1], [0.5, 2], [30, 3]] }] });
  assert.deepEqual(xmlProblems(svg), []);
  assert.equal(polylines(svg)[0]!.points.length, 2);
  for (const tick of ['0.1', '1', '10', '100']) assert.match(svg, new RegExp(`>${tick.replace('.', '\\.')}</text>`));
});
