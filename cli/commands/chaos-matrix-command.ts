import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { integerOption, type CliIo, type Command, type ParsedCommandArgs } from '../command.js';
import { durationOption } from '../duration-option.js';
import {
  matrixFault, matrixFaults, matrixScenario, matrixShapeDefault, renderMatrixMarkdown, runMatrix, simulatorRunner,
  type MatrixFault, type MatrixOptions, type MatrixRealOutcome, type MatrixReport, type MatrixTier,
} from './chaos-matrix.js';
import { writeReportFile } from '../../bench/report.js';

/** Bounds: a matrix is a batch job, but one typo must not start a week of runs. */
const seedsMax = 100_000;
const agentsMax = 2_000;
const durationSpec = { name: 'duration', fallbackMs: matrixShapeDefault.safetyMs, minMs: 10_000, maxMs: 3_600_000 };

function faultsOption(args: ParsedCommandArgs): MatrixFault[] {
  const raw = args.values.fault;
  if (raw === undefined) return [...matrixFaults];
  const names = (Array.isArray(raw) ? raw : [raw]).flatMap((value) => String(value).split(',')).map((name) => name.trim()).filter((name) => name.length > 0);
  return names.map((name) => {
    const fault = matrixFault(name);
    if (fault === undefined) throw new SdcError('CLI_USAGE', `--fault ${name} is not one of ${matrixFaults.map((f) => f.name).join(', ')}`);
    return fault;
  });
}

function tierOption(args: ParsedCommandArgs): MatrixTier {
  const tier = args.values.tier ?? 'full';
  if (tier !== 'full' && tier !== 'model') throw new SdcError('CLI_USAGE', `--tier is full or model, got '${String(tier)}'`);
  return tier;
}

/**
 * With --out, every failing seed's scenario is written beside the matrix, so that `sdc sim`
 * replays it with its trace and --out files (the matrix's own rerun line needs no file).
 */
async function writeMatrix(dir: string, report: MatrixReport, options: Pick<MatrixOptions, 'shape'>): Promise<MatrixReport> {
  await mkdir(join(dir, 'scenarios'), { recursive: true });
  const cells = await Promise.all(report.cells.map(async (cell) => ({
    ...cell,
    failed: await Promise.all(cell.failed.map(async (failed) => {
      const fault = matrixFault(cell.fault)!;
      const file = join(dir, 'scenarios', `${cell.fault}-${failed.seed}.json`);
      await writeReportFile(file, `${JSON.stringify(matrixScenario(fault, failed.seed, options.shape), null, 2)}\n`);
      const tier = report.tier === 'model' ? ' --tier model' : '';
      return { ...failed, sim_reproduce: `sdc sim${tier} --seed ${failed.seed} --scenario ${file} --agents ${options.shape.agents} --duration ${options.shape.safetyMs}ms` };
    })),
  })));
  const written = { ...report, cells };
  await writeReportFile(join(dir, 'matrix.json'), `${JSON.stringify(written, null, 2)}\n`);
  await writeReportFile(join(dir, 'matrix.md'), renderMatrixMarkdown(written));
  return written;
}

/**
 * `--real`: each fault with a real-socket scenario runs it once with `sdc chaos run`'s defaults
 * (4 agents, 15 s of commands, the fault from 2 s to 8 s); the store cuts only with --redis / --mysql.
 */
async function realRunner(args: ParsedCommandArgs, seed: number, io: CliIo): Promise<NonNullable<MatrixOptions['real']>> {
  const [{ realFaultScenario, runChaosScenario }, { default: pino }] = await Promise.all([import('./chaos-run.js'), import('pino')]);
  const optional = (name: string) => (typeof args.values[name] === 'string' ? args.values[name] as string : undefined);
  const urls = { toxiproxyUrl: optional('toxiproxy'), redisUrl: optional('redis'), mysqlUrl: optional('mysql') };
  const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'silent' }, pino.destination(2));
  return async (fault: { readonly name: string; readonly realScenario?: string }): Promise<MatrixRealOutcome | undefined> => {
    const scenario = fault.realScenario === undefined ? undefined : realFaultScenario(fault.realScenario);
    if (scenario === undefined || (scenario.needs?.includes('redis') === true && urls.redisUrl === undefined) || (scenario.needs?.includes('mysql') === true && urls.mysqlUrl === undefined)) return undefined;
    io.stderr(`real sockets: ${fault.name} as sdc chaos run --scenario ${scenario.name}\n`);
    const report = await runChaosScenario({
      scenario, seed, agents: 4, durationMs: 15_000, faultAtMs: 2_000, faultMs: 6_000, drainBoundMs: 60_000, reconnectBoundMs: 30_000, logger,
      ...(urls.toxiproxyUrl ? { toxiproxyUrl: urls.toxiproxyUrl } : {}), ...(urls.redisUrl ? { redisUrl: urls.redisUrl } : {}), ...(urls.mysqlUrl ? { mysqlUrl: urls.mysqlUrl } : {}),
    });
    // A fault that never went on, or did not bite (checker `fault`), proves nothing about any invariant.
    const faultOn = report.fault.at_ms !== null && !report.violations.some((v) => v.checker === 'fault');
    const reconnected = !report.violations.some((v) => v.checker === 'reconnect');
    // A scenario's own check under an invariant's name (ota-cut's at_most_once for a kernel call made twice) fails that invariant too.
    const verdict = (name: string): 'pass' | 'fail' | 'not_reached' => (!faultOn ? 'not_reached'
      : report.violations.some((v) => v.checker === name) ? 'fail' : (report.run.checkers as Record<string, 'pass' | 'fail' | 'not_reached'>)[name] ?? 'not_reached');
    const checkers = {
      none_lost: verdict('none_lost'), at_most_once: verdict('at_most_once'), audit_chain: verdict('audit_chain'), liveness: verdict('liveness'),
      not_executed: verdict('not_executed'), legal_transitions: verdict('legal_transitions'),
      presence: verdict('presence') === 'pass' && (!reconnected || report.violations.some((v) => v.checker === 'presence')) ? 'fail' as const : verdict('presence'),
      no_unauthenticated_access: faultOn ? report.unauthenticated_access.verdict : 'not_reached' as const,
    };
    const violations = report.violations.map((v) => ({ checker: v.checker === 'reconnect' ? 'presence' : v.checker, message: v.message }));
    const stores = `${urls.redisUrl ? ` --redis ${urls.redisUrl}` : ''}${urls.mysqlUrl ? ` --mysql ${urls.mysqlUrl}` : ''}`;
    const invariantLike = new Set([...Object.keys(checkers), 'ran_once', 'presence', 'reconnect', 'fault']);
    const scenarioFailures = faultOn ? report.violations.filter((v) => !invariantLike.has(v.checker)).map((v) => `${v.checker}: ${v.message}`) : [];
    return { scenario: scenario.name, checkers, violations, rerun: `sdc chaos run --scenario ${scenario.name} --seed ${seed}${stores}`, ...(scenarioFailures.length > 0 ? { scenarioFailures } : {}) };
  };
}

/** `run` and `real` replace the simulator and `sdc chaos run` (tests plant outcomes through them). */
export async function runMatrixCommand(args: ParsedCommandArgs, io: CliIo, run?: MatrixOptions['run'], real?: MatrixOptions['real']): Promise<number> {
  const faults = faultsOption(args);
  const seeds = integerOption(args, 'seeds', 10, 1, seedsMax);
  const baseSeed = integerOption(args, 'base-seed', 1, 0, Number.MAX_SAFE_INTEGER - seedsMax);
  const shape = { agents: integerOption(args, 'agents', matrixShapeDefault.agents, 1, agentsMax), safetyMs: durationOption(args, durationSpec) };
  const tier = tierOption(args);
  const verbose = args.values.verbose === true;
  const commandLine = `sdc chaos matrix --seeds ${seeds} --base-seed ${baseSeed} --agents ${shape.agents} --duration ${shape.safetyMs}ms --tier ${tier}`
    + (args.values.fault === undefined ? '' : ` --fault ${faults.map((f) => f.name).join(',')}`)
    + (args.values.real === true ? ` --real${['redis', 'mysql', 'toxiproxy'].map((name) => (typeof args.values[name] === 'string' ? ` --${name} ${String(args.values[name])}` : '')).join('')}` : '');
  const runs = faults.length * seeds;
  let done = 0;
  io.stderr(`fault matrix: ${faults.length} faults x ${seeds} seeds = ${runs} runs (${tier} tier, ${shape.agents} agents, ${shape.safetyMs} ms safety)\n`);
  const report = await runMatrix({
    faults, seeds, baseSeed, shape, tier, run: run ?? await simulatorRunner(),
    ...(real !== undefined ? { real } : args.values.real === true ? { real: await realRunner(args, baseSeed, io) } : {}),
    onRun(fault, seed, outcome) {
      done += 1;
      const failed = outcome.violations.length > 0;
      if (verbose || failed) {
        io.stderr(`[${done}/${runs}] ${fault} seed ${seed}: ${failed ? 'FAIL' : 'ok'}, converged ${outcome.convergedAfterMs ?? 'never'} ms after healing\n`);
        for (const v of outcome.violations) io.stderr(`  ${v.checker}: ${v.message}\n`);
      } else if (done % 25 === 0 || done === runs) io.stderr(`[${done}/${runs}]\n`);
    },
  }, commandLine);
  const written = typeof args.values.out === 'string' ? await writeMatrix(args.values.out, report, { shape }) : report;
  if (args.values.json === true) io.stdout(`${JSON.stringify(written)}\n`);
  else io.stdout(renderMatrixMarkdown(written));
  return report.cells.some((cell) => cell.failed.length > 0 || cell.real?.verdict === 'failed' || cell.real?.scenario_failures !== undefined) ? 1 : 0;
}

export const matrixCommand: Command = {
  name: 'matrix',
  summary: 'Run every simulated fault alone over N seeds and tabulate, for each invariant, the seeds that held (matrix.json, matrix.md)',
  usage: '[--seeds N] [--base-seed S] [--fault F[,F...]] [--agents N] [--duration 20s] [--tier full|model] [--real [--redis URL] [--mysql URL] [--toxiproxy URL]] [--out DIR] [--json] [--verbose]',
  optionHelp: [
    ['--seeds N', 'seeds per fault (default 10); seeds are S..S+N-1 for every fault'],
    ['--base-seed S', 'the first seed (default 1)'],
    ['--fault F', `only these faults (comma list or repeated): ${matrixFaults.map((f) => f.name).join(', ')}`],
    ['--agents N', `fleet size of each run (default ${matrixShapeDefault.agents})`],
    ['--duration D', `safety phase with the fault, virtual time (default ${matrixShapeDefault.safetyMs / 1000}s, at least 10s)`],
    ['--tier T', 'full (default): the real control plane, gateways and agents, every checker; model: the fleet model, liveness only'],
    ['--real', 'also run each fault that has a real-socket scenario once with sdc chaos run (drop, delay, partition, agent_crash, gateway_crash, kernel_error, clock_skew, and the unsimulated expired_jwt, revoked_certificate and ota_mid_download; redis_down with --redis, sql_down with --mysql)'],
    ['--redis URL, --mysql URL', 'with --real: the stores behind the proxy'],
    ['--toxiproxy URL', 'with --real: a running Toxiproxy instead of ours in-process'],
    ['--out DIR', 'write matrix.json, matrix.md and the scenario file of every failing seed'],
    ['--json', 'print matrix.json instead of the table'],
    ['--verbose', 'a line per run (failures are always printed)'],
  ],
  options: {
    seeds: { type: 'string' }, 'base-seed': { type: 'string' }, fault: { type: 'string', multiple: true }, agents: { type: 'string' },
    duration: { type: 'string' }, tier: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean' },
    real: { type: 'boolean' }, redis: { type: 'string' }, mysql: { type: 'string' }, toxiproxy: { type: 'string' },
  },
  run: (args, io) => runMatrixCommand(args, io),
};
