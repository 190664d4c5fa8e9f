/**
 * The research view's data: a simulation run's files from `sdc sim --out DIR` (docs/simulation.md),
 * opened from disk in the browser (nothing is uploaded). Pure, so it is tested in Node.
 */

/** Files larger than this are refused: a run's CSVs are a few hundred rows, its summary some KiB. */
export const researchLimits = Object.freeze({ fileBytesMax: 8 * 1024 * 1024, rowsMax: 100_000, columnsMax: 64 });

export interface NumericTable {
  readonly columns: readonly string[];
  /** One array per column, the same length each. */
  readonly values: ReadonlyArray<readonly number[]>;
}

/** A CSV of a header and numeric rows (the simulator writes nothing else); throws with the line on anything else. */
export function parseNumericCsv(text: string): NumericTable {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const header = lines[0];
  if (header === undefined) throw new Error('the file is empty');
  const columns = header.split(',').map((name) => name.trim());
  if (columns.length > researchLimits.columnsMax) throw new Error(`more than ${researchLimits.columnsMax} columns`);
  if (lines.length - 1 > researchLimits.rowsMax) throw new Error(`more than ${researchLimits.rowsMax} rows`);
  const values = columns.map(() => [] as number[]);
  lines.slice(1).forEach((line, index) => {
    const cells = line.split(',');
    if (cells.length !== columns.length) throw new Error(`line ${index + 2} has ${cells.length} cells, the header ${columns.length}`);
    cells.forEach((cell, column) => {
      const value = Number(cell);
      if (cell.trim() === '' || !Number.isFinite(value)) throw new Error(`line ${index + 2}, column ${columns[column]}: ${JSON.stringify(cell.slice(0, 32))} is not a number`);
      values[column]!.push(value);
    });
  });
  return { columns, values };
}

/**
 * The latency CDF from `latency-histogram.csv` (`le_ms,count`: how many round trips fell at or
 * below each bound and above the previous one): the fraction at or below each bound.
 */
export function latencyCdf(table: NumericTable): { boundsMs: number[]; fraction: number[] } {
  const bounds = table.values[table.columns.indexOf('le_ms')];
  const counts = table.values[table.columns.indexOf('count')];
  if (bounds === undefined || counts === undefined) throw new Error('latency-histogram.csv needs the columns le_ms and count');
  const total = counts.reduce((sum, n) => sum + n, 0);
  let running = 0;
  const fraction = counts.map((n) => {
    running += n;
    return total === 0 ? 0 : running / total;
  });
  return { boundsMs: [...bounds], fraction };
}

export type RunFileKind = 'summary' | 'online' | 'states' | 'latency' | 'bench';

/** Which of the run's files this is, by the name `sdc sim --out` gives it. */
export function runFileKind(name: string): RunFileKind | undefined {
  const base = name.split(/[\\/]/).at(-1) ?? name;
  switch (base) {
    case 'summary.json': return 'summary';
    case 'online-agents.csv': return 'online';
    case 'commands-by-state.csv': return 'states';
    case 'latency-histogram.csv': return 'latency';
    // Any other JSON is taken for a bench report (`<bench>.json`), and checked as one.
    default: return base.endsWith('.json') ? 'bench' : undefined;
  }
}

/** A bench report (`sdc bench ... --json` or `--out DIR`'s `<bench>.json`, docs/benchmarks.md "Output"), as far as the plots need it. */
export interface BenchFile {
  readonly benchmark: string;
  readonly environment: Readonly<Record<string, unknown>>;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly results: ReadonlyArray<Readonly<Record<string, unknown>>>;
  readonly units: Readonly<Record<string, string>>;
}

/** Rows plotted at most; a bench reports a handful. */
export const benchRowsMax = 1_000;

/** Checks the shape of a bench report; throws naming what is missing. */
export function parseBenchJson(value: unknown): BenchFile {
  const object = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!object(value)) throw new Error('not a JSON object');
  if (typeof value.benchmark !== 'string') throw new Error('no "benchmark" name: not a report of sdc bench --json');
  if (!Array.isArray(value.results) || !value.results.every(object)) throw new Error('"results" is not a list of rows');
  if (value.results.length > benchRowsMax) throw new Error(`more than ${benchRowsMax} result rows`);
  if (!object(value.units) || !Object.values(value.units).every((u) => typeof u === 'string')) throw new Error('"units" is not an object of unit names');
  return {
    benchmark: value.benchmark,
    environment: object(value.environment) ? value.environment : {},
    parameters: object(value.parameters) ? value.parameters : {},
    results: value.results as Array<Record<string, unknown>>,
    units: value.units as Record<string, string>,
  };
}

/** The numeric fields of a bench's rows that have a unit: what can be plotted. */
export function benchNumericFields(bench: BenchFile): string[] {
  const fields = new Set<string>();
  for (const row of bench.results) for (const [key, value] of Object.entries(row)) if (typeof value === 'number' && Number.isFinite(value) && key in bench.units) fields.add(key);
  return [...fields];
}

/** One bar per row: the row's text fields joined as its label (`mock EXEC_PING_KERNEL`), the field's value. */
export function benchBars(bench: BenchFile, field: string): Array<{ label: string; value: number }> {
  return bench.results.flatMap((row, index) => {
    const value = row[field];
    if (typeof value !== 'number' || !Number.isFinite(value)) return [];
    const label = Object.values(row).filter((v) => typeof v === 'string' || typeof v === 'boolean').map(String).join(' ') || `row ${index + 1}`;
    return [{ label, value }];
  });
}

export interface FaultWindow { readonly name: string; readonly startMs: number; readonly endMs: number }

/**
 * The faults a run injected, from its summary's `resolvedScenario.faults` (partitions, gateway
 * restarts, bus and SQL outages; sim/scenario.ts), as windows of virtual time. Malformed entries
 * are left out rather than guessed.
 */
export function faultWindowsOf(summary: Readonly<Record<string, unknown>>): FaultWindow[] {
  const scenario = summary.resolvedScenario as { faults?: Record<string, unknown> } | undefined;
  const faults = scenario?.faults;
  if (typeof faults !== 'object' || faults === null) return [];
  const list = (name: string) => (Array.isArray(faults[name]) ? (faults[name] as Array<Record<string, unknown>>) : []);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const windows: FaultWindow[] = [];
  const add = (name: string, start: unknown, length: unknown) => {
    const s = num(start);
    const d = num(length);
    if (s !== undefined && d !== undefined && d > 0) windows.push({ name, startMs: s, endMs: s + d });
  };
  list('partitions').forEach((p, i) => add(`partition ${i + 1}`, p.atMs, p.durationMs));
  list('gatewayRestarts').forEach((r) => add(`restart ${typeof r.gateway === 'string' ? r.gateway : 'gateway'}`, r.atMs, r.downMs));
  list('busOutages').forEach((o, i) => add(`bus outage ${i + 1}`, o.atMs, o.durationMs));
  list('sqlOutages').forEach((o, i) => add(`sql outage ${i + 1}`, o.atMs, o.durationMs));
  return windows.sort((a, b) => a.startMs - b.startMs);
}

/**
 * Recovery after each fault: the agents missing against the level just before it began (from
 * online-agents.csv), from the fault's start until they are all back after its end, with time in
 * seconds since the fault began. One curve per fault; a fault with no sample before it has none.
 */
export function recoveryCurves(windows: readonly FaultWindow[], online: NumericTable): Array<{ name: string; points: Array<[number, number]> }> {
  const times = online.values[online.columns.indexOf('t_ms')];
  const counts = online.values[online.columns.indexOf('online_agents')];
  if (times === undefined || counts === undefined) throw new Error('online-agents.csv needs the columns t_ms and online_agents');
  return windows.flatMap((w) => {
    let beforeIndex = -1;
    for (let i = 0; i < times.length; i += 1) if (times[i]! <= w.startMs) beforeIndex = i;
    if (beforeIndex < 0) return [];
    const level = counts[beforeIndex]!;
    const points: Array<[number, number]> = [[0, 0]];
    for (let i = beforeIndex + 1; i < times.length; i += 1) {
      const missing = Math.max(0, level - counts[i]!);
      points.push([(times[i]! - w.startMs) / 1000, missing]);
      if (missing === 0 && times[i]! >= w.endMs) break;
    }
    return [{ name: w.name, points }];
  });
}
