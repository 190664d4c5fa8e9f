import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { formatNumber, renderCsv, writeReportFiles, type Cell } from './report.js';

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

export function benchEnvironment(): BenchEnvironment {
  return {
    node: process.version, openssl: process.versions.openssl, platform: process.platform, arch: process.arch,
    cpu: cpus()[0]?.model ?? 'unknown', cpu_count: cpus().length, memory_total_mib: Math.round(totalmem() / 2 ** 20),
    git_commit: gitCommit(),
  };
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
  return {
    benchmark: input.benchmark, schema_version: benchSchemaVersion, environment: input.environment ?? benchEnvironment(),
    parameters: input.parameters, results, units: input.units, ...(input.details === undefined ? {} : { details: input.details }),
  };
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
 * `--out DIR`: `<benchmark>.json` (the report), `<benchmark>.csv` (its results) and any extra
 * files a bench adds (histograms, SVG, Markdown). Returns the paths written.
 */
export function writeBenchOut(dir: string, report: BenchReport<object>, extraFiles: Readonly<Record<string, string>> = {}): Promise<string[]> {
  return writeReportFiles(dir, {
    [`${report.benchmark}.json`]: renderBenchJson(report),
    [`${report.benchmark}.csv`]: renderBenchCsv(report),
    ...extraFiles,
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
