import { benchReport, renderLatencySamplesCsv, type BenchReport, type BenchRow } from '../output.js';
import { renderCsv, renderMarkdownTable, type Cell } from '../report.js';
import { hdrLatencySummary, hdrPercentileRows } from '../latency-hdr.js';
import { latencyHistogramPrecision } from '../stats.js';
import { lineSeriesMax, renderLineChartSvg } from '../report-figures.js';
import type { ApiScenarioRun } from './api-scenario.js';
import type { ApiScenario } from './scenario.js';
import type { MetricSet, ScenarioRunDetails, ThresholdResult } from './thresholds.js';

export interface ApiReportDetails extends ScenarioRunDetails {
  final_states: Readonly<Record<string, number>>;
  failures_by_code: Readonly<Record<string, number>>;
  started_iterations: number;
  dropped_iterations: number;
  max_start_lag_ms: number;
  elapsed_ms: number;
}

const units = {
  samples: 'samples', p50_ms: 'milliseconds', p90_ms: 'milliseconds', p99_ms: 'milliseconds', max_ms: 'milliseconds',
  rate: 'fraction of samples true', total: 'count',
};

/** One row per metric: trends with their percentiles, rates with their fraction, counters with their total. */
function metricRows(run: ApiScenarioRun): BenchRow[] {
  return run.metrics.names().map((name): BenchRow => {
    const metric = run.metrics.get(name)!;
    const values = metric.values;
    if (metric.kind === 'trend') {
      // HdrHistogram, as k6 reports trends; thresholds are still judged on the exact samples.
      const hdr = hdrLatencySummary(values);
      return { metric: name, kind: 'trend', samples: values.length, p50_ms: hdr.p50_ms, p90_ms: hdr.p90_ms, p99_ms: hdr.p99_ms, max_ms: hdr.max_ms };
    }
    const sum = values.reduce((s, v) => s + v, 0);
    if (metric.kind === 'rate') return { metric: name, kind: 'rate', samples: values.length, rate: values.length === 0 ? 0 : sum / values.length };
    return { metric: name, kind: 'counter', total: sum };
  });
}

export function apiBenchReport(run: ApiScenarioRun, context: { name: string; scenario: ApiScenario; scenarioFile: string; command: string; target: 'in-process' | 'remote'; agents: number }): BenchReport<ApiReportDetails> {
  const { scenario } = context;
  return benchReport<ApiReportDetails>({
    benchmark: 'api',
    parameters: {
      scenario: context.name, executor: scenario.executor, rate_per_s: scenario.rate_per_s, duration_s: scenario.duration_s, max_vus: scenario.max_vus,
      opcode: scenario.opcode, ttl_ms: scenario.ttl_ms, poll_interval_ms: scenario.poll_interval_ms, target: context.target, devices: context.agents,
    },
    results: metricRows(run), units, latencyHistogram: latencyHistogramPrecision,
    details: {
      scenario: context.name, scenario_file: context.scenarioFile, command: context.command, target: context.target,
      thresholds: run.thresholds, thresholds_crossed: run.thresholds.filter((t) => t.crossed).length, final_states: run.finalStates, failures_by_code: run.failuresByCode,
      started_iterations: run.loop.started, dropped_iterations: run.loop.dropped, max_start_lag_ms: Math.round(run.loop.maxStartLagMs), elapsed_ms: Math.round(run.elapsedMs),
    },
  });
}

/** The thresholds as k6 prints them: a mark, the metric, the expression and the observed value. */
export function renderThresholds(thresholds: readonly ThresholdResult[]): string {
  return thresholds.map((t) => `${t.crossed ? 'x' : 'ok'} ${t.metric} ${t.threshold} (observed ${Math.round(t.value * 1000) / 1000})`).join('\n') + '\n';
}

export function apiMarkdown(report: BenchReport<ApiReportDetails>): string {
  const d = report.details!;
  return [
    `# sdc bench api: ${d.scenario}`, '', `Command: \`${d.command}\``, '',
    renderMarkdownTable(['metric', 'kind', 'samples', 'p50_ms', 'p99_ms', 'rate'], report.results.map((r) => [
      String(r['metric']), String(r['kind']), Number(r['samples'] ?? r['total'] ?? 0), Number(r['p50_ms'] ?? 0), Number(r['p99_ms'] ?? 0), Number(r['rate'] ?? 0)])),
    renderMarkdownTable(['metric', 'threshold', 'observed', 'crossed'], d.thresholds.map((t) => [t.metric, t.threshold, t.value, t.crossed ? 'yes' : 'no'])),
  ].join('\n');
}

/**
 * `api-percentiles.csv` and `api-cdf.svg`: each trend metric's latency at HdrHistogram's fixed
 * percentiles (bench/latency-hdr.ts), as rows and as a CDF plot (latency against percentile);
 * `api-samples.csv`: every trend sample (renderLatencySamplesCsv).
 */
export function apiLatencyCdfFiles(run: ApiScenarioRun): Record<string, string> {
  return trendCdfFiles(run.metrics, 'api');
}

/** The same files for any harness's metrics, named `<benchmark>-percentiles.csv`, `-samples.csv`, `-cdf.svg`. */
export function trendCdfFiles(metrics: MetricSet, benchmark: string): Record<string, string> {
  const trends = metrics.names().filter((name) => metrics.get(name)!.kind === 'trend' && metrics.get(name)!.values.length > 0).slice(0, lineSeriesMax);
  if (trends.length === 0) return {};
  const rows = trends.flatMap((name) => hdrPercentileRows(metrics.get(name)!.values).map((r) => [name, r.percentile, r.latency_ms] as Cell[]));
  const samples = renderLatencySamplesCsv(Object.fromEntries(trends.map((name) => [name, metrics.get(name)!.values])));
  return {
    [`${benchmark}-percentiles.csv`]: renderCsv(['metric', 'percentile', 'latency_ms'], rows),
    ...(samples === undefined ? {} : { [`${benchmark}-samples.csv`]: samples }),
    [`${benchmark}-cdf.svg`]: renderLineChartSvg({
      title: `sdc bench ${benchmark}: latency CDF (HdrHistogram)`, xLabel: 'latency (ms)', yLabel: 'percentile',
      series: trends.map((name) => ({ name, points: hdrPercentileRows(metrics.get(name)!.values).map((r) => [r.latency_ms, r.percentile] as const) })),
    }),
  };
}
