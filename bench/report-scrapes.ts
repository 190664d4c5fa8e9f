import { renderBarChartSvg } from './report.js';
import type { Block } from './report-document.js';
import { lineSeriesMax, renderLineChartSvg, type LineSeries } from './report-figures.js';

/**
 * The dashboard's panels (bench/dashboards/sdc-overview.json) drawn from recorded /metrics
 * scrapes. One scrape is one instant: counters can only be drawn as totals since start. Two
 * scrapes of the same run (`metrics-start.prom` and `metrics-end.prom`, each sample stamped with
 * its scrape time in ms, as the exposition format allows; pairScrapes) give what Prometheus would: `rate()`
 * as the counter's increase over the seconds between them, `increase()` as the increase,
 * `histogram_quantile` over the buckets' increases, and gauges at both instants. A series of
 * scrapes (`metrics-series.jsonl`, bench/metrics-series.ts) gives each panel over time: the same
 * per interval between consecutive scrapes (panelOverTime), drawn as line charts.
 */

type Files = Record<string, string>;
const groupsMax = 32;

/** One sample of a Prometheus text exposition; `timestampMs` when the line carries one. */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestampMs?: number;
}

export interface DashboardPanel {
  readonly title: string;
  readonly exprs: readonly string[];
}

/** The samples of a Prometheus text scrape (comments and malformed lines skipped). */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$/.exec(line);
    if (match === null || line.startsWith('#')) continue;
    const value = match[4] === '+Inf' ? Infinity : match[4] === '-Inf' ? -Infinity : Number(match[4]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = raw!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value, ...(match[5] === undefined ? {} : { timestampMs: Number(match[5]) }) });
  }
  return samples;
}

/** The scrape with every sample stamped `atMs` (ms since the epoch), so a later reader knows when it was taken. */
export function timestampScrape(text: string, atMs: number): string {
  const stamp = Math.round(atMs);
  return text.split('\n').map((line) => (line === '' || line.startsWith('#') ? line : `${line.trimEnd()} ${stamp}`)).join('\n');
}

export interface ParsedScrape {
  readonly path: string;
  readonly samples: readonly PromSample[];
  /** When every sample carries the same timestamp: the scrape's time. */
  readonly atMs: number | undefined;
}

/**
 * What one set of panels is drawn from: one scrape, a start and end pair, or a series (every
 * scrape of a `*-series.jsonl` in time order, `start` its first and `end` its last; `failed`
 * counts the scrapes the bench noted as failed).
 */
export type ScrapeSource = { readonly end: ParsedScrape; readonly start?: ParsedScrape; readonly series?: readonly ParsedScrape[]; readonly failed?: number };

/** How report-inputs.ts names the scrapes of a series file: `DIR/X-series.jsonl#0001`, numbered in file order. */
export const seriesMemberPattern = /^(.*-series\.jsonl)#\d+$/;

function parseScrape(scrape: { path: string; text: string }): ParsedScrape {
  const samples = parsePrometheusText(scrape.text);
  const stamps = new Set(samples.map((s) => s.timestampMs));
  const only = stamps.size === 1 ? [...stamps][0] : undefined;
  return { path: scrape.path, samples, atMs: only };
}

/**
 * Scrapes paired by name: `X-start.prom` and `X-end.prom` in one directory, both timestamped, the
 * end one later, are one run's window (roundtrip writes `metrics-start.prom` and
 * `metrics-end.prom`, ingest one pair per mode); the scrapes of one series file
 * (`X-series.jsonl#N`, see seriesMemberPattern) are one series, which replaces the `X-start.prom`
 * and `X-end.prom` pair beside it (the series begins and ends with the same two scrapes); every
 * other scrape stands alone. In input order (of the end scrape for a pair, of the first scrape
 * for a series).
 */
export function pairScrapes(scrapes: ReadonlyArray<{ path: string; text: string }>): ScrapeSource[] {
  const parsed = scrapes.map(parseScrape);
  const seriesFiles = new Map<string, ParsedScrape[]>();
  for (const s of parsed) {
    const file = seriesMemberPattern.exec(s.path)?.[1];
    if (file !== undefined) seriesFiles.set(file, [...(seriesFiles.get(file) ?? []), s]);
  }
  const coveredPairs = new Set([...seriesFiles.keys()].flatMap((file) => ['-start.prom', '-end.prom'].map((end) => file.replace(/-series\.jsonl$/, end))));
  const byPath = new Map(parsed.map((s) => [s.path, s]));
  const startOf = (end: ParsedScrape) => {
    if (!end.path.endsWith('-end.prom') || end.atMs === undefined) return undefined;
    const start = byPath.get(end.path.replace(/-end\.prom$/, '-start.prom'));
    return start?.atMs !== undefined && start.atMs < end.atMs ? start : undefined;
  };
  const pairedStarts = new Set(parsed.map(startOf).filter((s) => s !== undefined).map((s) => s.path));
  const sources: ScrapeSource[] = [];
  for (const s of parsed) {
    const file = seriesMemberPattern.exec(s.path)?.[1];
    if (file !== undefined) {
      const members = seriesFiles.get(file)!;
      const pairBeside = ['-start.prom', '-end.prom'].some((end) => byPath.has(file.replace(/-series\.jsonl$/, end)));
      if (members[0] === s) sources.push(...seriesSource(members, pairBeside));
      continue;
    }
    if (pairedStarts.has(s.path) || (coveredPairs.has(s.path) && seriesSourceDrawable(seriesFiles.get(s.path.replace(/-(start|end)\.prom$/, '-series.jsonl'))))) continue;
    const start = startOf(s);
    sources.push(start === undefined ? { end: s } : { start, end: s });
  }
  return sources;
}

/** The stamped scrapes of a series in time order (two at the same instant: the later in the file). */
function stampedInOrder(members: readonly ParsedScrape[]): ParsedScrape[] {
  return members.filter((m) => m.atMs !== undefined && m.samples.length > 0).map((m, i) => ({ m, i }))
    .sort((a, b) => a.m.atMs! - b.m.atMs! || a.i - b.i).map(({ m }) => m);
}

function seriesSourceDrawable(members: readonly ParsedScrape[] | undefined): boolean {
  return members !== undefined && stampedInOrder(members).length >= 2;
}

/**
 * A series of at least two stamped scrapes; none gives nothing; one alone stands alone, unless
 * the bench's `X-start.prom`/`X-end.prom` are beside it (`pairBeside`): then those are drawn
 * instead (pairScrapes keeps them when the series is not drawable), not the same instant twice.
 */
function seriesSource(members: readonly ParsedScrape[], pairBeside: boolean): ScrapeSource[] {
  const ordered = stampedInOrder(members);
  const failed = members.length - ordered.length;
  if (ordered.length === 0) return [];
  if (ordered.length === 1) return pairBeside ? [] : [{ end: ordered[0]! }];
  return [{ start: ordered[0]!, end: ordered.at(-1)!, series: ordered, failed }];
}

const seriesKey = (s: PromSample) => `${s.name}{${Object.keys(s.labels).sort().map((k) => `${k}=${s.labels[k]}`).join(',')}}`;

/** Each end sample's increase since the start scrape; a series that went down was reset (Prometheus: its end value is the increase). */
function increases(start: readonly PromSample[], end: readonly PromSample[]): PromSample[] {
  const before = new Map(start.map((s) => [seriesKey(s), s.value]));
  return end.map((s) => {
    const was = before.get(seriesKey(s)) ?? 0;
    return { ...s, value: s.value >= was ? s.value - was : s.value };
  });
}

/** `histogram_quantile(q, ...)` over the summed cumulative buckets: the bucket edge where the rank falls (as Prometheus, linear within the bucket). */
function histogramQuantile(q: number, buckets: ReadonlyArray<{ le: number; count: number }>): number | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let previous = { le: 0, count: 0 };
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      if (!Number.isFinite(bucket.le)) return previous.le;
      const inBucket = bucket.count - previous.count;
      return previous.le + (bucket.le - previous.le) * (inBucket === 0 ? 0 : (rank - previous.count) / inBucket);
    }
    previous = bucket;
  }
  return previous.le;
}

interface PanelValues {
  readonly unit: string;
  readonly series: string[];
  readonly groups: Array<{ label: string; values: number[] }>;
}

function quantileValues(expr: string, samples: readonly PromSample[]): PanelValues | undefined {
  const quantiles = [...expr.matchAll(/histogram_quantile\(([0-9.]+),.*?(sdc_[a-z_]+)_bucket/g)];
  const family = quantiles[0]![2]!;
  const byLe = new Map<number, number>();
  for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
    const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const buckets = [...byLe].map(([le, count]) => ({ le, count }));
  const values = quantiles.map((q) => histogramQuantile(Number(q[1]), buckets));
  if (values.some((v) => v === undefined)) return undefined;
  return { unit: 'seconds', series: ['value'], groups: quantiles.map((q, i) => ({ label: `p${Number(q[1]) * 100}`, values: [values[i]!] })) };
}

/** The metric's samples summed by the panel's `by (...)` labels (all labels when it has none), sorted by group label. */
function sumsBy(expr: string, metric: string, samples: readonly PromSample[]): Map<string, number> {
  const by = /by \(([^)]*)\)/.exec(expr)?.[1]?.split(',').map((l) => l.trim()).filter((l) => l.length > 0);
  const sums = new Map<string, number>();
  for (const s of samples.filter((x) => x.name === metric && Number.isFinite(x.value))) {
    const keys = by ?? Object.keys(s.labels).sort();
    const label = keys.map((k) => s.labels[k] ?? '').filter((v) => v !== '').join(' ') || metric;
    sums.set(label, (sums.get(label) ?? 0) + s.value);
  }
  return new Map([...sums].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, groupsMax));
}

/** One panel at one scrape: counters are totals since start. */
function panelAtScrape(panel: DashboardPanel, samples: readonly PromSample[]): PanelValues | undefined {
  const expr = panel.exprs.join(' ');
  if (/histogram_quantile\(/.test(expr)) return quantileValues(expr, samples);
  const metric = /sdc_[a-z_]+/.exec(expr)?.[0];
  if (metric === undefined) return undefined;
  const sums = sumsBy(expr, metric, samples);
  if (sums.size === 0) return undefined;
  const unit = /_seconds/.test(metric) ? 'seconds' : /_total|_count/.test(metric) ? 'total since start' : 'value';
  return { unit, series: [metric], groups: [...sums].map(([label, value]) => ({ label, values: [Math.max(0, value)] })) };
}

/** One panel between two scrapes `seconds` apart: rate() per second, increase() as the increase, quantiles over the buckets' increases, gauges at both. */
function panelOverRun(panel: DashboardPanel, start: readonly PromSample[], end: readonly PromSample[], seconds: number): PanelValues | undefined {
  const expr = panel.exprs.join(' ');
  if (/histogram_quantile\(/.test(expr)) return quantileValues(expr, increases(start, end));
  const metric = /sdc_[a-z_]+/.exec(expr)?.[0];
  if (metric === undefined) return undefined;
  const counter = /\b(rate|increase)\(/.exec(expr)?.[1];
  if (counter !== undefined) {
    const sums = sumsBy(expr, metric, increases(start, end));
    if (sums.size === 0) return undefined;
    const perSecond = counter === 'rate';
    return {
      unit: perSecond ? 'per second' : 'increase', series: [metric],
      groups: [...sums].map(([label, value]) => ({ label, values: [Math.max(0, perSecond ? value / seconds : value)] })),
    };
  }
  const atStart = sumsBy(expr, metric, start);
  const atEnd = sumsBy(expr, metric, end);
  if (atEnd.size === 0 && atStart.size === 0) return undefined;
  const labels = [...new Set([...atStart.keys(), ...atEnd.keys()])].sort().slice(0, groupsMax);
  return { unit: /_seconds/.test(metric) ? 'seconds' : 'value', series: ['at start', 'at end'], groups: labels.map((label) => ({ label, values: [Math.max(0, atStart.get(label) ?? 0), Math.max(0, atEnd.get(label) ?? 0)] })) };
}

/** One panel over a series: a line per group (per quantile for a quantile panel), x in seconds since the first scrape. */
export interface PanelOverTime {
  readonly unit: string;
  readonly lines: LineSeries[];
  /** Groups with samples; only the lineSeriesMax with the largest peaks are drawn. */
  readonly groupsTotal: number;
}

type Points = Map<string, Array<readonly [number, number]>>;

function addPoint(points: Points, label: string, point: readonly [number, number]): void {
  points.set(label, [...(points.get(label) ?? []), point]);
}

/** The lineSeriesMax groups with the largest peaks, in label order (the same data give the same lines). */
function largestLines(points: Points): LineSeries[] {
  const peak = (p: ReadonlyArray<readonly [number, number]>) => Math.max(...p.map(([, y]) => y));
  return [...points].sort(([a, pa], [b, pb]) => peak(pb) - peak(pa) || (a < b ? -1 : 1)).slice(0, lineSeriesMax)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, p]) => ({ name, points: p }));
}

/**
 * A panel as Prometheus would draw it over a series of scrapes, one point per scrape interval:
 * `rate()` as each interval's increase per second, `increase()` as the increase since the first
 * scrape, `histogram_quantile` over each interval's bucket increases (no point where no command
 * finished in it), gauges at each scrape. A counter that went down between two scrapes was reset:
 * its new value is that interval's increase, as in Prometheus.
 */
export function panelOverTime(panel: DashboardPanel, series: readonly ParsedScrape[]): PanelOverTime | undefined {
  const expr = panel.exprs.join(' ');
  const t0 = series[0]?.atMs;
  if (t0 === undefined || series.length < 2) return undefined;
  const secondsAt = (scrape: ParsedScrape) => (scrape.atMs! - t0) / 1000;
  const points: Points = new Map();
  const intervals = series.slice(1).map((cur, i) => ({ prev: series[i]!, cur, seconds: (cur.atMs! - series[i]!.atMs!) / 1000 })).filter((x) => x.seconds > 0);
  let unit: string;
  if (/histogram_quantile\(/.test(expr)) {
    unit = 'seconds';
    for (const { prev, cur } of intervals) {
      for (const g of quantileValues(expr, increases(prev.samples, cur.samples))?.groups ?? []) addPoint(points, g.label, [secondsAt(cur), g.values[0]!]);
    }
  } else {
    const metric = /sdc_[a-z_]+/.exec(expr)?.[0];
    if (metric === undefined) return undefined;
    const counter = /\b(rate|increase)\(/.exec(expr)?.[1];
    if (counter === 'rate') {
      unit = 'per second';
      for (const { prev, cur, seconds } of intervals) for (const [label, value] of sumsBy(expr, metric, increases(prev.samples, cur.samples))) addPoint(points, label, [secondsAt(cur), Math.max(0, value / seconds)]);
    } else if (counter === 'increase') {
      unit = 'increase since the first scrape';
      const total = new Map<string, number>();
      for (const { prev, cur } of intervals) {
        for (const [label, value] of sumsBy(expr, metric, increases(prev.samples, cur.samples))) {
          if (!total.has(label)) addPoint(points, label, [0, 0]);
          total.set(label, (total.get(label) ?? 0) + Math.max(0, value));
          addPoint(points, label, [secondsAt(cur), total.get(label)!]);
        }
      }
    } else {
      unit = /_seconds/.test(metric) ? 'seconds' : 'value';
      for (const scrape of series) for (const [label, value] of sumsBy(expr, metric, scrape.samples)) addPoint(points, label, [secondsAt(scrape), Math.max(0, value)]);
    }
  }
  if (points.size === 0) return undefined;
  return { unit, lines: largestLines(points), groupsTotal: points.size };
}

/** A series source's panels as line charts over wall-clock seconds since its first scrape. */
function seriesFigures(source: ScrapeSource & { series: readonly ParsedScrape[] }, index: number, panels: readonly DashboardPanel[], files: Files, producedBy: string | undefined): Block[] {
  const { series } = source;
  const file = seriesFileOf(source.end.path);
  const seconds = (source.end.atMs! - source.start!.atMs!) / 1000;
  const failed = source.failed ?? 0;
  const blocks: Block[] = [{
    kind: 'paragraph',
    text: `From \`${file}\` (${series.length} scrapes over ${formatSeconds(seconds)} s${failed > 0 ? `; ${failed} more noted as failed` : ''}${producedBy === undefined ? '' : `, by ${producedBy}`}): each panel of \`bench/dashboards/sdc-overview.json\` over time, one point per scrape interval as Prometheus would draw it: rate() panels per second over each interval, increase() panels as the increase since the first scrape, latency quantiles over the commands finished in each interval (no point where none finished), gauges at each scrape. Wall-clock.`,
  }];
  const empty: string[] = [];
  panels.forEach((panel, p) => {
    const values = panelOverTime(panel, series);
    if (values === undefined) { empty.push(panel.title); return; }
    const name = `metrics-${index + 1}-panel-${p + 1}.svg`;
    files[name] = renderLineChartSvg({ title: panel.title, xLabel: 'seconds since the first scrape (wall-clock)', yLabel: values.unit, series: values.lines, xMin: 0 });
    const shown = values.groupsTotal > values.lines.length ? ` (the ${values.lines.length} of ${values.groupsTotal} groups with the largest peaks)` : '';
    // The caption names its source and says wall-clock: a figure taken into a paper leaves the paragraph above behind.
    blocks.push({ kind: 'figure', file: name, caption: `${panel.title} (\`${panel.exprs.join('; ')}\`) over ${formatSeconds(seconds)} s, ${series.length} scrapes${shown}, ${producedBy === undefined ? `\`${file}\`` : `by ${producedBy}`} (wall-clock)` });
  });
  if (empty.length > 0) blocks.push({ kind: 'paragraph', text: `No samples in this series for: ${empty.join('; ')}.` });
  return blocks;
}

/** `DIR/X-series.jsonl` for a member `DIR/X-series.jsonl#N`, else the path itself. */
function seriesFileOf(path: string): string {
  return seriesMemberPattern.exec(path)?.[1] ?? path;
}

/**
 * The dashboard's panels as static bar charts from one source (one scrape, or a start and end
 * pair); panels without samples are named, not drawn. `producedBy`: the command that ran the
 * services, as report text (code spans in backticks).
 */
export function scrapeFigures(source: ScrapeSource, index: number, panels: readonly DashboardPanel[], files: Files, producedBy: string | undefined): Block[] {
  if (source.series !== undefined) return seriesFigures({ ...source, series: source.series }, index, panels, files, producedBy);
  const { start, end } = source;
  const seconds = start === undefined ? 0 : (end.atMs! - start.atMs!) / 1000;
  const intro = start === undefined
    ? `From \`${end.path}\` (${end.samples.length} samples${producedBy === undefined ? '' : `, scraped at the end of ${producedBy}`}): each panel of \`bench/dashboards/sdc-overview.json\` at the moment of the scrape. Rates and increases over time need two scrapes; counters are drawn as their totals since the process started. Wall-clock.`
    : `From \`${start.path}\` and \`${end.path}\` (${end.samples.length} samples, scraped ${formatSeconds(seconds)} s apart${producedBy === undefined ? '' : ` by ${producedBy}`}): each panel of \`bench/dashboards/sdc-overview.json\` between the two scrapes, as Prometheus would draw it over that window: rate() panels per second over the ${formatSeconds(seconds)} s, increase() panels as the increase, latency quantiles over the commands finished in between, gauges at both scrapes. Wall-clock.`;
  const blocks: Block[] = [{ kind: 'paragraph', text: intro }];
  const empty: string[] = [];
  panels.forEach((panel, p) => {
    const values = start === undefined ? panelAtScrape(panel, end.samples) : panelOverRun(panel, start.samples, end.samples, seconds);
    if (values === undefined) { empty.push(panel.title); return; }
    const file = `metrics-${index + 1}-panel-${p + 1}.svg`;
    files[file] = renderBarChartSvg({ title: panel.title, unit: values.unit, series: values.series, groups: values.groups });
    // The caption names its source and says wall-clock: a figure taken into a paper leaves the paragraph above behind.
    const when = start === undefined ? 'at the scrape' : `between the scrapes ${formatSeconds(seconds)} s apart`;
    blocks.push({ kind: 'figure', file, caption: `${panel.title} (\`${panel.exprs.join('; ')}\`), ${when}, ${producedBy === undefined ? `\`${end.path}\`` : `by ${producedBy}`} (wall-clock)` });
  });
  if (empty.length > 0) blocks.push({ kind: 'paragraph', text: `No samples in ${start === undefined ? 'this scrape' : 'these scrapes'} for: ${empty.join('; ')}.` });
  return blocks;
}

function formatSeconds(seconds: number): string {
  return String(Math.round(seconds * 10) / 10);
}
