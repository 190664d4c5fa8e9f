import { renderBenchJson, renderBenchTable, writeBenchOut, progressReporter, type BenchReport } from '../bench/output.js';
import type { CliIo, ParsedCommandArgs } from './command.js';

/** `--json` and `--out DIR`, the same on every `sdc bench` subcommand. */
export const benchOutputOptions = { json: { type: 'boolean' }, out: { type: 'string' } } as const;

export function benchOutputHelp(extraFiles: string): Array<[string, string]> {
  return [
    ['--json', 'Print the report as one JSON object (docs/benchmarks.md, "Output")'],
    ['--out DIR', `Also write <bench>.json and <bench>.csv${extraFiles ? `, ${extraFiles}` : ''} to DIR`],
  ];
}

/**
 * Prints the report (JSON with --json, else `table` or the common table) and writes --out.
 * The paths written go to stderr, so stdout stays one JSON object.
 */
export async function emitBenchReport(args: ParsedCommandArgs, io: CliIo, report: BenchReport<object>, options: { table?: string; extraFiles?: Record<string, string> } = {}): Promise<void> {
  io.stdout(args.values.json === true ? renderBenchJson(report) : options.table ?? renderBenchTable(report));
  if (typeof args.values.out === 'string') {
    const paths = await writeBenchOut(args.values.out, report, options.extraFiles);
    io.stderr(`wrote ${paths.join(', ')}\n`);
  }
}

/** Progress on stderr for a bench or a run: a bar on a terminal, periodic lines elsewhere. */
export function cliProgress(io: CliIo, label: string, total: number, unit?: string): ReturnType<typeof progressReporter> {
  return progressReporter({ sink: { write: io.stderr, isTty: io.stderrIsTty === true }, label, total, nowMs: () => performance.now(), ...(unit ? { unit } : {}) });
}
