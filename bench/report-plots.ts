import type { BenchReport, BenchRow } from './output.js';
import { renderBarChartSvg } from './report.js';
import type { Block } from './report-document.js';
import { lineSeriesMax, renderLineChartSvg, type LineSeries, type XBand } from './report-figures.js';
import type { CdfPoint, SimRun } from './report-inputs.js';

/**
 * The report's plots beyond the per-bench percentile bars: latency CDFs, figures against fleet
 * size, ratios to the same-run baseline, commands by state and recovery around fault windows,
 * and the dashboard's panels from a /metrics scrape. Each function returns the figure blocks and
 * puts the SVGs in `files`; none reads a clock or a file.
 */

type Files = Record<string, string>;
type Bench = { readonly path: string; readonly report: BenchReport<Record<string, unknown>>; readonly percentiles: readonly CdfPoint[] };

const safe = (text: string) => text.replace(/[^a-z0-9-]/gi, '');
const groupsMax = 32;
/** Ratio columns drawn per figure: bars per row stay readable. */
const ratioSeriesMax = 6;

/** A latency CDF from the bench's HdrHistogram points (`<bench>-percentiles.csv`): percentile against latency, log x. */
export function cdfFigure(bench: Bench, index: number, files: Files): Block | undefined {
  const names = [...new Set(bench.percentiles.map((p) => p.series))].slice(0, lineSeriesMax);
  if (names.length === 0) return undefined;
  const file = `bench-${index + 1}-${safe(bench.report.benchmark)}-cdf.svg`;
  files[file] = renderLineChartSvg({
    title: `sdc bench ${bench.report.benchmark}: latency CDF`, xLabel: 'latency (ms)', yLabel: 'percentile', xLog: true,
    series: names.map((name) => ({ name, points: bench.percentiles.filter((p) => p.series === name).map((p) => [p.latencyMs, p.percentile] as const) })),
  });
  return { kind: 'figure', file, caption: `sdc bench ${bench.report.benchmark}: latency CDF from HdrHistogram (3 significant digits), ${names.join(', ')} (wall-clock)` };
}

const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
const labelOf = (row: BenchRow) => Object.values(row).filter((v) => typeof v === 'string').join(' ') || '-';

/** Ratios to the same-run baseline: roundtrip's `details.ratios`, and any `ratio*` result column (bus: to redis-benchmark). */
export function ratioFigure(bench: Bench, index: number, files: Files): Block | undefined {
  const { report } = bench;
  const ratios = report.details?.['ratios'] as Record<string, Record<string, number>> | undefined;
  let series: string[];
  let groups: Array<{ label: string; values: number[] }>;
  if (ratios !== undefined && typeof ratios === 'object' && Object.keys(ratios).length > 0) {
    series = Object.keys(ratios).slice(0, 6).map((k) => `${k} / baseline`);
    const keys = Object.keys(Object.values(ratios)[0] ?? {});
    groups = keys.map((key) => ({ label: key, values: Object.keys(ratios).slice(0, 6).map((k) => Math.max(0, num(ratios[k]?.[key]) ?? 0)) }));
  } else {
    // Every ratio column with a figure, one series each (bus: to redis-benchmark and to an array
    // push; reconnect: at p50 and p99), rows without any left out. A word of the name, not a
    // substring: `operations` holds "ratio" too.
    const columns = Object.keys(report.units).filter((c) => /(^|_)ratio(_|$)/.test(c) && report.results.some((r) => num(r[c]) !== undefined)).slice(0, ratioSeriesMax);
    if (columns.length === 0) return undefined;
    series = columns;
    groups = report.results.filter((r) => columns.some((c) => num(r[c]) !== undefined)).slice(0, groupsMax)
      .map((r) => ({ label: labelOf(r), values: columns.map((c) => Math.max(0, num(r[c]) ?? 0)) }));
  }
  if (groups.length === 0) return undefined;
  const file = `bench-${index + 1}-${safe(report.benchmark)}-ratio.svg`;
  files[file] = renderBarChartSvg({ title: `sdc bench ${report.benchmark}: ratio to the same-run baseline`, unit: 'x baseline', series, groups, scale: 'log' });
  // "1 = the baseline": a ratio of rates above 1 is faster, of latencies or memory above 1 is more; the columns' units say which.
  return { kind: 'figure', file, caption: `sdc bench ${report.benchmark}: ratio to the baseline measured in the same run, ${series.join(', ')} (1 = the baseline; log scale; a missing bar has no ratio; wall-clock)` };
}

/** One bench's figures at its fleet size: what the "against agents" plots draw, by metric name. */
function fleetFigures(report: BenchReport<Record<string, unknown>>): { throughput: Record<string, number>; memory: Record<string, number> } {
  const throughput: Record<string, number> = {};
  const memory: Record<string, number> = {};
  const details = report.details ?? {};
  if (report.benchmark === 'roundtrip') {
    const total = num((details['real'] as { commands?: { total?: number } } | undefined)?.commands?.total);
    const phaseMs = num((details['phases_ms'] as { commands?: number } | undefined)?.commands);
    if (total !== undefined && phaseMs !== undefined && phaseMs > 0) throughput['commands_per_s'] = (total * 1000) / phaseMs;
  }
  // Rows of one role or measure: the mean of each per-second and memory column.
  const byLabel = new Map<string, BenchRow[]>();
  for (const row of report.results) byLabel.set(String(row['role'] ?? row['measure'] ?? ''), [...(byLabel.get(String(row['role'] ?? row['measure'] ?? '')) ?? []), row]);
  for (const [label, rows] of byLabel) {
    for (const column of Object.keys(report.units)) {
      const values = rows.map((r) => num(r[column])).filter((v): v is number => v !== undefined);
      if (values.length === 0) continue;
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const name = label === '' ? column : `${label} ${column}`;
      if (/_per_((wall|cpu)_)?s$/.test(column)) throughput[name] = mean;
      else if (/(_mib|_kib)$/.test(column)) memory[name] = mean;
    }
  }
  return { throughput, memory };
}

function againstAgentsChart(benchmark: string, kind: 'throughput' | 'memory', points: Array<{ agents: number; values: Record<string, number> }>, files: Files): Block | undefined {
  const names = [...new Set(points.flatMap((p) => Object.keys(p.values)))].slice(0, lineSeriesMax);
  if (names.length === 0) return undefined;
  const series: LineSeries[] = names.map((name) => ({ name, points: points.filter((p) => p.values[name] !== undefined).map((p) => [p.agents, p.values[name]!] as const) }));
  const file = `bench-${safe(benchmark)}-${kind}-vs-agents.svg`;
  files[file] = renderLineChartSvg({ title: `sdc bench ${benchmark}: ${kind} against agents`, xLabel: 'agents', yLabel: kind === 'throughput' ? 'per second' : 'KiB or MiB (see the series name)', series });
  return { kind: 'figure', file, caption: `sdc bench ${benchmark}: ${kind} against fleet size, ${points.map((p) => p.agents).join(', ')} agents (one run each; wall-clock)` };
}

/**
 * Throughput and memory against agents: reports of one bench at two or more fleet sizes
 * (`parameters.agents`), or one report whose rows carry an `agents` column (bench sim's fleets).
 */
export function againstAgentsFigures(benches: readonly Bench[], files: Files, source: (bench: Bench) => string = (bench) => `\`${bench.path}\``): Block[] {
  const blocks: Block[] = [];
  const byBenchmark = new Map<string, Bench[]>();
  for (const bench of benches) byBenchmark.set(bench.report.benchmark, [...(byBenchmark.get(bench.report.benchmark) ?? []), bench]);
  for (const [benchmark, runs] of byBenchmark) {
    let points: Array<{ agents: number; values: { throughput: Record<string, number>; memory: Record<string, number> }; from: Bench }> = [];
    const sizes = new Set(runs.map((r) => num(r.report.parameters['agents'])).filter((a) => a !== undefined));
    if (sizes.size >= 2) {
      points = runs.filter((r) => num(r.report.parameters['agents']) !== undefined).map((r) => ({ agents: num(r.report.parameters['agents'])!, values: fleetFigures(r.report), from: r }));
    } else {
      const rows = runs.flatMap((r) => r.report.results.filter((row) => num(row['agents']) !== undefined).map((row) => ({ row, bench: r })));
      if (new Set(rows.map((r) => r.row['agents'])).size < 2) continue;
      points = rows.map(({ row, bench }) => ({ agents: num(row['agents'])!, values: fleetFigures({ ...bench.report, results: [row] }), from: bench }));
    }
    points.sort((a, b) => a.agents - b.agents);
    const charts = (['throughput', 'memory'] as const).map((kind) => againstAgentsChart(benchmark, kind, points.map((p) => ({ agents: p.agents, values: p.values[kind] })), files)).filter((b) => b !== undefined);
    if (charts.length === 0) continue;
    // Before the charts, the run behind each point: a reader must find the command behind every number.
    const sources = [...new Set(points.map((p) => p.from))];
    blocks.push({ kind: 'list', items: sources.map((bench) => { const sizes = points.filter((p) => p.from === bench).map((p) => p.agents); return `${sizes.join(', ')} agent${sizes.length === 1 && sizes[0] === 1 ? '' : 's'}: ${source(bench)}`; }) }, ...charts);
  }
  return blocks;
}

/** Fault windows of a sim scenario (gateway restarts, bus and SQL outages), in virtual seconds. */
export function faultBands(run: SimRun): XBand[] {
  const faults = (run.summary.resolvedScenario?.faults ?? {}) as Record<string, unknown>;
  const list = (key: string) => (Array.isArray(faults[key]) ? faults[key] as Array<Record<string, unknown>> : []);
  const bands: XBand[] = [];
  for (const r of list('gatewayRestarts')) if (num(r['atMs']) !== undefined) bands.push({ from: num(r['atMs'])! / 1000, to: (num(r['atMs'])! + (num(r['downMs']) ?? 0)) / 1000, label: `${String(r['gateway'] ?? 'gateway')} down` });
  for (const [key, label] of [['busOutages', 'bus down'], ['sqlOutages', 'SQL down']] as const) {
    for (const o of list(key)) if (num(o['atMs']) !== undefined) bands.push({ from: num(o['atMs'])! / 1000, to: (num(o['atMs'])! + (num(o['durationMs']) ?? 0)) / 1000, label });
  }
  const end = run.summary.virtualMs / 1000;
  return bands.filter((b) => b.from <= end);
}

/** Commands by state over virtual time for one seed (the six largest states), with the fault windows shaded. */
export function commandsByStateFigure(run: SimRun, files: Files): Block | undefined {
  const { header, rows } = run.commandsByState;
  if (header[0] !== 't_ms' || rows.length === 0) return undefined;
  const states = header.slice(1).map((name, i) => ({ name, max: Math.max(...rows.map((r) => r[i + 1] ?? 0)), i: i + 1 }))
    .filter((s) => s.max > 0).sort((a, b) => b.max - a.max || (a.name < b.name ? -1 : 1)).slice(0, lineSeriesMax);
  if (states.length === 0) return undefined;
  const bands = faultBands(run);
  const file = `sim-${safe(run.summary.scenario)}-seed-${run.summary.seed}-commands.svg`;
  files[file] = renderLineChartSvg({
    title: `${run.summary.scenario}, seed ${run.summary.seed}: commands by state`, xLabel: 'virtual time (s)', yLabel: 'commands', bands,
    series: states.map((s) => ({ name: s.name, points: rows.map((r) => [r[0]! / 1000, r[s.i] ?? 0] as const) })),
  });
  const faults = bands.length === 0 ? 'no fault windows' : `fault windows shaded: ${bands.map((b) => `${b.label} ${b.from}-${b.to} s`).join(', ')}`;
  return { kind: 'figure', file, caption: `\`${run.summary.reproduce}\`: commands by state over virtual time (cumulative counts per state; ${faults}; deterministic)` };
}

/** Recovery after faults: agents online around the fault windows for one seed of a scenario that has them. */
export function recoveryFigure(run: SimRun, files: Files): Block | undefined {
  const bands = faultBands(run);
  if (bands.length === 0 || run.onlineAgents.length === 0) return undefined;
  const file = `sim-${safe(run.summary.scenario)}-seed-${run.summary.seed}-recovery.svg`;
  files[file] = renderLineChartSvg({
    title: `${run.summary.scenario}, seed ${run.summary.seed}: agents online around the faults`, xLabel: 'virtual time (s)', yLabel: 'agents online', bands,
    series: [{ name: `seed ${run.summary.seed}`, points: run.onlineAgents.map(([t, n]) => [t / 1000, n] as const) }],
  });
  const converged = run.summary.convergedAfterMs === null ? 'did not converge' : `converged ${run.summary.convergedAfterMs} ms after healing`;
  return { kind: 'figure', file, caption: `\`${run.summary.reproduce}\`: agents online with the fault windows shaded; ${converged} (deterministic)` };
}

/** The fault matrix's recovery (convergence after healing) per fault: p50 and p99 over its seeds. */
export function matrixRecoveryFigure(matrix: Record<string, unknown>, index: number, files: Files): Block | undefined {
  const cells = (matrix['cells'] as Array<Record<string, unknown>>) ?? [];
  const byFault = new Map<string, { p50: number; p99: number }>();
  for (const cell of cells) {
    const r = (cell['recovery_ms'] ?? {}) as { p50?: number | null; p99?: number | null };
    if (typeof r.p50 === 'number' && typeof r.p99 === 'number' && !byFault.has(String(cell['fault']))) byFault.set(String(cell['fault']), { p50: r.p50, p99: r.p99 });
  }
  if (byFault.size === 0) return undefined;
  const file = `matrix-${index + 1}-recovery.svg`;
  files[file] = renderBarChartSvg({
    title: 'Fault matrix: recovery after healing', unit: 'ms (virtual)', series: ['p50', 'p99'],
    groups: [...byFault].slice(0, groupsMax).map(([fault, r]) => ({ label: fault, values: [Math.max(0, r.p50), Math.max(0, r.p99)] })),
  });
  return { kind: 'figure', file, caption: `\`${String(matrix['command'])}\`: time from healing to convergence, p50 and p99 over the seeds of each fault (virtual ms; deterministic)` };
}

