import { integerOption, requireOption, type Command } from '../command.js';
import { writeReportFiles } from '../../bench/report.js';
import { renderRoundtripTable, roundtripBenchReport, roundtripReportFiles } from '../../bench/roundtrip-report.js';
import { attachLatencySamples, attachSideFiles, renderBenchJson } from '../../bench/output.js';
import { storeVersions } from '../../bench/store-versions.js';
import { durationOption, durationOptions, legacyHelp, type DurationOptionSpec } from '../duration-option.js';
import { roundtripLimits } from '../../bench/roundtrip-limits.js';
import { scrapeIntervalOption } from '../../bench/metrics-series-option.js';
import { metricsSeriesDefaults, renderMetricsSeriesJsonl } from '../../bench/metrics-series.js';
import { pacedRatePerSMax } from '../../bench/paced-schedule.js';
import { checkLadderRates, ladderEluMaxDefault, ladderIdleMsDefault, ladderStepMsDefault } from '../../bench/roundtrip-ladder.js';
import { SdcError } from '../../core/errors/index.js';
import { commandAuditWindowHelp, commandAuditWindowOptions, commandAuditWindowParseOptions } from '../command-audit-window-option.js';

/** Descriptors one agent costs in this process: its WebSocket, the gateway's end, its journal, an API socket. */
const openFilesPerAgent = 4;
const openFilesReserve = 256;
const ladderStep: DurationOptionSpec = { name: 'ladder-step', fallbackMs: ladderStepMsDefault, minMs: 1_000, maxMs: 600_000 };
const runTimeout: DurationOptionSpec = { name: 'timeout', fallbackMs: 1_800_000, minMs: 5_000, maxMs: 86_400_000, legacy: { name: 'timeout-s', unitMs: 1_000 } };

/** `--rate R`: a positive decimal number of commands per second, at most pacedRatePerSMax; absent: the closed loop. */
function rateOption(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const rate = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(rate > 0 && rate <= pacedRatePerSMax)) throw new SdcError('CLI_USAGE', `--rate must be a number above 0 and at most ${pacedRatePerSMax}, got ${String(value)}`);
  return rate;
}

/** `--ladder R1,R2,...`: ascending rates per second, each as --rate; absent: no ladder. */
function ladderOption(value: unknown, stepMs: number): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = typeof value === 'string' ? value.split(',') : [];
  const rates = parts.map((part) => (/^\d+(\.\d+)?$/.test(part.trim()) ? Number(part.trim()) : Number.NaN));
  if (rates.length === 0 || rates.some((rate) => !(rate > 0 && rate <= pacedRatePerSMax))) {
    throw new SdcError('CLI_USAGE', `--ladder must be rates above 0 and at most ${pacedRatePerSMax}, separated by commas, got ${String(value)}`);
  }
  const problem = checkLadderRates(rates, stepMs);
  if (problem !== undefined) throw new SdcError('CLI_USAGE', `--ladder: ${problem}`);
  return rates;
}

export const roundtripBenchCommand: Command = {
  name: 'roundtrip',
  summary: 'Command round trip (created -> terminal) with N connected agents, against a bare TLS WebSocket echo baseline',
  usage: '--agents N [--commands M] [--rate R] [--json] [--out DIR] [--redis URL] [--mysql URL] [--timeout 30m] [--scrape-interval-ms 1000] [--ladder R1,R2,... [--ladder-step 20s]]',
  optionHelp: [
    ['--agents N', `Agents to enroll and connect (1 to ${roundtripLimits.agentsMax})`],
    ['--commands M', 'EXEC_PING_KERNEL commands per agent, one after another, all agents at once (default 5; one more warm-up)'],
    ['--rate R', `Open loop: the commands (warm-up round first) and the baseline's echoes at R per second over the fleet on a fixed schedule, command k to agent k mod N, each timed from its due time (above 0, at most ${pacedRatePerSMax}; default: the closed loop above)`],
    ['--ladder R1,R2,...', `After the commands phase, with the same agents: ${ladderIdleMsDefault / 1_000} s with no commands (idle load), then one open-loop step per rate (ascending, each as --rate), stopping after the first step that falls behind or whose event-loop utilization and main thread CPU per wall both reach ${ladderEluMaxDefault}; reports each step's utilization, main thread CPU, CPU per command and latencies, and the highest rate sustained under ${ladderEluMaxDefault} by each`],
    ['--ladder-step D', `Length of each ladder step, like 20s (default ${ladderStepMsDefault / 1_000}s)`],
    ['--json', 'Print the report as one JSON object (docs/benchmarks.md, "Output"; the summary in details)'],
    ['--out DIR', 'Also write roundtrip.json, roundtrip.csv, roundtrip-histogram.csv, roundtrip-percentiles.csv, roundtrip-samples.csv, roundtrip.svg, roundtrip.md, metrics-start.prom, metrics-end.prom and metrics-series.jsonl to DIR (with --repeat N: the merged report, and each repeat\'s scrapes as metrics-repeat-K-start.prom, -end.prom and -series.jsonl)'],
    ['--redis URL', 'Use Redis for the bus and key/value store (default: embedded)'],
    ['--mysql URL', 'Use MySQL/MariaDB for SQL (default: embedded sql.js)'],
    ['--timeout D', 'Give up after D, like 30m (default 30m)'],
    ['--verbose', 'Log the services to stderr'],
    ['--cpu-profile FILE', 'Write a V8 CPU profile (.cpuprofile) of the services\' process over the commands phase'],
    ['--scrape-interval-ms N', `Scrape the services' /metrics every N ms over the commands phase into metrics-series.jsonl (default ${metricsSeriesDefaults.intervalMs}; 0: only at its start and end; at most ${metricsSeriesDefaults.scrapesMax} kept, halved with the interval doubled when reached)`],
    ...commandAuditWindowHelp,
    ...legacyHelp(runTimeout),
  ],
  options: {
    agents: { type: 'string' }, commands: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' },
    redis: { type: 'string' }, mysql: { type: 'string' }, ...durationOptions(runTimeout), verbose: { type: 'boolean' },
    'cpu-profile': { type: 'string' }, 'scrape-interval-ms': { type: 'string' }, rate: { type: 'string' },
    ladder: { type: 'string' }, ...durationOptions(ladderStep),
    ...commandAuditWindowParseOptions,
  },
  async run(args, io) {
    requireOption(args, 'agents');
    const agents = integerOption(args, 'agents', 1, 1, roundtripLimits.agentsMax);
    const commandsPerAgent = integerOption(args, 'commands', 5, 1, roundtripLimits.commandsPerAgentMax);
    const timeoutMs = durationOption(args, runTimeout, io.stderr);
    const scrapeIntervalMs = scrapeIntervalOption(args.values['scrape-interval-ms']);
    const ratePerS = rateOption(args.values.rate);
    const ladderStepMs = durationOption(args, ladderStep, io.stderr);
    const ladderRates = ladderOption(args.values.ladder, ladderStepMs);
    const auditWindow = commandAuditWindowOptions(args, io.env);
    // Loaded here, not at the top: the bench runs a whole deployment, most of the CLI's start-up time.
    const [{ openFilesLimit, runRoundtripBench }, { default: pino }] = await Promise.all([import('../../bench/roundtrip.js'), import('pino')]);
    const limit = await openFilesLimit();
    const needed = agents * openFilesPerAgent + openFilesReserve;
    if (limit !== null && needed > limit) {
      io.stderr(`warning: ${agents} agents need about ${needed} open files; this process may hold ${limit} (ulimit -n)\n`);
    }
    const run = await runRoundtripBench({
      agents, commandsPerAgent, timeoutMs, scrapeIntervalMs, ...(ratePerS === undefined ? {} : { ratePerS }),
      ...(ladderRates === undefined ? {} : { ladder: { ratesPerS: ladderRates, stepMs: ladderStepMs, idleMs: ladderIdleMsDefault, eluMax: ladderEluMaxDefault } }),
      ...auditWindow,
      ...(typeof args.values.redis === 'string' ? { redisUrl: args.values.redis } : {}),
      ...(typeof args.values.mysql === 'string' ? { mysqlUrl: args.values.mysql } : {}),
      ...(typeof args.values['cpu-profile'] === 'string' ? { cpuProfilePath: args.values['cpu-profile'] } : {}),
      progress: (line) => io.stderr(`${line}\n`),
      ...(args.values.verbose === true ? { logger: pino({ level: 'info' }, pino.destination(2)) } : {}),
    });
    // This command writes its own --out, so the bench suite's store versions are added here.
    const versions = await storeVersions({}, args.values, io.env);
    if (Object.keys(versions).length > 0) run.summary.environment.store_versions = versions;
    // Built on every run, --json or not: under `--repeat` the bench suite runs this without --json
    // and --out and merges the reports it built. The scrapes ride along (attachSideFiles), so the
    // suite writes each repeat's series where this command's own --out would write it.
    const report = roundtripBenchReport(run.summary);
    attachSideFiles(report, {
      ...(run.metricsScrapes === undefined ? {} : { 'metrics-start.prom': run.metricsScrapes.start, 'metrics-end.prom': run.metricsScrapes.end }),
      ...(run.metricsSeries === undefined ? {} : { 'metrics-series.jsonl': renderMetricsSeriesJsonl(run.metricsSeries) }),
    });
    // The repeats' latencies pooled into the merged report's roundtrip-percentiles.csv (mergeRepeats), as its own --out writes one run's.
    attachLatencySamples(report, { baseline_echo: run.samplesMs.baseline, command_server: run.samplesMs.server, command_client: run.samplesMs.client });
    io.stdout(args.values.json === true ? renderBenchJson(report) : renderRoundtripTable(run.summary));
    if (typeof args.values.out === 'string') {
      const commandLine = `sdc bench roundtrip --agents ${agents} --commands ${commandsPerAgent}${ratePerS === undefined ? '' : ` --rate ${ratePerS}`}`
        + `${ladderRates === undefined ? '' : ` --ladder ${ladderRates.join(',')} --ladder-step ${ladderStepMs / 1_000}s`}`
        + `${auditWindow.commandAuditWindowMs === undefined ? '' : ` --command-audit-window-ms ${auditWindow.commandAuditWindowMs ?? 'off'}`}`
        + `${typeof args.values.redis === 'string' ? ' --redis URL' : ''}${typeof args.values.mysql === 'string' ? ' --mysql URL' : ''}`;
      const paths = await writeReportFiles(args.values.out, roundtripReportFiles(run, commandLine, report));
      io.stderr(`wrote ${paths.join(', ')}\n`);
    }
    return run.summary.ok ? 0 : 1;
  },
};
