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

export type RunFileKind = 'summary' | 'online' | 'states' | 'latency';

/** Which of the run's files this is, by the name `sdc sim --out` gives it. */
export function runFileKind(name: string): RunFileKind | undefined {
  const base = name.split(/[\\/]/).at(-1) ?? name;
  switch (base) {
    case 'summary.json': return 'summary';
    case 'online-agents.csv': return 'online';
    case 'commands-by-state.csv': return 'states';
    case 'latency-histogram.csv': return 'latency';
    default: return undefined;
  }
}
