import type { BenchReport, BenchRow, BenchValue } from './output.js';
import { formatNumber } from './report.js';

/**
 * The ratio to the same-run baseline for the two benches whose baseline is a row of their own
 * results (issue 14: "each with a baseline measured in the same run and its ratio"): reconnect's
 * `bare_tls_rehandshake` row (the killed gateway's agents re-authenticating against bare TLS
 * re-handshakes, per percentile) and connections' `bare` row (memory per connection against a
 * bare mutual-TLS ws server holding as many). Added to the report in place by the command that
 * emits it (cli/commands/bench-connections.ts), so the latency samples and the suite's capture of
 * the report object stay with it. `sdc report` draws every `ratio_*` column.
 */

/** One ratio column: the row's field over the baseline row's same field. */
interface RatioColumn { readonly column: string; readonly field: string }

const reconnectRatios: readonly RatioColumn[] = [
  { column: 'ratio_to_bare_p50', field: 'p50_ms' },
  { column: 'ratio_to_bare_p99', field: 'p99_ms' },
];
const connectionsRatios: readonly RatioColumn[] = [
  { column: 'ratio_to_bare_rss_per_connection', field: 'rss_per_connection_kib' },
  { column: 'ratio_to_bare_heap_per_connection', field: 'heap_per_connection_kib' },
];

const ratioUnit = 'ratio to the bare baseline row, measured in the same run (1 = the baseline)';

/**
 * A ratio only of two positive figures: a per-connection RSS that fell between the idle and the
 * loaded reading (noise larger than the connections, seen at 100 and 500 agents) gives none
 * rather than a negative or unbounded ratio.
 */
function ratio(value: BenchValue | undefined, baseline: BenchValue | undefined): number | null {
  if (typeof value !== 'number' || typeof baseline !== 'number' || !(value > 0) || !(baseline > 0)) return null;
  return Number(formatNumber(value / baseline));
}

/** Adds the ratio columns to a reconnect or connections report in place; any other report is left as it is. */
export function addBaselineRatios(report: BenchReport<object>): void {
  const spec = report.benchmark === 'reconnect'
    ? { columns: reconnectRatios, isBaseline: (row: BenchRow) => row['what'] === 'bare_tls_rehandshake' }
    : report.benchmark === 'connections'
      ? { columns: connectionsRatios, isBaseline: (row: BenchRow) => row['role'] === 'bare' }
      : undefined;
  if (spec === undefined) return;
  // Without a baseline row (connections --no-baseline) the columns are there, empty: the table keeps its shape.
  const baseline = report.results.find(spec.isBaseline);
  report.results = report.results.map((row) => ({
    ...row,
    ...Object.fromEntries(spec.columns.map(({ column, field }) => [column, baseline === undefined ? null : ratio(row[field], baseline[field])])),
  }));
  report.units = { ...report.units, ...Object.fromEntries(spec.columns.map(({ column }) => [column, ratioUnit])) };
}
