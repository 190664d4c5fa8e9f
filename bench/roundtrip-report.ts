import { latencyHistogramPrecision, type LatencySummary } from './stats.js';
import { formatNumber, latencyHistogramRows, renderBarChartSvg, renderCsv, renderMarkdownTable, type Cell } from './report.js';
import { benchReport, renderBenchJson, renderBenchCsv, renderLatencySamplesCsv, type BenchReport } from './output.js';
import type { RoundtripBenchRun, RoundtripSummary } from './roundtrip.js';
import { hdrPercentileRows } from './latency-hdr.js';
import { renderMetricsSeriesJsonl } from './metrics-series.js';

/** The table, CSV, SVG and Markdown forms of a `sdc bench roundtrip` run. */

const percentileKeys = ['p50', 'p90', 'p99', 'max'] as const;

/** Each measure: a stable name for files, the label a reader sees, and its figures (parts of client_ms are indented in the table). */
function latencyRows(summary: RoundtripSummary): Array<[string, string, LatencySummary]> {
  return [
    ['baseline_echo', 'baseline: TLS WebSocket echo', summary.baseline.latency_ms],
    ['command_server', 'command, server (created -> terminal)', summary.real.server_ms],
    ...Object.entries(summary.real.server_steps_ms ?? {}).map(([step, s]): [string, string, LatencySummary] =>
      [`server_step_${step.replace('->', '_to_')}`, `  of which ${step.replace('->', ' -> ')}`, s]),
    ['command_client', 'command, client (POST -> live event)', summary.real.client_ms],
    ['api_post', '  of which POST /v1/commands', summary.real.api_post_ms],
    ['live_lag', '  of which terminal state -> live event', summary.real.live_lag_ms],
  ];
}

const percentileHeader = ['measure', 'samples', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'mean_ms'];

function percentileTable(summary: RoundtripSummary): { header: string[]; rows: Cell[][] } {
  return { header: percentileHeader, rows: latencyRows(summary).map(([, label, s]) => [label, s.count, s.p50, s.p90, s.p99, s.max, s.mean]) };
}

/** The common bench report (bench/output.ts): one row per measure, the whole summary in `details`. */
export function roundtripBenchReport(summary: RoundtripSummary): BenchReport<RoundtripSummary> {
  const report = benchReport({
    benchmark: 'roundtrip',
    parameters: {
      agents: summary.agents.requested, commands_per_agent: summary.commands_per_agent, warmup_rounds: summary.warmup_rounds,
      sql: summary.environment.stores.sql, bus_kv: summary.environment.stores.bus_kv,
    },
    results: latencyRows(summary).map(([measure, , s]) => ({ measure, samples: s.count, p50_ms: s.p50, p90_ms: s.p90, p99_ms: s.p99, max_ms: s.max, mean_ms: s.mean })),
    units: { samples: 'samples', p50_ms: 'ms', p90_ms: 'ms', p99_ms: 'ms', max_ms: 'ms', mean_ms: 'ms' },
    latencyHistogram: latencyHistogramPrecision,
    details: summary,
  });
  if (summary.environment.store_versions !== undefined) report.environment.store_versions = summary.environment.store_versions;
  return report;
}

function ratioTable(summary: RoundtripSummary): { header: string[]; rows: Cell[][] } {
  return {
    header: ['ratio to baseline', 'p50', 'p90', 'p99', 'max'],
    rows: [
      ['server / baseline', ...percentileKeys.map((k) => summary.ratios.server[k])],
      ['client / baseline', ...percentileKeys.map((k) => summary.ratios.client[k])],
    ],
  };
}

function alignedTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const text = rows.map((row) => row.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n') + '\n';
}

function headline(summary: RoundtripSummary): string {
  const e = summary.environment;
  const versionOf = (store: string): string => (e.store_versions?.[store] === undefined ? '' : ` ${e.store_versions[store]}`);
  return `${summary.agents.online}/${summary.agents.requested} agents online, ${summary.commands_per_agent} EXEC_PING_KERNEL per agent `
    + `(+${summary.warmup_rounds} warm-up)${typeof summary.rate_per_s === 'number' ? `, open loop at ${summary.rate_per_s}/s (timed from each one's due time)` : ', closed loop'}; ${summary.real.commands.succeeded}/${summary.real.commands.total} succeeded`
    + `${summary.real.commands.refused > 0 ? `, ${summary.real.commands.refused} REFUSED (${Object.entries(summary.real.commands.refused_by_code).map(([c, n]) => `${c} ${n}`).join(', ')})` : ''}`
    + `${warmupRefusals(summary)}`
    + `${summary.real.commands.not_terminal > 0 ? `, ${summary.real.commands.not_terminal} NOT terminal` : ''}`
    + `${summary.real.commands.not_sent > 0 ? `, ${summary.real.commands.not_sent} not sent before the deadline` : ''}; `
    + `node ${e.node}, ${e.cpu} (${e.cpu_count} cores), SQL ${e.stores.sql}${versionOf('mysql')}, bus/kv ${e.stores.bus_kv}${versionOf('redis')}; `
    + `open files ${e.open_files_peak ?? '?'} peak of ${e.open_files_limit ?? 'unlimited'} allowed`;
}

/** The warm-up round's refused creations, named in the headline so that none goes unseen (older summaries lack the field). */
function warmupRefusals(summary: RoundtripSummary): string {
  const entries = Object.entries(summary.real.commands.warmup_refused_by_code ?? {});
  return entries.length === 0 ? '' : `, warm-up REFUSED ${entries.map(([c, n]) => `${c} ${n}`).join(', ')}`;
}

export function renderRoundtripTable(summary: RoundtripSummary): string {
  const latency = percentileTable(summary);
  const ratios = ratioTable(summary);
  const p = summary.phases_ms;
  return [
    headline(summary), '',
    alignedTable(latency.header, latency.rows),
    alignedTable(ratios.header, ratios.rows),
    `phases: deployment ${p.deployment} ms, enrollment ${p.enrollment} ms, baseline ${p.baseline} ms, agents online ${p.agents_online} ms, commands ${p.commands} ms; `
      + `live stream reconnects ${summary.real.live_stream_reconnects} (drops ${JSON.stringify(summary.real.live_stream_drops ?? {})}); result ${summary.ok ? 'ok' : 'FAILED'}`,
    `commands phase load: event-loop utilization ${summary.commands_phase_load.event_loop_utilization}, `
      + `event-loop delay p50 ${summary.commands_phase_load.event_loop_delay_ms.p50} ms, p99 ${summary.commands_phase_load.event_loop_delay_ms.p99} ms, `
      + `max ${summary.commands_phase_load.event_loop_delay_ms.max} ms; CPU per wall time ${summary.commands_phase_load.cpu_per_wall}, `
      + `CPU per command ${summary.cpu_ms_per_command} ms`
      + (summary.commands_phase_load.main_thread_cpu_per_wall === undefined ? '' : `, main thread CPU per wall ${summary.commands_phase_load.main_thread_cpu_per_wall}`)
      + (summary.sql_round_trips_per_command === null ? '' : `, SQL round trips per command ${summary.sql_round_trips_per_command}`),
    ...ladderLines(summary),
    '',
  ].join('\n');
}

/** `--ladder`: the idle load, one line per open-loop step, and the highest rate sustained under the utilization bound. */
export function ladderLines(summary: RoundtripSummary): string[] {
  const ladder = summary.open_loop_ladder;
  if (ladder === undefined) return [];
  const idle = ladder.idle_load;
  return [
    '', `open-loop ladder (${ladder.step_ms} ms per step, sustained: every command succeeded and the last terminal event within ${ladder.drain_sustained_ms} ms of the last due time):`,
    `  idle (no commands, ${ladder.idle_ms} ms): event-loop utilization ${idle.event_loop_utilization}, main thread CPU per wall ${idle.main_thread_cpu_per_wall ?? '?'}, CPU per wall ${idle.cpu_per_wall}`,
    ...ladder.steps.map((s) => `  ${s.rate_per_s}/s: ${s.commands.succeeded}/${s.commands.offered} succeeded, event-loop utilization ${s.load.event_loop_utilization}, main thread CPU per wall ${s.load.main_thread_cpu_per_wall ?? '?'}, `
      + `CPU per wall ${s.load.cpu_per_wall}, CPU per command ${s.cpu_ms_per_command} ms, server p50/p99 ${s.server_ms.p50}/${s.server_ms.p99} ms, `
      + `client p99 ${s.client_ms.p99} ms, drain ${s.drain_ms ?? '-'} ms, ${s.sustained ? 'sustained' : `NOT sustained (${s.not_sustained_because ?? '?'})`}`),
    ...(ladder.rates_not_run.length > 0 ? [`  not run: ${ladder.rates_not_run.join(', ')}/s`] : []),
    `  highest rate sustained with event-loop utilization under ${ladder.elu_max}: ${ladder.sustained_rate_below_elu_per_s === null ? 'none' : `${ladder.sustained_rate_below_elu_per_s}/s`}; `
      + `with the main thread's CPU per wall under ${ladder.elu_max}: ${ladder.sustained_rate_below_main_thread_cpu_per_s === null ? 'none' : `${ladder.sustained_rate_below_main_thread_cpu_per_s}/s`}`,
  ];
}

export function renderRoundtripSvg(summary: RoundtripSummary): string {
  return renderBarChartSvg({
    title: `Command round trip vs TLS WebSocket echo, ${summary.agents.online} agents`,
    unit: 'ms', scale: 'log',
    series: ['baseline echo', 'command (server)', 'command (client)'],
    groups: percentileKeys.map((k) => ({ label: k, values: [summary.baseline.latency_ms[k], summary.real.server_ms[k], summary.real.client_ms[k]] })),
  });
}

/**
 * File name -> text, for `--out DIR`. `report` is the one the command printed (roundtripBenchReport
 * of this run): built once, so roundtrip.json is what --json printed; a second build would read the
 * load average again, and on a busy machine it moves between the two reads.
 */
export function roundtripReportFiles(run: RoundtripBenchRun, commandLine: string, report: BenchReport<RoundtripSummary> = roundtripBenchReport(run.summary)): Record<string, string> {
  const { summary, samplesMs } = run;
  const latency = percentileTable(summary);
  const ratios = ratioTable(summary);
  const histogram = latencyHistogramRows([
    { name: 'baseline_echo', samples: samplesMs.baseline },
    { name: 'command_server', samples: samplesMs.server },
    { name: 'command_client', samples: samplesMs.client },
  ]);
  const markdown = [
    `# Command round trip, ${summary.agents.requested} agents`, '',
    `Command: \`${commandLine}\``, '',
    headline(summary) + '.', '',
    renderMarkdownTable(latency.header, latency.rows),
    renderMarkdownTable(ratios.header, ratios.rows),
    ...(summary.open_loop_ladder === undefined ? [] : [ladderLines(summary).slice(1).map((line) => line.replace(/^  /, '- ')).join('\n'), '']),
    '![percentiles](roundtrip.svg)', '',
    'Files: `roundtrip.json` (the bench report, the summary in `details`), `roundtrip.csv` (percentiles per measure), `roundtrip-histogram.csv` (counts per bucket, `le_ms` = upper edge, the last `+Inf`), `roundtrip-percentiles.csv` (the latency CDF: HdrHistogram value at fixed percentiles per measure), `roundtrip-samples.csv` (every latency sample, `series,latency_ms`), `roundtrip.svg`, `metrics-start.prom` and `metrics-end.prom` (the services\' /metrics just before and just after the commands phase, each sample stamped with its scrape time), `metrics-series.jsonl` (the same /metrics every scrape interval over the commands phase, from the first of those two scrapes to the last, each line stamped with its time).', '',
  ].join('\n');
  return {
    'roundtrip.json': renderBenchJson(report),
    'roundtrip.csv': renderBenchCsv(report),
    'roundtrip-histogram.csv': renderCsv(histogram.header, histogram.rows),
    'roundtrip.svg': renderRoundtripSvg(summary),
    'roundtrip-percentiles.csv': renderCsv(['measure', 'percentile', 'latency_ms'], ([['baseline_echo', samplesMs.baseline], ['command_server', samplesMs.server], ['command_client', samplesMs.client]] as const)
      .flatMap(([measure, samples]) => hdrPercentileRows(samples).map((r): Cell[] => [measure, r.percentile, r.latency_ms]))),
    // Every sample as measured (the same file writeBenchOut writes under --repeat, pooled).
    'roundtrip-samples.csv': renderLatencySamplesCsv({ baseline_echo: samplesMs.baseline, command_server: samplesMs.server, command_client: samplesMs.client }) ?? 'series,latency_ms\n',
    'roundtrip.md': markdown,
    ...(run.metricsScrapes === undefined ? {} : { 'metrics-start.prom': run.metricsScrapes.start, 'metrics-end.prom': run.metricsScrapes.end }),
    ...(run.metricsSeries === undefined ? {} : { 'metrics-series.jsonl': renderMetricsSeriesJsonl(run.metricsSeries) }),
  };
}
