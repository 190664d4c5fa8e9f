import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { httpsJson } from '../../runtime/https-json.js';
import { systemRandom } from '../../runtime/system.js';
import { integerOption, type CliIo, type Command, type ParsedCommandArgs } from '../command.js';
import { benchOutputHelp, benchOutputOptions, emitBenchReport } from '../bench-output.js';
import { durationOption, durationOptions, type DurationOptionSpec } from '../duration-option.js';
import type { ApiTarget } from '../../bench/harness/api-scenario.js';
import { apiScenario, apiScenarioLimits, loadScenarioFile, type ApiScenario } from '../../bench/harness/scenario.js';
import { thresholdsCrossedExitCode } from '../../bench/harness/thresholds.js';

const durationOverride: DurationOptionSpec = { name: 'duration', fallbackMs: 1_000, minMs: 1_000, maxMs: apiScenarioLimits.durationSMax * 1000 };
const setupTimeout: DurationOptionSpec = { name: 'setup-timeout', fallbackMs: 300_000, minMs: 5_000, maxMs: 3_600_000 };

/** --rate and --duration override the definition for a quick look, as SDC_RATE and SDC_DURATION_S do under k6. */
function withOverrides(args: ParsedCommandArgs, scenario: ApiScenario): ApiScenario {
  const rate = integerOption(args, 'rate', 0, 1, apiScenarioLimits.ratePerSMax);
  const durationMs = args.values.duration === undefined ? 0 : durationOption(args, durationOverride);
  return { ...scenario, ...(rate > 0 ? { rate_per_s: rate } : {}), ...(durationMs > 0 ? { duration_s: durationMs / 1000 } : {}) };
}

/** A running deployment: --api URL --ca FILE --user NAME --password-stdin --devices a,b. */
async function remoteTarget(args: ParsedCommandArgs, io: CliIo): Promise<ApiTarget> {
  const need = (name: string) => {
    const value = args.values[name];
    if (typeof value !== 'string' || value.length === 0) throw new SdcError('CLI_USAGE', `--api needs --${name}`);
    return value;
  };
  const apiUrl = need('api');
  const caPem = await readFile(need('ca'), 'utf8').catch(() => { throw new SdcError('CLI_USAGE', `--ca ${String(args.values.ca)} cannot be read`); });
  const deviceIds = need('devices').split(',').filter((d) => d.length > 0);
  if (args.values['password-stdin'] !== true) throw new SdcError('CLI_USAGE', '--api needs --password-stdin (the password is never an argument)');
  const password = (await io.readStdin()).replace(/\r?\n$/, '');
  const { token } = (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem, body: { name: need('user'), password } })).body;
  return { apiUrl, caPem, token, deviceIds, runTag: Buffer.from(systemRandom.bytes(4)).toString('hex') };
}

function commandLine(args: ParsedCommandArgs, name: string, scenario: ApiScenario, agents: number): string {
  const target = typeof args.values.api === 'string' ? ` --api ${args.values.api} --devices ...` : ` --agents ${agents}`;
  return `sdc bench api --scenario ${name} --rate ${scenario.rate_per_s} --duration ${scenario.duration_s}s${target}`;
}

export const apiBenchCommand: Command = {
  name: 'api',
  summary: 'The HTTP API scenario of bench/k6/api.js in Node: commands at a fixed arrival rate (open loop), polled to a terminal state; k6 thresholds, exit 99 when one is crossed',
  usage: '--scenario NAME [--rate N] [--duration D] [--agents N | --api URL --ca FILE --user NAME --password-stdin --devices a,b] [--json] [--out DIR]',
  optionHelp: [
    ['--scenario NAME', 'An API scenario of bench/k6/scenarios.json (api-commands, api-smoke), the definitions k6 reads too'],
    ['--scenarios FILE', 'Another scenario file of the same shape'],
    ['--rate N', "Override the scenario's arrivals per second"],
    ['--duration D', "Override the scenario's duration, like 30s"],
    ['--agents N', 'In-process deployment (default): agents to enroll and run (default 2)'],
    ['--redis URL', 'In-process: Redis for the bus and key/value store'],
    ['--mysql URL', 'In-process: MySQL/MariaDB for SQL'],
    ['--api URL', 'Run against a running deployment instead (with --ca, --user, --password-stdin, --devices)'],
    ['--setup-timeout D', 'In-process: give up setting up after D (default 5m)'],
    ...benchOutputHelp('api.md'),
  ],
  options: {
    scenario: { type: 'string' }, scenarios: { type: 'string' }, rate: { type: 'string' }, ...durationOptions(durationOverride),
    agents: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' }, api: { type: 'string' }, ca: { type: 'string' },
    user: { type: 'string' }, 'password-stdin': { type: 'boolean' }, devices: { type: 'string' }, ...durationOptions(setupTimeout), ...benchOutputOptions,
  },
  async run(args, io) {
    const name = typeof args.values.scenario === 'string' ? args.values.scenario : 'api-commands';
    const file = await loadScenarioFile(typeof args.values.scenarios === 'string' ? args.values.scenarios : undefined);
    const scenario = withOverrides(args, apiScenario(file.scenarios, name));
    const agents = integerOption(args, 'agents', 2, 1, 1_000);
    const setupTimeoutMs = durationOption(args, setupTimeout);
    // Loaded here: the deployment is most of the CLI's start-up time.
    const [{ runApiScenario }, { apiBenchReport, apiLatencyCdfFiles, apiMarkdown, renderThresholds }] = await Promise.all([import('../../bench/harness/api-scenario.js'), import('../../bench/harness/api-report.js')]);
    let target: ApiTarget;
    let stop = async () => undefined as void;
    if (typeof args.values.api === 'string') {
      target = await remoteTarget(args, io);
    } else {
      const [{ startInProcessTarget }, { default: pino }] = await Promise.all([import('../../bench/harness/in-process.js'), import('pino')]);
      ({ target, stop } = await startInProcessTarget({
        agents, setupTimeoutMs, logger: pino({ level: 'silent' }), progress: (line) => io.stderr(`${line}\n`),
        ...(typeof args.values.redis === 'string' ? { redisUrl: args.values.redis } : {}), ...(typeof args.values.mysql === 'string' ? { mysqlUrl: args.values.mysql } : {}),
      }));
    }
    try {
      io.stderr(`bench api: ${name}, ${scenario.rate_per_s}/s for ${scenario.duration_s} s against ${target.deviceIds.length} device(s)\n`);
      const run = await runApiScenario(scenario, target);
      const report = apiBenchReport(run, {
        name, scenario, scenarioFile: file.path, command: commandLine(args, name, scenario, agents),
        target: typeof args.values.api === 'string' ? 'remote' : 'in-process', agents: target.deviceIds.length,
      });
      io.stderr(renderThresholds(run.thresholds));
      await emitBenchReport(args, io, report, { extraFiles: { 'api.md': apiMarkdown(report), ...apiLatencyCdfFiles(run) } });
      return run.thresholds.some((t) => t.crossed) ? thresholdsCrossedExitCode : 0;
    } finally {
      await stop();
    }
  },
};
