import { SdcError } from '../../core/errors/index.js';
import { integerOption, requireOption, type Command, type CliIo, type ParsedCommandArgs } from '../command.js';
import { durationOption, durationOptions, type DurationOptionSpec } from '../duration-option.js';

const runTimeout: DurationOptionSpec = { name: 'timeout', fallbackMs: 3_600_000, minMs: 5_000, maxMs: 86_400_000 };
const hold: DurationOptionSpec = { name: 'hold', fallbackMs: 65_000, minMs: 0, maxMs: 3_600_000 };
const agentsMax = 100_000;

/** The options both scale-out benches take. */
const sharedOptions = {
  agents: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' }, dir: { type: 'string' }, 'ramp-per-s': { type: 'string' },
  'agents-per-process': { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' }, ...durationOptions(runTimeout),
} as const;

const sharedHelp = [
  ['--agents N', `Agents (1 to ${agentsMax.toLocaleString('en-US')}); their certificates are issued in bulk by the data directory's CA (docs/benchmarks.md says why)`],
  ['--redis URL', 'The Redis every gateway shares (required)'],
  ['--mysql URL', 'MySQL/MariaDB for the control plane (default: embedded sql.js)'],
  ['--dir D', 'Keep the data directory and its fleet in D (reused by later runs); default a temporary one, removed'],
  ['--ramp-per-s R', 'Agents\' first connections start at R per second (default 200)'],
  ['--agents-per-process P', 'Agents per agent process (default 5000; each process may hold 20,000 open files here)'],
  ['--json', 'Print the report as one JSON object (docs/benchmarks.md, "Output")'],
  ['--out DIR', 'Also write <bench>.json, .csv, .md and .svg to DIR (reconnect also <bench>-percentiles.csv)'],
  ['--timeout D', 'Give up after D, like 30m (default 1h)'],
] as const;

function sharedValues(args: ParsedCommandArgs, io: CliIo) {
  requireOption(args, 'agents');
  const redisUrl = requireOption(args, 'redis');
  return {
    agents: integerOption(args, 'agents', 1, 1, agentsMax),
    redisUrl,
    ...(typeof args.values.mysql === 'string' ? { mysqlUrl: args.values.mysql } : {}),
    ...(typeof args.values.dir === 'string' ? { dataDir: args.values.dir } : {}),
    rampPerSecond: integerOption(args, 'ramp-per-s', 200, 1, 100_000),
    agentsPerProcess: integerOption(args, 'agents-per-process', 5_000, 1, 15_000),
    timeoutMs: durationOption(args, runTimeout, io.stderr),
    progress: (line: string) => io.stderr(`${line}\n`),
  };
}

async function emit(args: ParsedCommandArgs, io: CliIo, report: import('../../bench/output.js').BenchReport<object>): Promise<void> {
  const { renderBenchJson, renderBenchTable, writeBenchOut } = await import('../../bench/output.js');
  // The ratio to the baseline row measured in the same run (issue 14), in place: the suite's --repeat keeps this object.
  const { addBaselineRatios } = await import('../../bench/baseline-ratio.js');
  addBaselineRatios(report);
  // These commands write their own --out, so the bench suite's store versions are added here.
  const { storeVersions } = await import('../../bench/store-versions.js');
  const versions = await storeVersions(report.parameters, args.values, io.env);
  if (Object.keys(versions).length > 0) report.environment.store_versions = versions;
  io.stdout(args.values.json === true ? renderBenchJson(report) : `${renderBenchTable(report)}${JSON.stringify(report.details, null, 2)}\n`);
  if (typeof args.values.out === 'string') io.stderr(`wrote ${(await writeBenchOut(args.values.out, report)).join(', ')}\n`);
}

export const connectionsBenchCommand: Command = {
  name: 'connections',
  summary: 'N authenticated agents on G gateway processes sharing one Redis: gateway memory per agent against a bare mutual-TLS ws server',
  usage: '--agents N --redis URL [--gateways G] [--hold 65s] [--no-baseline] [--dir D] [--json] [--out DIR]',
  optionHelp: [
    ...sharedHelp,
    ['--gateways G', 'Gateway processes (default 1)'],
    ['--hold D', 'Hold the sessions this long before reading memory (default 65s: two heartbeats and a telemetry sample); each process\'s CPU is read over the hold after a lead-in of a third of it (at most 20 s)'],
    ['--no-baseline', 'Skip the bare-server baseline'],
  ],
  options: { ...sharedOptions, gateways: { type: 'string' }, ...durationOptions(hold), 'no-baseline': { type: 'boolean' } },
  async run(args, io) {
    const values = sharedValues(args, io);
    const gateways = integerOption(args, 'gateways', 1, 1, 16);
    if (Math.ceil(values.agents / gateways) > 19_500) throw new SdcError('CLI_USAGE', `${values.agents} agents on ${gateways} gateways is more than one process may hold here (20,000 open files)`);
    const { runConnectionsBench } = await import('../../bench/connections.js');
    const report = await runConnectionsBench({ ...values, gateways, holdMs: durationOption(args, hold, io.stderr), baseline: args.values['no-baseline'] !== true });
    await emit(args, io, report);
    return report.details?.all_authenticated === true ? 0 : 1;
  },
};

export const reconnectBenchCommand: Command = {
  name: 'reconnect',
  summary: 'Reconnect storm: three gateways, one killed (SIGKILL) while it holds a third of the fleet; time until every agent is back, against bare TLS',
  usage: '--agents N --redis URL [--gateways G] [--commands C] [--dir D] [--json] [--out DIR]',
  optionHelp: [
    ...sharedHelp,
    ['--gateways G', 'Gateway processes, one of them killed (default 3, at least 2)'],
    ['--commands C', 'EXEC_PING_KERNEL commands sent through the API around the kill, to the killed gateway\'s agents (default 30); each must end succeeded and run once'],
    ['--handshakes-per-source N', 'The gateways\' bound on TLS handshakes in flight per source address (default theirs, 64); every bench agent comes from 127.0.0.1'],
    ['--handshakes-in-flight N', 'The gateways\' bound on TLS handshakes running at once (default theirs, 256); sockets beyond it wait their turn, unread'],
    ['--ticket-keys M', 'shared (default): every gateway accepts the others\' TLS session tickets; split: only the second gateway shares the killed one\'s, so half the storm resumes and half does full handshakes, in one run'],
  ],
  options: { ...sharedOptions, gateways: { type: 'string' }, commands: { type: 'string' }, 'ticket-keys': { type: 'string' }, 'handshakes-per-source': { type: 'string' }, 'handshakes-in-flight': { type: 'string' } },
  async run(args, io) {
    const values = sharedValues(args, io);
    const gateways = integerOption(args, 'gateways', 3, 2, 16);
    if (Math.ceil(values.agents / (gateways - 1)) > 19_500) {
      throw new SdcError('CLI_USAGE', `after the kill ${gateways - 1} gateway${gateways === 2 ? '' : 's'} hold all ${values.agents} agents: at most ${(19_500 * (gateways - 1)).toLocaleString('en-US')} here (20,000 open files per process)`);
    }
    const { runReconnectBench } = await import('../../bench/reconnect.js');
    const ticketKeys = args.values['ticket-keys'] ?? 'shared';
    if (ticketKeys !== 'shared' && ticketKeys !== 'split') throw new SdcError('CLI_USAGE', `--ticket-keys is shared or split, not ${JSON.stringify(ticketKeys)}`);
    if (ticketKeys === 'split' && gateways < 3) throw new SdcError('CLI_USAGE', '--ticket-keys split needs at least 3 gateways');
    const perSource = args.values['handshakes-per-source'] === undefined ? undefined : integerOption(args, 'handshakes-per-source', 64, 1, 20_000);
    const inFlight = args.values['handshakes-in-flight'] === undefined ? undefined : integerOption(args, 'handshakes-in-flight', 256, 1, 20_000);
    const report = await runReconnectBench({
      ...values, gateways, commands: integerOption(args, 'commands', 30, 0, 10_000), ticketKeys,
      ...(perSource === undefined ? {} : { handshakesPerSourceMax: perSource }), ...(inFlight === undefined ? {} : { handshakesInFlightMax: inFlight }),
    });
    await emit(args, io, report);
    return report.details?.ok === true ? 0 : 1;
  },
};
