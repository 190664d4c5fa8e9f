import type { Cell } from './report.js';
import type { Block, Section } from './report-document.js';

/**
 * k6's end-of-test summary as an input of `sdc report --from DIR` (issue 14): a run of
 * bench/k6/api.js or agent.js where k6 exists, exported with `k6 run --summary-export FILE`.
 * Two shapes are read, both documented by k6:
 *
 * - `--summary-export` (k6's legacy export, kept as it was for compatibility): each metric's
 *   statistics flat (`{ avg, min, med, max, 'p(90)', 'p(95)' }` for a trend, `{ count, rate }` for
 *   a counter, `{ passes, fails, value }` for a rate, `{ value, min, max }` for a gauge) and
 *   `thresholds: { 'p(95)<500': false }`, where, as k6's documentation warns, **true means the
 *   threshold failed** (grafana/k6-docs#30); a threshold given as `{ ok }` is read as it says.
 * - `handleSummary(data)` written as JSON: `{ type, contains, values: {...}, thresholds: { expr: { ok } } }`.
 *
 * Recognised by its shape (a `metrics` object and a `root_group` object), like the other inputs.
 * A file of that shape whose metrics cannot be read is refused with the reason (listed under
 * "Inputs that could not be read", named by its path), never a crash.
 */

export type K6MetricKind = 'trend' | 'rate' | 'counter' | 'gauge';

export interface K6Metric {
  readonly name: string;
  readonly kind: K6MetricKind;
  /** Statistic name -> value, in k6's order (avg, min, med, max, p(N)... for a trend). */
  readonly stats: ReadonlyArray<readonly [string, number]>;
  readonly thresholds: ReadonlyArray<{ readonly expression: string; readonly ok: boolean }>;
}

export interface K6Summary {
  readonly format: 'summary-export' | 'handleSummary';
  readonly metrics: readonly K6Metric[];
  /** root_group's checks (and its groups' checks): name, passes, fails. */
  readonly checks: ReadonlyArray<{ readonly name: string; readonly passes: number; readonly fails: number }>;
}

/** A summary is one test's metrics, not a data dump: bounded so a huge file cannot swell the report. */
export const k6SummaryLimits = Object.freeze({ metricsMax: 200, thresholdsPerMetricMax: 20, checksMax: 200, groupDepthMax: 8 });

const trendOrder = ['avg', 'min', 'med', 'max'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The shape that marks a k6 summary, before its contents are checked. */
export function isK6SummaryShape(value: Record<string, unknown>): boolean {
  return isObject(value['metrics']) && isObject(value['root_group']);
}

function kindOf(stats: Record<string, unknown>, declared: unknown): K6MetricKind | undefined {
  if (declared === 'trend' || declared === 'rate' || declared === 'counter' || declared === 'gauge') return declared;
  if ('avg' in stats && 'med' in stats) return 'trend';
  if ('passes' in stats && 'fails' in stats) return 'rate';
  if ('count' in stats && 'rate' in stats) return 'counter';
  if ('value' in stats) return 'gauge';
  return undefined;
}

/** Statistics as the file has them; a trend's in k6's order: avg, min, med, max, then the percentiles and the rest. */
function orderedStats(stats: Record<string, unknown>, kind: K6MetricKind): Array<[string, number]> | string {
  const entries = Object.entries(stats).filter(([key]) => key !== 'thresholds');
  for (const [key, value] of entries) if (typeof value !== 'number' || !Number.isFinite(value)) return `statistic ${key} is not a number`;
  if (kind !== 'trend') return entries as Array<[string, number]>;
  const rank = (key: string) => (trendOrder.includes(key) ? trendOrder.indexOf(key) : trendOrder.length);
  return (entries as Array<[string, number]>).map((e, i) => [e, i] as const).sort((a, b) => rank(a[0][0]) - rank(b[0][0]) || a[1] - b[1]).map(([e]) => e);
}

function thresholdsOf(raw: unknown): K6Metric['thresholds'] | string {
  if (raw === undefined) return [];
  if (!isObject(raw)) return 'thresholds is not an object';
  const entries = Object.entries(raw);
  if (entries.length > k6SummaryLimits.thresholdsPerMetricMax) return `more than ${k6SummaryLimits.thresholdsPerMetricMax} thresholds`;
  const out: Array<{ expression: string; ok: boolean }> = [];
  for (const [expression, value] of entries) {
    // --summary-export's boolean is "failed" (k6 keeps it for compatibility); handleSummary's { ok } says what it means.
    if (typeof value === 'boolean') out.push({ expression, ok: !value });
    else if (isObject(value) && typeof value['ok'] === 'boolean') out.push({ expression, ok: value['ok'] });
    else return `threshold ${expression} is neither a boolean nor { ok }`;
  }
  return out;
}

function metricOf(name: string, raw: unknown): { metric: K6Metric; format: K6Summary['format'] } | string {
  if (!isObject(raw)) return `metric ${name} is not an object`;
  const nested = isObject(raw['values']);
  const stats = nested ? raw['values'] as Record<string, unknown> : raw;
  const kind = kindOf(stats, raw['type']);
  if (kind === undefined) return `metric ${name} has no trend, rate, counter or gauge statistics`;
  const ordered = orderedStats(stats, kind);
  if (typeof ordered === 'string') return `metric ${name}: ${ordered}`;
  const thresholds = thresholdsOf(raw['thresholds']);
  if (typeof thresholds === 'string') return `metric ${name}: ${thresholds}`;
  return { metric: { name, kind, stats: ordered, thresholds }, format: nested ? 'handleSummary' : 'summary-export' };
}

/** Checks of root_group and its groups: `checks` is an object by name (--summary-export) or an array (handleSummary). */
function checksOf(group: Record<string, unknown>, depth: number, out: Array<K6Summary['checks'][number]>): void {
  if (depth > k6SummaryLimits.groupDepthMax) return;
  const checks = group['checks'];
  const list = Array.isArray(checks) ? checks : isObject(checks) ? Object.values(checks) : [];
  for (const check of list) {
    if (out.length >= k6SummaryLimits.checksMax) return;
    if (isObject(check) && typeof check['name'] === 'string' && typeof check['passes'] === 'number' && typeof check['fails'] === 'number') {
      out.push({ name: check['name'], passes: check['passes'], fails: check['fails'] });
    }
  }
  const groups = group['groups'];
  for (const child of Array.isArray(groups) ? groups : isObject(groups) ? Object.values(groups) : []) if (isObject(child)) checksOf(child, depth + 1, out);
}

/** The summary, or why it cannot be read (the reason the report lists beside the file's path). */
export function parseK6Summary(value: Record<string, unknown>): K6Summary | string {
  if (!isK6SummaryShape(value)) return 'not a k6 summary (no metrics and root_group objects)';
  const raw = Object.entries(value['metrics'] as Record<string, unknown>);
  if (raw.length === 0) return 'a k6 summary with no metrics';
  if (raw.length > k6SummaryLimits.metricsMax) return `a k6 summary with more than ${k6SummaryLimits.metricsMax} metrics`;
  const metrics: K6Metric[] = [];
  const formats = new Set<K6Summary['format']>();
  for (const [name, entry] of raw) {
    const parsed = metricOf(name, entry);
    if (typeof parsed === 'string') return `k6 summary: ${parsed}`;
    metrics.push(parsed.metric);
    formats.add(parsed.format);
  }
  const checks: Array<K6Summary['checks'][number]> = [];
  checksOf(value['root_group'] as Record<string, unknown>, 0, checks);
  return { format: formats.has('handleSummary') ? 'handleSummary' : 'summary-export', metrics: [...metrics].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), checks };
}

/** Three decimals, as the bench tables; a fraction below 1 (a rate such as http_req_failed) to three significant digits, so 0.0017 is not printed as 0.002. */
function statText(value: number): string {
  return Math.abs(value) < 1 && value !== 0 ? String(Number(value.toPrecision(3))) : String(Math.round(value * 1000) / 1000);
}

/** One subsection per summary file: its metrics, its thresholds with pass/fail and its checks, all wall-clock. */
export function k6Sections(summaries: ReadonlyArray<{ readonly path: string; readonly summary: K6Summary }>): Section[] {
  return summaries.map(({ path, summary }) => {
    const thresholds = summary.metrics.flatMap((m) => m.thresholds.map((t): Cell[] => [m.name, `\`${t.expression}\``, t.ok ? 'pass' : 'FAIL']));
    const failed = thresholds.filter((row) => row[2] === 'FAIL').length;
    const blocks: Block[] = [
      {
        kind: 'paragraph',
        text: `From \`${path}\` (k6's end-of-test summary, ${summary.format === 'summary-export' ? '`k6 run --summary-export`' : 'written by `handleSummary`'}): ${summary.metrics.length} metrics, `
          + `${thresholds.length === 0 ? 'no thresholds' : `${thresholds.length} thresholds, ${failed} failed`}. Time trends in ms as k6 reports them; rates as fractions. Wall-clock.`,
      },
      { kind: 'table', header: ['metric', 'type', 'statistics'], rows: summary.metrics.map((m): Cell[] => [m.name, m.kind, m.stats.map(([k, v]) => `${k}=${statText(v)}`).join(' ')]) },
    ];
    if (thresholds.length > 0) blocks.push({ kind: 'paragraph', text: `Thresholds of \`${path}\` (wall-clock):` }, { kind: 'table', header: ['metric', 'threshold', 'result'], rows: thresholds });
    if (summary.checks.length > 0) blocks.push({ kind: 'paragraph', text: `Checks of \`${path}\` (wall-clock):` }, { kind: 'table', header: ['check', 'passes', 'fails'], rows: summary.checks.map((c): Cell[] => [c.name, c.passes, c.fails]) });
    return { title: `k6 summary: ${path}`, level: 2, blocks } satisfies Section;
  });
}
