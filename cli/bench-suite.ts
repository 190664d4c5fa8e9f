import { captureBenchReports, markBenchStart, mergeRepeats, renderBenchJson, renderBenchMarkdown, renderBenchTable, repeatFileName, takeSideFiles, writeBenchOut, type BenchReport } from '../bench/output.js';
import { writeReportFiles } from '../bench/report.js';
import { storeVersions } from '../bench/store-versions.js';
import { integerOption, type CliIo, type Command, type ParsedCommandArgs } from './command.js';

/** Repeats are whole bench runs on a shared machine: a handful shows the spread, more only costs time. */
export const benchRepeatMax = 20;

/**
 * What every `sdc bench` subcommand takes, whatever it measures: `--repeat N` (min/median/max
 * across N runs), `--json`, `--out DIR` (JSON, CSV, Markdown, SVG) and an environment block with
 * load before and after and the stores' versions. A bench that already writes its own --out files
 * keeps them; the files written here (same names) carry the merged report.
 */
export function withBenchSuiteOptions(command: Command): Command {
  const own = command.options ?? {};
  const ownHandlesOutput = own['out'] !== undefined && own['json'] !== undefined;
  const added: Array<[string, string]> = [['--repeat N', `Run the bench N times (1 to ${benchRepeatMax}); results are medians, with min/median/max per figure`]];
  if (own['json'] === undefined) added.push(['--json', 'Print the report as one JSON object (docs/benchmarks.md, "Output")']);
  if (own['out'] === undefined) added.push(['--out DIR', 'Also write <bench>.json, .csv, .md and .svg to DIR']);
  return {
    ...command,
    usage: `${command.usage} [--repeat N]${own['out'] === undefined ? ' [--out DIR]' : ''}`.trim(),
    optionHelp: [...(command.optionHelp ?? []), ...added],
    options: { ...own, repeat: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' } },
    async run(args, io) {
      const repeat = integerOption(args, 'repeat', 1, 1, benchRepeatMax);
      if (repeat === 1 && ownHandlesOutput) {
        markBenchStart();
        return command.run(withoutRepeat(args), io);
      }
      return runSuite(command, args, io, repeat);
    },
  };
}

function withoutRepeat(args: ParsedCommandArgs, drop: readonly string[] = []): ParsedCommandArgs {
  const values = { ...args.values };
  delete values['repeat'];
  for (const key of drop) delete values[key];
  return { ...args, values };
}

async function runSuite(command: Command, args: ParsedCommandArgs, io: CliIo, repeat: number): Promise<number> {
  // Inner runs print into a buffer and write no files: the suite prints and writes the merged report.
  const inner = withoutRepeat(args, repeat > 1 ? ['out', 'json'] : ['out']);
  const reports: Array<BenchReport<object>> = [];
  let lastStdout = '';
  for (let run = 1; run <= repeat; run += 1) {
    markBenchStart();
    let stdout = '';
    const quiet: CliIo = { ...io, stdout: (text) => { stdout += text; } };
    const { value: code, reports: built } = await captureBenchReports(() => command.run(inner, quiet));
    lastStdout = stdout;
    if (code !== 0 || built.length === 0) {
      io.stdout(stdout);
      if (built.length === 0 && code === 0) io.stderr(`sdc bench ${command.name}: the bench built no report; nothing to repeat or write\n`);
      return code;
    }
    const report = built.at(-1)!;
    reports.push(report);
    const written = await writeSideFiles(args.values['out'], report, repeat > 1 ? run : undefined);
    if (repeat > 1) io.stderr(`sdc bench ${command.name}: run ${run}/${repeat} done${written.length > 0 ? `; wrote ${written.join(', ')}` : ''}\n`);
  }
  const merged = repeat > 1 ? mergeRepeats(reports) : reports[0]!;
  const versions = await storeVersions(merged.parameters, args.values, io.env);
  if (Object.keys(versions).length > 0) merged.environment.store_versions = versions;
  if (args.values['json'] === true) io.stdout(renderBenchJson(merged));
  else if (repeat > 1) io.stdout(renderBenchTable(merged) + '\n' + renderBenchMarkdown(merged).split('\n').filter((l) => l.startsWith('Across') || l.startsWith('|') || l.startsWith('- ')).slice(-200).join('\n') + '\n');
  else io.stdout(lastStdout);
  if (typeof args.values['out'] === 'string') {
    const paths = await writeBenchOut(args.values['out'], merged);
    io.stderr(`wrote ${paths.join(', ')}\n`);
  }
  return 0;
}

/**
 * The files the bench attached to a run's report (attachSideFiles: roundtrip's and ingest's
 * /metrics series and start/end scrapes), written as soon as the run ends, under per-repeat names
 * when there are repeats (`metrics-repeat-2-series.jsonl`): each repeat has its own deployment,
 * so its series is its own, and `sdc report` draws one set of panels per repeat. Nothing without --out.
 */
async function writeSideFiles(out: unknown, report: BenchReport<object>, repeat: number | undefined): Promise<string[]> {
  const files = takeSideFiles(report);
  if (typeof out !== 'string' || Object.keys(files).length === 0) return [];
  return writeReportFiles(out, Object.fromEntries(Object.entries(files).map(([name, text]) => [repeat === undefined ? name : repeatFileName(name, repeat), text])));
}
