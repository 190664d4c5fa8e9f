import { execFileSync } from 'node:child_process';
import { AsyncLocalStorage } from 'node:async_hooks';
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { LatencyHistogramPrecision } from './stats.js';
import { formatNumber, renderBarChartSvg, renderCsv, renderMarkdownTable, writeReportFiles, type Cell } from './report.js';

/**
 * The one output shape of every `sdc bench` subcommand (docs/benchmarks.md, "Output"):
 *
 *   { benchmark, schema_version, environment, parameters, results, units }
 *
 * `results` is a list of flat rows; every numeric field of a row carries its unit in its name
 * (`p50_ms`, `calls_per_s`) and is listed in `units`, so a reader never guesses. Numbers go
 * through `formatNumber` (at most 3 decimals, no exponent) in JSON, CSV and tables alike.
 */

export const benchSchemaVersion = 1;

export interface BenchEnvironment {
  node: string;
  openssl: string;
  platform: string;
  arch: string;
  cpu: string;
  cpu_count: number;
  memory_total_mib: number;
  /** `git rev-parse HEAD` of the checkout the bench ran from, null outside a git checkout. */
  git_commit: string | null;
  /** `os.release()`: the kernel the figures were taken on. */
  kernel?: string;
  /** 1, 5 and 15 minute load averages when the bench started (see `markBenchStart`) and when its report was built. */
  load_average_before?: number[];
  load_average_after?: number[];
  /** True when either 1-minute load average exceeds the CPU count: the figures were taken on a busy machine. */
  loaded_machine?: boolean;
  /** The bench's seed, when it takes one (parameters.seed), so the environment block alone says how to reproduce. */
  seed?: BenchValue;
  /** Versions of the stores the bench used (Redis INFO server, MariaDB SELECT VERSION()), filled by the CLI after the run. */
  store_versions?: Record<string, string>;
}

export type BenchValue = string | number | boolean | null;
export type BenchRow = Readonly<Record<string, BenchValue>>;

export interface BenchReport<Extra extends object = Record<string, never>> {
  benchmark: string;
  schema_version: number;
  environment: BenchEnvironment;
  parameters: Readonly<Record<string, BenchValue>>;
  results: BenchRow[];
  /** Unit of every numeric result field, by field name (`{ p50_ms: 'ms' }`). */
  units: Readonly<Record<string, string>>;
  /**
   * Present when the rows hold latency percentiles: the HdrHistogram they come from (library,
   * significant digits, lowest discernible and highest trackable value; bench/stats.ts).
   */
  latency_histogram?: LatencyHistogramPrecision;
  /** Anything a bench reports beyond its rows (a skipped backend, phase timings), in the same shape every time. */
  details?: Extra;
}

let cachedCommit: string | null | undefined;

/** The checkout's commit, once per process; null when git or the repository is not there. */
export function gitCommit(): string | null {
  if (cachedCommit !== undefined) return cachedCommit;
  try {
    const cwd = new URL('..', import.meta.url).pathname;
    cachedCommit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 }).trim() || null;
  } catch {
    cachedCommit = null;
  }
  return cachedCommit;
}

/**
 * The load average at the start of the bench. Set when this module loads (a `sdc bench` process
 * loads it before the bench runs) and again by `markBenchStart()`, which the `sdc bench` group
 * calls before each run and each repeat.
 */
let loadBefore: number[] = loadavg();

export function markBenchStart(): void {
  loadBefore = loadavg();
  // Read before the run, not when its report is written (the checkout may move on meanwhile); cached from then on.
  gitCommit();
}

const roundLoad = (values: readonly number[]) => values.map((v) => Math.round(v * 100) / 100);

export function benchEnvironment(seed: BenchValue = null): BenchEnvironment {
  const cpuCount = cpus().length;
  const after = loadavg();
  return {
    node: process.version, openssl: process.versions.openssl, platform: process.platform, arch: process.arch,
    cpu: cpus()[0]?.model ?? 'unknown', cpu_count: cpuCount, memory_total_mib: Math.round(totalmem() / 2 ** 20),
    git_commit: gitCommit(), kernel: release(),
    load_average_before: roundLoad(loadBefore), load_average_after: roundLoad(after),
    loaded_machine: (loadBefore[0] ?? 0) > cpuCount || (after[0] ?? 0) > cpuCount,
    seed,
  };
}

/**
 * Reports built inside `captureBenchReports(fn)` are also handed to its collector: `--repeat`
 * runs a bench N times and merges what each run built, whichever bench it is.
 */
const reportCollector = new AsyncLocalStorage<Array<BenchReport<object>>>();

export async function captureBenchReports<T>(fn: () => Promise<T>): Promise<{ value: T; reports: Array<BenchReport<object>> }> {
  const reports: Array<BenchReport<object>> = [];
  const value = await reportCollector.run(reports, fn);
  return { value, reports };
}

/** Rounds like every other bench figure: the JSON shows what the table and the CSV show. */
function roundValue(value: BenchValue): BenchValue {
  return typeof value === 'number' && Number.isFinite(value) ? Number(formatNumber(value)) : value;
}

/**
 * Builds a report; refuses (RangeError, a programming error) a numeric field without a unit or a
 * non-finite number (JSON would print it as null).
 */
export function benchReport<Extra extends object = Record<string, never>>(input: {
  benchmark: string;
  parameters: Readonly<Record<string, BenchValue>>;
  results: readonly BenchRow[];
  units: Readonly<Record<string, string>>;
  /** The histogram the rows' percentiles come from (bench/stats.ts latencyHistogramPrecision), when they hold any. */
  latencyHistogram?: LatencyHistogramPrecision;
  details?: Extra;
  environment?: BenchEnvironment;
}): BenchReport<Extra> {
  const results = input.results.map((row) => {
    const out: Record<string, BenchValue> = {};
    for (const [key, value] of Object.entries(row)) {
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) throw new RangeError(`bench ${input.benchmark}: result field ${key} is ${value}`);
        if (input.units[key] === undefined) throw new RangeError(`bench ${input.benchmark}: result field ${key} has no unit`);
      }
      out[key] = roundValue(value);
    }
    return out;
  });
  const seed = input.parameters['seed'] ?? null;
  const report: BenchReport<Extra> = {
    benchmark: input.benchmark, schema_version: benchSchemaVersion, environment: input.environment ?? benchEnvironment(seed),
    parameters: input.parameters, results, units: input.units,
    ...(input.latencyHistogram === undefined ? {} : { latency_histogram: input.latencyHistogram }),
    ...(input.details === undefined ? {} : { details: input.details }),
  };
  reportCollector.getStore()?.push(report);
  return report;
}

/**
 * Per-operation latencies a bench measured (re-authentication times, requests...), by series
 * name, kept beside its report object rather than in its JSON (a run can hold thousands):
 * `writeBenchOut` writes them as `<benchmark>-percentiles.csv` (`series,percentile,latency_ms`,
 * HdrHistogram at bench/latency-hdr.ts's fixed percentiles), the file `sdc report` draws a
 * latency CDF from. A WeakMap, so a report dropped is its samples dropped.
 */
const latencySamples = new WeakMap<object, Readonly<Record<string, readonly number[]>>>();
/** Series drawn per CDF (bench/report-figures.ts draws at most 6 lines). */
const latencySeriesMax = 6;

export function attachLatencySamples(report: BenchReport<object>, samplesMsBySeries: Readonly<Record<string, readonly number[]>>): void {
  const names = Object.keys(samplesMsBySeries);
  for (const name of names) if (!/^[a-z_]+$/.test(name)) throw new RangeError(`latency series ${name} is not snake_case`);
  if (names.length > latencySeriesMax) throw new RangeError(`at most ${latencySeriesMax} latency series per report, not ${names.length}`);
  latencySamples.set(report, samplesMsBySeries);
}

export function latencySamplesOf(report: BenchReport<object>): Readonly<Record<string, readonly number[]>> | undefined {
  return latencySamples.get(report);
}

/** `<benchmark>-percentiles.csv`: each non-empty series at the fixed percentiles; undefined when the report has none. */
export async function renderLatencyPercentilesCsv(report: BenchReport<object>): Promise<string | undefined> {
  const samples = latencySamples.get(report);
  if (samples === undefined) return undefined;
  // Loaded here: hdr-histogram-js costs about 0.1 s to load, which every `sdc` start would pay otherwise.
  const { hdrPercentileRows } = await import('./latency-hdr.js');
  const rows = Object.entries(samples).flatMap(([series, values]) => hdrPercentileRows(values).map((r): Cell[] => [series, r.percentile, r.latency_ms]));
  return rows.length === 0 ? undefined : renderCsv(['series', 'percentile', 'latency_ms'], rows);
}

/**
 * Raw samples written per file (issue 14: "CSV of raw samples and percentiles"): a million rows
 * is about 20 MB, more than any bench here records (roundtrip at 500 agents: 30,000). Past it
 * each series keeps the same share, its first samples (docs/benchmarks.md says so); the
 * percentiles CSV still covers them all.
 */
export const latencySamplesCsvRowsMax = 1_000_000;

/**
 * `<benchmark>-samples.csv`: every recorded latency, `series,latency_ms`, series after series in
 * the order the bench recorded them (each sample as measured, at most 3 decimals). Undefined when
 * there are no samples.
 */
export function renderLatencySamplesCsv(samplesMsBySeries: Readonly<Record<string, readonly number[]>>, rowsMax: number = latencySamplesCsvRowsMax): string | undefined {
  const series = Object.entries(samplesMsBySeries).filter(([, values]) => values.length > 0);
  const total = series.reduce((sum, [, values]) => sum + values.length, 0);
  if (total === 0) return undefined;
  // Over the cap each series keeps the same share of its samples (its first ones), so none is dropped whole.
  const share = total > rowsMax ? rowsMax / total : 1;
  const rows = series.flatMap(([name, values]) => values.slice(0, Math.max(1, Math.floor(values.length * share))).map((value): Cell[] => [name, value]));
  return renderCsv(['series', 'latency_ms'], rows);
}

/**
 * Files a bench writes beside its report with its own `--out` (the /metrics series and the
 * start/end pair of roundtrip and ingest), kept beside the report object like its latencies: the
 * bench suite runs each `--repeat` without `--out`, so without this side channel each repeat's
 * series would be lost; the suite writes them under per-repeat names (repeatFileName). A WeakMap,
 * so a report dropped is its files dropped.
 */
const sideFiles = new WeakMap<object, Readonly<Record<string, string>>>();
/** Files per report: a bench writes a handful (ingest: three per mode); more would be a programming error. */
const sideFilesMax = 16;

export function attachSideFiles(report: BenchReport<object>, files: Readonly<Record<string, string>>): void {
  const names = Object.keys(files);
  for (const name of names) if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new RangeError(`side file ${name} is not a plain lower-case file name`);
  if (names.length > sideFilesMax) throw new RangeError(`at most ${sideFilesMax} side files per report, not ${names.length}`);
  sideFiles.set(report, files);
}

/** The report's side files, handed over once: the suite writes each repeat's as it finishes, so N repeats never hold N series at once. */
export function takeSideFiles(report: BenchReport<object>): Readonly<Record<string, string>> {
  const files = sideFiles.get(report) ?? {};
  sideFiles.delete(report);
  return files;
}

/**
 * A side file's name for repeat K: `-repeat-K` before the `-series.jsonl`, `-start.prom` or
 * `-end.prom` ending (`metrics-series.jsonl` -> `metrics-repeat-2-series.jsonl`,
 * `metrics-ed25519-start.prom` -> `metrics-ed25519-repeat-2-start.prom`), else before the
 * extension. Kept inside those endings so `sdc report` still finds a series and pairs it with its
 * start/end scrapes (bench/report-scrapes.ts) without knowing about repeats.
 */
export function repeatFileName(name: string, repeat: number): string {
  const match = /^(.*?)(-series\.jsonl|-start\.prom|-end\.prom|\.[a-z0-9]+)?$/.exec(name)!;
  return `${match[1]}-repeat-${repeat}${match[2] ?? ''}`;
}

/** min / median / max of one numeric field of one result row across repeats. */
export interface RepeatSpread { row: number; label: string; field: string; min: number; median: number; max: number }

export interface RepeatedBenchReport extends BenchReport<object> {
  /** Present after `--repeat N`: results hold each numeric field's median over the N runs; spread holds min/median/max. */
  repeats?: { count: number; spread: RepeatSpread[] };
}

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Merges the reports of N runs of one bench: the first run's rows with every numeric field
 * replaced by its median across runs (text fields from the first run), and the spread of each.
 * The environment is the last run's with the first run's load before, so it covers the whole span.
 */
export function mergeRepeats(reports: ReadonlyArray<BenchReport<object>>): RepeatedBenchReport {
  const first = reports[0];
  if (first === undefined) throw new RangeError('mergeRepeats takes at least one report');
  const last = reports.at(-1)!;
  const spread: RepeatSpread[] = [];
  const results = first.results.map((row, index) => {
    const out: Record<string, BenchValue> = { ...row };
    for (const [field, value] of Object.entries(row)) {
      if (typeof value !== 'number') continue;
      const values = reports.map((r) => r.results[index]?.[field]).filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
      const entry = { row: index, label: String(Object.values(row).find((v) => typeof v === 'string') ?? index), field, min: values[0]!, median: roundValue(median(values)) as number, max: values.at(-1)! };
      spread.push(entry);
      out[field] = entry.median;
    }
    return out;
  });
  const environment: BenchEnvironment = { ...last.environment, ...(first.environment.load_average_before ? { load_average_before: first.environment.load_average_before } : {}) };
  environment.loaded_machine = (first.environment.loaded_machine ?? false) || reports.some((r) => r.environment.loaded_machine === true);
  const merged: RepeatedBenchReport = { ...last, environment, results, repeats: { count: reports.length, spread } };
  // The repeats' latencies pooled per series: one CDF over every run, as the medians are over every run.
  const pooled: Record<string, number[]> = {};
  for (const report of reports) for (const [series, values] of Object.entries(latencySamples.get(report) ?? {})) pooled[series] = [...(pooled[series] ?? []), ...values];
  if (Object.keys(pooled).length > 0) latencySamples.set(merged, pooled);
  return merged;
}

/** The columns of the results: every field name, in first-seen order. */
export function benchColumns(report: Pick<BenchReport<object>, 'results'>): string[] {
  const columns: string[] = [];
  for (const row of report.results) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  return columns;
}

function cellOf(value: BenchValue | undefined): Cell {
  if (value === undefined || value === null) return '';
  return typeof value === 'boolean' ? String(value) : value;
}

/** The results as RFC 4180 CSV: no padding, numbers as in the JSON. */
export function renderBenchCsv(report: Pick<BenchReport<object>, 'results'>): string {
  const columns = benchColumns(report);
  return renderCsv(columns, report.results.map((row) => columns.map((c) => cellOf(row[c]))));
}

/** The results as an aligned text table for a terminal (text columns left, numbers right). */
export function renderBenchTable(report: Pick<BenchReport<object>, 'results'>): string {
  const columns = benchColumns(report);
  const text = report.results.map((row) => columns.map((c) => {
    const cell = cellOf(row[c]);
    return typeof cell === 'number' ? formatNumber(cell) : cell;
  }));
  const numeric = columns.map((c) => report.results.every((row) => typeof row[c] === 'number' || row[c] === undefined || row[c] === null));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns), ...text.map(line)].join('\n') + '\n';
}

export function renderBenchJson(report: BenchReport<object>): string {
  return JSON.stringify(report, null, 2) + '\n';
}

/**
 * `--out DIR`: `<benchmark>.json` (the report), `<benchmark>.csv` (its results),
 * `<benchmark>-percentiles.csv` and `<benchmark>-samples.csv` (every sample) when latencies are
 * attached (attachLatencySamples) and any extra
 * files a bench adds (histograms, SVG, Markdown). Returns the paths written.
 */
export async function writeBenchOut(dir: string, report: BenchReport<object>, extraFiles: Readonly<Record<string, string>> = {}): Promise<string[]> {
  const repeats = (report as RepeatedBenchReport).repeats;
  const svg = renderBenchSvg(report);
  const percentiles = await renderLatencyPercentilesCsv(report);
  const attached = latencySamples.get(report);
  const samples = attached === undefined ? undefined : renderLatencySamplesCsv(attached);
  return writeReportFiles(dir, {
    [`${report.benchmark}.json`]: renderBenchJson(report),
    [`${report.benchmark}.csv`]: renderBenchCsv(report),
    // A bench's own table and plot (extraFiles) win over the generic ones below.
    [`${report.benchmark}.md`]: renderBenchMarkdown(report),
    ...(svg === null ? {} : { [`${report.benchmark}.svg`]: svg }),
    ...(repeats === undefined ? {} : {
      [`${report.benchmark}-repeats.csv`]: renderCsv(['row', 'label', 'field', 'min', 'median', 'max'], repeats.spread.map((s) => [s.row, s.label, s.field, s.min, s.median, s.max])),
    }),
    ...(percentiles === undefined ? {} : { [`${report.benchmark}-percentiles.csv`]: percentiles }),
    ...(samples === undefined ? {} : { [`${report.benchmark}-samples.csv`]: samples }),
    ...extraFiles,
  });
}

/** The environment as Markdown lines: what a figure taken into a paper must carry with it. */
export function renderEnvironmentMarkdown(env: BenchEnvironment): string {
  const load = (values: readonly number[] | undefined) => (values === undefined ? 'n/a' : values.map(formatNumber).join(' / '));
  const stores = Object.entries(env.store_versions ?? {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    `- CPU: ${env.cpu} x ${env.cpu_count}; memory ${env.memory_total_mib} MiB; ${env.platform} ${env.arch} kernel ${env.kernel ?? 'n/a'}`,
    `- Node ${env.node}, OpenSSL ${env.openssl}; stores: ${stores}`,
    `- git ${env.git_commit ?? 'n/a'}; seed ${env.seed === undefined || env.seed === null ? 'none' : String(env.seed)}`,
    `- load average (1/5/15 min) before ${load(env.load_average_before)}, after ${load(env.load_average_after)}${env.loaded_machine === true ? ' -- LOADED MACHINE: load above the CPU count, figures are pessimistic' : ''}`,
  ].join('\n') + '\n';
}

/** `<bench>.md`: the results table, the spread across repeats when there were any, and the environment. */
export function renderBenchMarkdown(report: BenchReport<object>): string {
  const columns = benchColumns(report);
  const parts = [`# sdc bench ${report.benchmark}\n`, renderMarkdownTable(columns, report.results.map((row) => columns.map((c) => cellOf(row[c])))) ];
  const repeats = (report as RepeatedBenchReport).repeats;
  if (repeats !== undefined) {
    parts.push(`\nAcross ${repeats.count} repeats (results above are medians):\n`);
    parts.push(renderMarkdownTable(['row', 'label', 'field', 'min', 'median', 'max'], repeats.spread.map((s) => [s.row, s.label, s.field, s.min, s.median, s.max])));
  }
  parts.push(`\nParameters: ${Object.entries(report.parameters).map(([k, v]) => `${k}=${String(v)}`).join(', ')}\n\nEnvironment:\n\n${renderEnvironmentMarkdown(report.environment)}`);
  return parts.join('');
}

/**
 * `<bench>.svg`: a bar per result row of the first numeric field whose unit is not a count
 * (a rate or a latency, the figure a reader looks for), labelled by the row's first text field.
 * Null when the results have no such field.
 */
export function renderBenchSvg(report: BenchReport<object>): string | null {
  const columns = benchColumns(report);
  const numericField = columns.find((c) => report.results.some((r) => typeof r[c] === 'number') && !/^(samples|count|appends|calls|total|agents|entries)$/.test(c))
    ?? columns.find((c) => report.results.some((r) => typeof r[c] === 'number'));
  if (numericField === undefined || report.results.length === 0) return null;
  const labelField = columns.find((c) => report.results.every((r) => typeof r[c] === 'string'));
  const rows = report.results.slice(0, 64).filter((r) => typeof r[numericField] === 'number');
  if (rows.length === 0) return null;
  return renderBarChartSvg({
    title: `sdc bench ${report.benchmark}: ${numericField}`, unit: report.units[numericField] ?? '', series: [numericField],
    groups: rows.map((r, i) => ({ label: labelField === undefined ? String(i) : String(r[labelField]), values: [r[numericField] as number] })),
  });
}

/** Where progress goes: stderr, and whether it is a terminal (a bar) or not (periodic lines). */
export interface ProgressSink {
  write: (text: string) => void;
  isTty: boolean;
}

export const progressLimits = Object.freeze({
  /** Without a terminal, one line at most this often: a log file stays readable over an hour-long run. */
  lineIntervalMs: 5_000,
  barWidthChars: 25,
});

/**
 * Progress on long work: `update(done)` draws a bar on a terminal (redrawn only when the
 * percentage changes), or prints a line at most every `lineIntervalMs` elsewhere; `finish()`
 * always ends on 100 % (a bar that stops at 96 % reads as a hang).
 */
export function progressReporter(options: { sink: ProgressSink; label: string; total: number; nowMs: () => number; unit?: string }): {
  update(done: number, note?: string): void;
  finish(note?: string): void;
} {
  const { sink, label, total } = options;
  const unit = options.unit ?? '';
  let lastPct = -1;
  let lastLineMs = -Infinity;
  const pctOf = (done: number) => (total <= 0 ? 100 : Math.min(100, Math.floor((100 * done) / total)));
  const draw = (done: number, note: string | undefined, final: boolean) => {
    const pct = pctOf(done);
    const counts = `${formatNumber(Math.min(done, total))}/${formatNumber(total)}${unit}`;
    if (sink.isTty) {
      if (pct === lastPct && !final) return;
      const filled = Math.floor((pct * progressLimits.barWidthChars) / 100);
      sink.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(progressLimits.barWidthChars - filled)}] ${String(pct).padStart(3)}% ${counts}${note ? ` ${note}` : ''}${final ? '\n' : ''}`);
    } else {
      const now = options.nowMs();
      if (!final && now - lastLineMs < progressLimits.lineIntervalMs) return;
      lastLineMs = now;
      sink.write(`${label}: ${pct}% ${counts}${note ? ` ${note}` : ''}\n`);
    }
    lastPct = pct;
  };
  return {
    update: (done, note) => draw(done, note, false),
    finish: (note) => draw(total, note, true),
  };
}
