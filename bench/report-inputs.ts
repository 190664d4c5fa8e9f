import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { BenchReport } from './output.js';

/**
 * What `sdc report --from DIR` reads: recorded outputs, found by their shape rather than their
 * names (so any layout of runs works): bench reports (`{benchmark, schema_version, results}`),
 * `sdc sim --out` summaries (`summary.json` with `seed` and `commandsByState`, and the
 * `online-agents.csv` beside it) and `sdc chaos matrix` reports (`matrix.json`). Everything is
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
}

export interface ReportInputs {
  readonly benches: ReadonlyArray<{ readonly path: string; readonly report: BenchReport<Record<string, unknown>> }>;
  readonly sims: readonly SimRun[];
  readonly matrices: ReadonlyArray<{ readonly path: string; readonly matrix: Record<string, unknown> }>;
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
    else if (entry.isFile() && entry.name.endsWith('.json')) out.push(path);
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

/** online-agents.csv as numbers; a malformed line is skipped (the summary's own figures stand). */
async function readOnlineAgents(dir: string): Promise<Array<[number, number]>> {
  let text: string;
  try {
    text = await readFile(join(dir, 'online-agents.csv'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').slice(1).map((line) => line.split(',').map(Number)).filter((c) => c.length === 2 && c.every(Number.isFinite)).map((c) => [c[0]!, c[1]!]);
}

export async function readReportInputs(root: string): Promise<ReportInputs> {
  const info = await stat(root).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new SdcError('CLI_USAGE', `--from ${root} is not a directory`);
  const files: string[] = [];
  await listJsonFiles(root, root, 0, files);
  const benches: Array<ReportInputs['benches'][number]> = [];
  const sims: SimRun[] = [];
  const matrices: Array<ReportInputs['matrices'][number]> = [];
  const skipped: Array<ReportInputs['skipped'][number]> = [];
  for (const file of files) {
    const path = relative(root, file).split(sep).join('/');
    let value: unknown;
    try {
      if ((await stat(file)).size > reportInputLimits.fileBytesMax) { skipped.push({ path, reason: `larger than ${reportInputLimits.fileBytesMax} bytes` }); continue; }
      value = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      skipped.push({ path, reason: 'not JSON' });
      continue;
    }
    if (!isObject(value)) continue;
    if (isBenchReport(value)) benches.push({ path, report: value as unknown as BenchReport<Record<string, unknown>> });
    else if (isSimSummary(value)) {
      // The CSVs sit beside summary.json; a summary saved under another name has only its own figures.
      const series = basename(file) === 'summary.json' ? await readOnlineAgents(dirname(file)) : [];
      sims.push({ path, summary: value as unknown as SimSummaryFields, onlineAgents: series });
    } else if (value['matrix'] === 'sdc chaos matrix' && Array.isArray(value['cells'])) matrices.push({ path, matrix: value });
  }
  // Runs of the same scenario side by side, by seed.
  sims.sort((a, b) => (a.summary.scenario < b.summary.scenario ? -1 : a.summary.scenario > b.summary.scenario ? 1 : a.summary.seed - b.summary.seed || (a.path < b.path ? -1 : 1)));
  return { benches, sims, matrices, skipped };
}
