import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { BenchReport } from './output.js';
import { parseMetricsSeriesJsonl } from './metrics-series.js';
import { timestampScrape } from './report-scrapes.js';
import { isK6SummaryShape, parseK6Summary, type K6Summary } from './report-k6.js';

/**
 * What `sdc report --from DIR` reads: recorded outputs, found by their shape rather than their
 * names (so any layout of runs works): bench reports (`{benchmark, schema_version, results}`),
 * `sdc sim --out` summaries (`summary.json` with `seed` and `commandsByState`, and the
 * `online-agents.csv` beside it), `sdc chaos matrix` reports (`matrix.json`) and k6's end-of-test
 * summaries (`k6 run --summary-export FILE`, bench/report-k6.ts). Everything is
 * sorted by its path relative to DIR, so the same inputs give the same report.
 */

/** A directory tree of outputs, not a whole disk: bounded in depth, files and bytes per file. */
export const reportInputLimits = Object.freeze({ depthMax: 6, filesMax: 5_000, fileBytesMax: 64 * 1024 * 1024 });

export interface SimRun {
  /** The directory, relative to --from, `/`-separated. */
  readonly path: string;
  readonly summary: SimSummaryFields;
  /** online-agents.csv: [t_ms, online_agents] rows, empty when the file is absent. */
  readonly onlineAgents: ReadonlyArray<readonly [number, number]>;
  /** commands-by-state.csv: the state names and [t_ms, count per state...] rows, empty when absent. */
  readonly commandsByState: NumericCsv;
}

/** A CSV of numbers under a header: `t_ms, a, b, ...`. */
export interface NumericCsv {
  readonly header: readonly string[];
  readonly rows: ReadonlyArray<readonly number[]>;
}

/** One point of a latency CDF (`<bench>-percentiles.csv` beside a bench report): HdrHistogram's value at a percentile. */
export interface CdfPoint {
  readonly series: string;
  readonly percentile: number;
  readonly latencyMs: number;
}

/** The run set `sdc report --run SET` ran (`run-set.json`): each step's directory, command line and exit code. */
export interface RunSetInput {
  readonly path: string;
  readonly name: string;
  readonly summary: string;
  readonly steps: ReadonlyArray<{ readonly dir: string; readonly command: string; readonly exit_code: number | null; readonly skipped?: string }>;
}

/** The fields of `sdc sim`'s summary.json the report uses (cli/commands/sim-report.ts, SimSummary). */
export interface SimSummaryFields {
  readonly seed: number;
  readonly scenario: string;
  readonly reproduce: string;
  readonly traceHash: string;
  readonly agents: number;
  readonly virtualMs: number;
  readonly convergedAfterMs: number | null;
  readonly commandsByState: Readonly<Record<string, number>>;
  readonly latencyMs: { readonly count: number; readonly p50Ms: number; readonly p99Ms: number };
  readonly checkers: Readonly<Record<string, string>>;
  readonly tier?: string;
  /** The scenario as it ran: its fault windows mark the recovery figures. */
  readonly resolvedScenario?: { readonly faults?: Readonly<Record<string, unknown>> };
}

export interface ReportInputs {
  /** `percentiles`: the CDF points recorded beside the report (`<benchmark>-percentiles.csv`), empty when none. */
  readonly benches: ReadonlyArray<{ readonly path: string; readonly report: BenchReport<Record<string, unknown>>; readonly percentiles: readonly CdfPoint[] }>;
  readonly sims: readonly SimRun[];
  readonly matrices: ReadonlyArray<{ readonly path: string; readonly matrix: Record<string, unknown> }>;
  /**
   * Prometheus text scrapes (`*.prom`, for example `metrics.prom` beside a roundtrip report), and
   * each scrape of a `*-series.jsonl` as `PATH#0001`, `PATH#0002`... (stamped with its time; a
   * scrape the bench noted as failed has empty text), which bench/report-scrapes.ts groups again.
   */
  readonly scrapes: ReadonlyArray<{ readonly path: string; readonly text: string }>;
  readonly runSets: readonly RunSetInput[];
  /** k6 end-of-test summaries (bench/report-k6.ts); absent or empty when none. */
  readonly k6?: ReadonlyArray<{ readonly path: string; readonly summary: K6Summary }>;
  /** Files that looked like inputs but could not be read, with the reason: listed in the report, never silently dropped. */
  readonly skipped: ReadonlyArray<{ readonly path: string; readonly reason: string }>;
}

async function listJsonFiles(root: string, dir: string, depth: number, out: string[]): Promise<void> {
  if (depth > reportInputLimits.depthMax) return;
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (out.length >= reportInputLimits.filesMax) return;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await listJsonFiles(root, path, depth + 1, out);
    else if (entry.isFile() && (entry.name.endsWith('.json') || entry.name.endsWith('.prom') || entry.name.endsWith('-series.jsonl'))) out.push(path);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSimSummary(value: Record<string, unknown>): boolean {
  return typeof value['seed'] === 'number' && isObject(value['commandsByState']) && typeof value['reproduce'] === 'string' && isObject(value['latencyMs']);
}

function isBenchReport(value: Record<string, unknown>): boolean {
  return typeof value['benchmark'] === 'string' && typeof value['schema_version'] === 'number' && Array.isArray(value['results']) && isObject(value['units']);
}

/** A CSV of numbers (header, then rows as wide as it); a malformed line is skipped (the summary's own figures stand). Empty when absent. */
async function readNumericCsv(path: string): Promise<NumericCsv> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { header: [], rows: [] };
  }
  const [head = '', ...lines] = text.split('\n');
  const header = head.split(',');
  return { header, rows: lines.map((line) => line.split(',').map(Number)).filter((c) => c.length === header.length && c.every(Number.isFinite)) };
}

/** `<benchmark>-percentiles.csv` beside a bench report: `series, percentile, latency_ms` rows (the first column names the series). */
async function readPercentiles(dir: string, benchmark: string): Promise<CdfPoint[]> {
  let text: string;
  try {
    text = await readFile(join(dir, `${benchmark}-percentiles.csv`), 'utf8');
  } catch {
    return [];
  }
  const [head = '', ...lines] = text.split('\n');
  if (!/^[a-z_]+,percentile,latency_ms$/.test(head.trim())) return [];
  return lines.map((line) => line.split(',')).filter((c) => c.length === 3 && c[0] !== '' && Number.isFinite(Number(c[1])) && Number.isFinite(Number(c[2])))
    .map(([series, percentile, latency]) => ({ series: series!, percentile: Number(percentile), latencyMs: Number(latency) }));
}

/** A `*-series.jsonl` (bench/metrics-series.ts) as one stamped scrape per entry, numbered in file order; undefined when it is not one. */
function seriesScrapes(path: string, text: string): Array<{ path: string; text: string }> | undefined {
  const series = parseMetricsSeriesJsonl(text);
  if (series === undefined) return undefined;
  return series.entries.map((entry, i) => ({ path: `${path}#${String(i + 1).padStart(4, '0')}`, text: entry.text === undefined ? '' : timestampScrape(entry.text, entry.atMs) }));
}

function isRunSet(value: Record<string, unknown>): boolean {
  return typeof value['run_set'] === 'string' && Array.isArray(value['steps']);
}

export async function readReportInputs(root: string): Promise<ReportInputs> {
  const info = await stat(root).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new SdcError('CLI_USAGE', `--from ${root} is not a directory`);
  const files: string[] = [];
  await listJsonFiles(root, root, 0, files);
  const benches: Array<ReportInputs['benches'][number]> = [];
  const sims: SimRun[] = [];
  const matrices: Array<ReportInputs['matrices'][number]> = [];
  const scrapes: Array<ReportInputs['scrapes'][number]> = [];
  const runSets: RunSetInput[] = [];
  const k6: Array<{ path: string; summary: K6Summary }> = [];
  const skipped: Array<ReportInputs['skipped'][number]> = [];
  for (const file of files) {
    const path = relative(root, file).split(sep).join('/');
    let value: unknown;
    try {
      if ((await stat(file)).size > reportInputLimits.fileBytesMax) { skipped.push({ path, reason: `larger than ${reportInputLimits.fileBytesMax} bytes` }); continue; }
      if (file.endsWith('.prom')) { scrapes.push({ path, text: await readFile(file, 'utf8') }); continue; }
      if (file.endsWith('.jsonl')) {
        const series = seriesScrapes(path, await readFile(file, 'utf8'));
        if (series === undefined) skipped.push({ path, reason: 'not a metrics series (no metrics_series header line)' });
        else scrapes.push(...series);
        continue;
      }
      value = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      skipped.push({ path, reason: 'not JSON' });
      continue;
    }
    if (!isObject(value)) continue;
    if (isBenchReport(value)) {
      const report = value as unknown as BenchReport<Record<string, unknown>>;
      benches.push({ path, report, percentiles: await readPercentiles(dirname(file), report.benchmark) });
    } else if (isSimSummary(value)) {
      // The CSVs sit beside summary.json; a summary saved under another name has only its own figures.
      const beside = basename(file) === 'summary.json';
      const online = beside ? await readNumericCsv(join(dirname(file), 'online-agents.csv')) : { header: [], rows: [] };
      const commandsByState = beside ? await readNumericCsv(join(dirname(file), 'commands-by-state.csv')) : { header: [], rows: [] };
      const onlineAgents = online.header.length === 2 ? online.rows.map((r) => [r[0]!, r[1]!] as const) : [];
      sims.push({ path, summary: value as unknown as SimSummaryFields, onlineAgents, commandsByState });
    } else if (isRunSet(value)) {
      runSets.push({ path, name: String(value['run_set']), summary: String(value['summary'] ?? ''), steps: value['steps'] as RunSetInput['steps'] });
    } else if (isK6SummaryShape(value)) {
      const summary = parseK6Summary(value);
      if (typeof summary === 'string') skipped.push({ path, reason: summary });
      else k6.push({ path, summary });
    } else if (value['matrix'] === 'sdc chaos matrix' && Array.isArray(value['cells'])) matrices.push({ path, matrix: value });
  }
  // Runs of the same scenario side by side, by seed.
  sims.sort((a, b) => (a.summary.scenario < b.summary.scenario ? -1 : a.summary.scenario > b.summary.scenario ? 1 : a.summary.seed - b.summary.seed || (a.path < b.path ? -1 : 1)));
  return { benches, sims, matrices, scrapes, runSets, k6, skipped };
}
