import { benchReport, type BenchReport, type BenchRow } from '../output.js';
import { renderMarkdownTable, type Cell } from '../report.js';
import { hdrLatencySummary } from '../latency-hdr.js';
import { latencyHistogramPrecision } from '../stats.js';
import type { AgentScenarioRun } from './agent-scenario.js';
import type { CommandFeedTally } from './agent-target.js';
import type { AgentScenario } from './scenario.js';
import type { ScenarioRunDetails } from './thresholds.js';

export interface AgentReportDetails extends ScenarioRunDetails {
  /** Iterations (sessions) that ran to their end, that the executor interrupted, that failed in the harness's own code. */
  iterations: number;
  interrupted_iterations: number;
  failed_iterations: number;
  max_vus: number;
  stages_end_ms: number;
  elapsed_ms: number;
  frames_refused_by_code: Readonly<Record<string, number>>;
  client_refusals_by_code: Readonly<Record<string, number>>;
  not_authenticated_by_reason: Readonly<Record<string, number>>;
  /** In-process runs only: the commands sent through the API during the run. */
  commands: CommandFeedTally | null;
}

const units = {
  samples: 'samples', p50_ms: 'milliseconds', p90_ms: 'milliseconds', p99_ms: 'milliseconds', max_ms: 'milliseconds',
  rate: 'fraction of samples true', total: 'count', last: 'gauge reading (vus: VUs)', min: 'gauge reading (vus: VUs)', max: 'gauge reading (vus: VUs)',
};

/** One row per metric: trends with HdrHistogram percentiles, rates with their fraction, counters with their total, gauges with last/min/max. */
function metricRows(run: AgentScenarioRun): BenchRow[] {
  return run.metrics.names().map((name): BenchRow => {
    const metric = run.metrics.get(name)!;
    const values = metric.values;
    switch (metric.kind) {
      case 'trend': {
        const hdr = hdrLatencySummary(values);
        return { metric: name, kind: 'trend', samples: values.length, p50_ms: hdr.p50_ms, p90_ms: hdr.p90_ms, p99_ms: hdr.p99_ms, max_ms: hdr.max_ms };
      }
      case 'rate':
        return { metric: name, kind: 'rate', samples: values.length, rate: values.length === 0 ? 0 : values.reduce((s, v) => s + v, 0) / values.length };
      case 'gauge':
        return { metric: name, kind: 'gauge', last: values.at(-1) ?? 0, min: values.length === 0 ? 0 : Math.min(...values), max: values.length === 0 ? 0 : Math.max(...values) };
      default:
        return { metric: name, kind: 'counter', total: values.reduce((s, v) => s + v, 0) };
    }
  });
}

/** Stages as k6 writes them, `30s:100,120s:100,15s:0`: one parameter a table can show. */
export function stagesText(scenario: AgentScenario): string {
  return scenario.stages.map((s) => `${s.duration_s}s:${s.target_vus}`).join(',');
}

export function agentBenchReport(run: AgentScenarioRun, context: {
  name: string; scenario: AgentScenario; scenarioFile: string; command: string; target: 'in-process' | 'remote'; devices: number;
  gracefulRampDownMs: number; gracefulStopMs: number; commandRatePerS: number; commands: CommandFeedTally | null;
}): BenchReport<AgentReportDetails> {
  const { scenario } = context;
  return benchReport<AgentReportDetails>({
    benchmark: 'agents',
    parameters: {
      scenario: context.name, executor: scenario.executor, stages: stagesText(scenario), max_vus: run.executor.maxVus, session_s: scenario.session_s,
      heartbeat_interval_ms: scenario.heartbeat_interval_ms, telemetry_interval_ms: scenario.telemetry_interval_ms,
      graceful_ramp_down_ms: context.gracefulRampDownMs, graceful_stop_ms: context.gracefulStopMs,
      target: context.target, devices: context.devices, command_rate_per_s: context.commandRatePerS, session_mac: false,
    },
    results: metricRows(run), units, latencyHistogram: latencyHistogramPrecision,
    details: {
      scenario: context.name, scenario_file: context.scenarioFile, command: context.command, target: context.target,
      thresholds: run.thresholds, thresholds_crossed: run.thresholds.filter((t) => t.crossed).length,
      iterations: run.executor.iterations, interrupted_iterations: run.executor.interrupted, failed_iterations: run.executor.failed,
      max_vus: run.executor.maxVus, stages_end_ms: Math.round(run.executor.stagesEndMs), elapsed_ms: Math.round(run.elapsedMs),
      frames_refused_by_code: run.tally.refusedByCode, client_refusals_by_code: run.tally.clientRefusalsByCode,
      not_authenticated_by_reason: run.tally.notAuthenticatedByReason, commands: context.commands,
    },
  });
}

const cell = (value: BenchRow[string] | undefined): Cell => (typeof value === 'number' ? value : '');

export function agentMarkdown(report: BenchReport<AgentReportDetails>): string {
  const d = report.details!;
  return [
    `# sdc bench agents: ${d.scenario}`, '', `Command: \`${d.command}\``, '',
    `Stages ${String(report.parameters['stages'])}, sessions of ${String(report.parameters['session_s'])} s: ${d.iterations} sessions ran to their end, ${d.interrupted_iterations} interrupted.`, '',
    // A cell a metric's kind does not have stays empty (a counter has no p50).
    renderMarkdownTable(['metric', 'kind', 'samples, total or last', 'p50_ms', 'p99_ms', 'rate', 'max'], report.results.map((r) => [
      String(r['metric']), String(r['kind']), cell(r['samples'] ?? r['total'] ?? r['last']), cell(r['p50_ms']), cell(r['p99_ms']), cell(r['rate']), cell(r['max_ms'] ?? r['max'])])),
    renderMarkdownTable(['metric', 'threshold', 'observed', 'crossed'], d.thresholds.map((t) => [t.metric, t.threshold, t.value, t.crossed ? 'yes' : 'no'])),
  ].join('\n');
}
