import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { commandStates } from '../../core/protocol/command-machine.js';
import type { RunResult, SimCrypto } from '../../sim/run.js';
import type { Scenario } from '../../sim/scenario.js';
import type { RealRunResult } from '../../sim/real/run-real.js';
import { gitCommit } from '../../bench/output.js';
import { describeSimSummary, simProgress, simSummary, telemetryLine, writeSimOutputs } from './sim-report.js';
import { currentHeapLimitMiB, fullTierHeapMiB, heapRelaunchArgs, heapRelaunchEnv, relaunchWithHeap } from './sim-heap.js';
import { integerOption, readPasswordOption, requireOption, type CliIo, type Command, type ParsedCommandArgs } from '../command.js';
import { writeReportFile } from '../../bench/report.js';

/**
 * The largest seed. node's randomInt spans at most 2^48 - 1 values, and every seed a run prints
 * (in `seed:` and in the reproduce line) must be one that --seed accepts back.
 */
const seedMax = 2 ** 48 - 1;

/**
 * The simulator's runners, loaded when a run starts rather than at the top: they pull in the whole
 * server and agent, which would otherwise be most of the start-up time of every `sdc` call.
 */
async function simRunners() {
  const [{ runSimulation }, { runRealSimulation }, { runSwarm, swarmScenario }, { modelAgentsMax, runModel }, { describeValidation, validateModel }, { builtinScenarioPath, fullTierAgentsMax, loadScenario }] = await Promise.all([
    import('../../sim/run.js'), import('../../sim/real/run-real.js'), import('../../sim/swarm.js'), import('../../sim/model/run-model.js'), import('../../sim/validate-model.js'),
    import('../../sim/scenario.js'),
  ]);
  return { runSimulation, runRealSimulation, runSwarm, swarmScenario, modelAgentsMax, runModel, describeValidation, validateModel, builtinScenarioPath, loadScenario, fullTierAgentsMax };
}

/** --seed, or a random seed; with `runs` > 1 (a swarm) the last of the consecutive seeds stays within range too. */
function seedOption(args: ParsedCommandArgs, runs = 1): number {
  const firstSeedMax = seedMax - (runs - 1);
  // randomInt(n) draws from [0, n): every draw is at most firstSeedMax - 1.
  return args.values.seed === undefined ? randomInt(firstSeedMax) : integerOption(args, 'seed', 0, 0, firstSeedMax);
}

/** `90s`, `10m`, `1h`, `500ms` or plain milliseconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new SdcError('CLI_USAGE', `--duration must look like 500ms, 90s, 10m or 1h, got '${text}'`);
  const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(match[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  const value = Number(match[1]) * unitMs;
  if (!Number.isSafeInteger(value) || value < 1_000 || value > 7 * 24 * 3_600_000) throw new SdcError('CLI_USAGE', '--duration must be from 1s to 7 days');
  return value;
}

/** A built-in name (`smoke`), `swarm:S[:lossy]`, or a path to a scenario file. */
async function resolveScenario(ref: string, args: { agents: number | undefined; safetyMs: number | undefined }): Promise<Scenario> {
  const { builtinScenarioPath, loadScenario, swarmScenario } = await simRunners();
  const swarm = /^swarm:(\d+)(:lossy)?(:outages)?(?::batch(\d+))?$/.exec(ref);
  if (swarm !== null) {
    return swarmScenario(Number(swarm[1]), {
      agents: args.agents ?? 200, safetyMs: args.safetyMs ?? 60_000, lossy: swarm[2] !== undefined, outages: swarm[3] !== undefined,
      ...(swarm[4] === undefined ? {} : { telemetrySamplesPerFrame: Number(swarm[4]) }),
    });
  }
  if (/^[a-z0-9-]+$/.test(ref) && existsSync(builtinScenarioPath(ref))) return loadScenario(builtinScenarioPath(ref));
  return loadScenario(ref);
}

function csv(rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  return rows.map((row) => row.join(',')).join('\n') + '\n';
}

/** --crypto real|model (full tier): the trace hash of a seed is the same with either (sim/model-crypto.ts). */
function cryptoOption(args: ParsedCommandArgs): SimCrypto {
  const crypto = args.values.crypto ?? 'real';
  if (crypto !== 'real' && crypto !== 'model') throw new SdcError('CLI_USAGE', `--crypto is real or model, got '${String(crypto)}'`);
  return crypto;
}

async function runOne(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const json = args.values.json === true;
  const scenarioRef = typeof args.values.scenario === 'string' ? args.values.scenario : 'smoke';
  const seed = seedOption(args);
  // The seed first, before anything can fail (a restart for a larger heap, below, printed it already).
  if (process.env[heapRelaunchEnv] !== '1') (json ? io.stderr : io.stdout)(`seed: ${seed}\n`);
  const tier = tierOption(args);
  const { modelAgentsMax, fullTierAgentsMax, runModel, runSimulation } = await simRunners();
  const agents = args.values.agents === undefined ? undefined : integerOption(args, 'agents', 1, 1, tier === 'model' ? modelAgentsMax : fullTierAgentsMax);
  const safetyMs = typeof args.values.duration === 'string' ? parseDurationMs(args.values.duration) : undefined;
  const scenario = await resolveScenario(scenarioRef, { agents, safetyMs });
  if (tier === 'full') {
    // A large fleet needs more heap than Node's default limit (cli/commands/sim-heap.ts): the CLI runs again with enough, the same seed given.
    const relaunch = heapRelaunchArgs({
      neededMiB: fullTierHeapMiB(agents ?? scenario.agents, (safetyMs ?? scenario.safetyMs) + scenario.livenessBoundMs), limitMiB: currentHeapLimitMiB(),
      execArgv: process.execArgv, argv: args.values.seed === undefined ? [...process.argv, '--seed', String(seed)] : process.argv, env: process.env,
    });
    if (relaunch !== undefined) return relaunchWithHeap(relaunch, io.stderr);
  }
  // A bar on a terminal (or with --progress), a line per 10 % of virtual time elsewhere (a log, CI).
  const progress = simProgress(io, { bar: args.values.progress === true || io.stderrIsTty === true });
  const runOptions = {
    scenario, scenarioRef, seed, ...(agents === undefined ? {} : { agents }), ...(safetyMs === undefined ? {} : { safetyMs }),
    onProgress: progress.onProgress,
  };
  const crypto = cryptoOption(args);
  // The commit is read (and cached) before the run, not when the summary is written: during a long run the
  // checkout can move on (a 100,000-agent run's summary named a commit made 49 minutes after its start).
  gitCommit();
  const result = tier === 'model' ? runModel(runOptions) : await runSimulation({ ...runOptions, crypto });
  progress.finish(result.safetyMs + result.livenessBoundMs);
  const summary = simSummary(result, { scenario, tier, crypto });
  if (typeof args.values.out === 'string') await writeSimOutputs(args.values.out, summary, result.series);
  io.stdout(json ? JSON.stringify(summary) + '\n' : describeSimSummary(summary));
  // The OTA checkers' violations (sim/ota/) are kept apart from the core checkers' (runs with a rollout only).
  const violations = [...result.violations, ...result.otaViolations];
  if (violations.length > 0) {
    for (const violation of violations) io.stderr(`violation (${violation.checker}): ${violation.message}\n`);
    io.stderr(`reproduce with: ${result.reproduce}\n`);
    return 1;
  }
  return 0;
}

/** --tier: full (the real code, default) or model (sim/model). */
function tierOption(args: ParsedCommandArgs): 'full' | 'model' {
  const tier = args.values.tier ?? 'full';
  if (tier !== 'full' && tier !== 'model') throw new SdcError('CLI_USAGE', `--tier is full or model, got '${String(tier)}'`);
  return tier;
}

/** --validate-model: both tiers on one scenario, seed and fleet; exit 1 when a comparison is outside its tolerance. */
async function runValidateCommand(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const json = args.values.json === true;
  const scenarioRef = typeof args.values.scenario === 'string' ? args.values.scenario : 'smoke';
  const seed = seedOption(args);
  (json ? io.stderr : io.stdout)(`seed: ${seed}\n`);
  const agents = args.values.agents === undefined ? undefined : integerOption(args, 'agents', 1, 1, 20_000);
  const safetyMs = typeof args.values.duration === 'string' ? parseDurationMs(args.values.duration) : undefined;
  const scenario = await resolveScenario(scenarioRef, { agents, safetyMs });
  const { describeValidation, validateModel } = await simRunners();
  const report = await validateModel({
    scenario, scenarioRef, seed, ...(agents === undefined ? {} : { agents }), ...(safetyMs === undefined ? {} : { safetyMs }),
    onPhase: (tier) => io.stderr(`running the ${tier} tier...\n`),
  });
  const out = typeof args.values.out === 'string' ? args.values.out : undefined;
  if (out !== undefined) {
    await writeSimOutputs(join(out, 'full'), simSummary(report.full, { scenario, tier: 'full', crypto: 'real' }), report.full.series);
    await writeSimOutputs(join(out, 'model'), simSummary(report.model, { scenario, tier: 'model', crypto: 'real' }), report.model.series);
    await writeReportFile(join(out, 'validation.json'), JSON.stringify({ ok: report.ok, comparisons: report.comparisons }, null, 2) + '\n');
  }
  io.stdout(json ? JSON.stringify({ ok: report.ok, seed, scenario: report.scenario, agents: report.agents, safetyMs: report.safetyMs, comparisons: report.comparisons }) + '\n' : describeValidation(report));
  for (const violation of report.full.violations) io.stderr(`full tier violation (${violation.checker}): ${violation.message}\n`);
  return report.ok ? 0 : 1;
}

async function runSwarmCommand(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const runs = integerOption(args, 'swarm', 10, 1, 100_000);
  const agents = integerOption(args, 'agents', 200, 1, 20_000);
  const safetyMs = typeof args.values.duration === 'string' ? parseDurationMs(args.values.duration) : 60_000;
  const baseSeed = seedOption(args, runs);
  const crypto = cryptoOption(args);
  const lossy = args.values.lossy === true;
  const outages = args.values.outages === true;
  const batch = args.values['telemetry-samples-per-frame'] === undefined ? undefined : integerOption(args, 'telemetry-samples-per-frame', 1, 1, 64);
  // With --json the lines a reader follows go to stderr and stdout holds only the one JSON object.
  const json = args.values.json === true;
  const say = json ? io.stderr : io.stdout;
  say(`swarm: ${runs} runs from seed ${baseSeed}, ${agents} agents, safety ${safetyMs} ms, crypto ${crypto}\n`);
  const failures: RunResult[] = [];
  const runsSeen: SwarmRunLine[] = [];
  const { runSwarm } = await simRunners();
  await runSwarm({
    runs, baseSeed, agents, safetyMs, lossy, outages, crypto, ...(batch === undefined ? {} : { telemetrySamplesPerFrame: batch }),
    onResult: (result) => {
      const ok = result.violations.length === 0;
      if (!ok) failures.push(result);
      runsSeen.push({ seed: result.seed, ok, traceHash: result.traceHash, violations: result.violations.map((v) => v.message), reproduce: result.reproduce });
      say(`${ok ? 'ok  ' : 'FAIL'} seed ${result.seed} ${result.traceHash.slice(0, 16)} ${ok ? '' : result.violations[0]!.message}\n`);
    },
  });
  if (json) io.stdout(JSON.stringify({ ok: failures.length === 0, runs, baseSeed, agents, safetyMs, lossy, outages, crypto, failed: failures.length, results: runsSeen }) + '\n');
  if (failures.length === 0) {
    say(`all ${runs} runs passed\n`);
    return 0;
  }
  say(`${failures.length} of ${runs} runs failed:\n`);
  for (const failure of failures) say(`  seed ${failure.seed}: reproduce with: ${failure.reproduce}\n`);
  return 1;
}

/** One swarm run in `--swarm --json`'s `results`. */
interface SwarmRunLine {
  readonly seed: number;
  readonly ok: boolean;
  readonly traceHash: string;
  /** Every checker violation's message (none when ok). */
  readonly violations: readonly string[];
  readonly reproduce: string;
}

/**
 * Options that mean something only in another mode are refused, not ignored: a swarm run with
 * `--crypto` used to run real crypto and `--json` to print text, both silently.
 */
function refuseOptionsOfOtherModes(args: ParsedCommandArgs): void {
  const given = (name: string) => args.values[name] !== undefined && args.values[name] !== false;
  if (args.values.swarm !== undefined) {
    for (const name of ['scenario', 'out', 'progress']) {
      if (given(name)) throw new SdcError('CLI_USAGE', `--${name} does not combine with --swarm (each seed draws its own scenario; reproduce one with --scenario swarm:S[:lossy][:outages])`);
    }
    return;
  }
  for (const name of ['lossy', 'outages', 'telemetry-samples-per-frame']) {
    if (given(name)) throw new SdcError('CLI_USAGE', `--${name} applies to --swarm only (a single run takes --scenario swarm:S[:lossy][:outages])`);
  }
}

/** The operator's password from stdin (first line) or SDC_PASSWORD; never from argv. */
/** A --real run's summary: its result with the commit and the scenario as it ran, as the virtual runs report them. */
function realSummary(result: RealRunResult, scenario: Scenario): Omit<RealRunResult, 'series'> & { gitCommit: string | null; resolvedScenario: Scenario } {
  const { series: _series, ...rest } = result;
  return { ...rest, gitCommit: gitCommit(), resolvedScenario: { ...scenario, agents: result.agents, safetyMs: result.durationMs } };
}

async function writeRealOutputs(dir: string, result: RealRunResult, scenario: Scenario): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { series } = result;
  await writeReportFile(join(dir, 'summary.json'), JSON.stringify(realSummary(result, scenario), null, 2) + '\n');
  await writeReportFile(join(dir, 'online-agents.csv'), csv([['t_ms', 'online_agents'], ...series.map((s) => [s.t_ms, s.online_agents])]));
  await writeReportFile(join(dir, 'commands-by-state.csv'), csv([['t_ms', ...commandStates], ...series.map((s) => [s.t_ms, ...commandStates.map((state) => s.commands[state])])]));
  await writeReportFile(join(dir, 'latency-histogram.csv'), csv([['le_ms', 'count'], ...result.latencyHistogram.map((b) => [b.le_ms ?? '+Inf', b.count])]));
}

function describeReal(result: RealRunResult): string {
  const checkers = Object.entries(result.checkers).map(([name, verdict]) => `${name}=${verdict}`).join(' ');
  const states = Object.entries(result.commandsByState).filter(([, n]) => n > 0).map(([state, n]) => `${state} ${n}`).join(', ');
  return [
    `real run against ${result.url}: ${result.agents} agents over ${result.processes} processes, commands for ${result.durationMs} ms (wall time: not reproducible)`,
    `sdc sim at commit ${gitCommit() ?? '(not a git checkout)'}`,
    `paired in ${result.pairingMs} ms, all online after ${result.onlineAfterMs} ms; online at the end: ${result.online.agents} agents, ${result.online.controlPlane} shown by the control plane`,
    `commands accepted ${result.counts.commands_accepted}, refused ${result.counts.commands_refused}, outcome unknown ${result.counts.commands_outcome_unknown ?? 0}, skipped ${result.counts.commands_skipped}; ${states || 'none'}; drained ${result.drainedAfterMs === null ? 'no' : `${result.drainedAfterMs} ms after the last command`}`,
    telemetryLine(result.counts),
    `checkers: ${checkers}`,
    `wall ${result.wallMs} ms`,
  ].join('\n') + '\n';
}

async function runRealCommand(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const json = args.values.json === true;
  const url = requireOption(args, 'real');
  if (!/^https:\/\/[^/]+\/?$/.test(url)) throw new SdcError('CLI_USAGE', `--real takes the control plane's base URL, https://HOST:PORT, got '${url}'`);
  const admin = requireOption(args, 'admin');
  const caFile = requireOption(args, 'ca');
  const seed = seedOption(args);
  (json ? io.stderr : io.stdout)(`seed: ${seed}\n`);
  const agents = args.values.agents === undefined ? undefined : integerOption(args, 'agents', 1, 1, 20_000);
  const durationMs = typeof args.values.duration === 'string' ? parseDurationMs(args.values.duration) : undefined;
  const processes = args.values.processes === undefined ? undefined : integerOption(args, 'processes', 1, 1, 64);
  const scenarioRef = typeof args.values.scenario === 'string' ? args.values.scenario : 'smoke';
  const scenario = await resolveScenario(scenarioRef, { agents, safetyMs: durationMs });
  let caPem: string;
  try {
    caPem = await readFile(caFile, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read --ca ${caFile}: ${(error as Error).message}`);
  }
  const password = await readPasswordOption(args, io);
  const out = typeof args.values.out === 'string' ? args.values.out : undefined;
  const { runRealSimulation } = await simRunners();
  const result = await runRealSimulation({
    url, caPem, admin, password, scenario, scenarioRef, seed,
    ...(agents === undefined ? {} : { agents }), ...(durationMs === undefined ? {} : { durationMs }), ...(processes === undefined ? {} : { processes }),
    // A line at each step (login, every 50 paired, online, drained): lines, so on a terminal or not.
    ...(out === undefined ? {} : { outDir: out }), onProgress: (line: string) => io.stderr(`${line}\n`),
  });
  if (out !== undefined) await writeRealOutputs(out, result, scenario);
  if (json) {
    io.stdout(JSON.stringify(realSummary(result, scenario)) + '\n');
  } else {
    io.stdout(describeReal(result));
  }
  if (result.violations.length > 0) {
    for (const violation of result.violations) io.stderr(`violation (${violation.checker}): ${violation.message}\n`);
    io.stderr(`run again with: ${result.rerun} (wall time: the same fleet and command choices, not the same timing)\n`);
    return 1;
  }
  return 0;
}

export const simCommand: Command = {
  name: 'sim',
  summary: 'Deterministic fleet simulator: real control plane, gateways and agents on virtual time, with invariant checkers',
  usage: '[--tier full|model] [--crypto real|model] [--scenario F] [--agents N] [--duration 1h] [--seed S] [--out DIR] [--json] [--progress] | --validate-model [--scenario F] [--agents N] [--duration D] [--seed S] [--out DIR]'
    + ' | --swarm K [--agents N] [--duration D] [--seed S] [--crypto real|model] [--lossy] [--outages] [--telemetry-samples-per-frame K] [--json]'
    + ' | --real https://HOST:PORT --admin NAME (--password-stdin | SDC_PASSWORD=...) --ca FILE [--agents N] [--duration D] [--seed S] [--processes P] [--out DIR]',
  optionHelp: [
    ['--scenario F', 'built-in name (smoke, lossy-network, churn, gateway-restart), swarm:S[:lossy][:outages], or a scenario file (default smoke)'],
    ['--tier T', 'full (default): the real control plane, gateways and agents; model: the fleet model (sim/model), same scenario and seed, up to 1,000,000 agents'],
    ['--crypto C', 'full tier: real (default, Ed25519) or model (signatures of the same sizes without the curve arithmetic, several times cheaper; same trace hash)'],
    ['--validate-model', 'run both tiers on the scenario, seed and fleet and compare their aggregates against stated tolerances; exit 1 on drift (--out: full/, model/, validation.json)'],
    ['--agents N', 'fleet size (default: the scenario\'s; 200 for --swarm); a full-tier fleet that needs more V8 heap than the process has (about 80,000 agents and up with Node\'s default) restarts the CLI with a larger --max-old-space-size (docs/simulation.md)'],
    ['--duration D', 'safety phase length in virtual time: 500ms, 90s, 10m, 1h (default: the scenario\'s)'],
    ['--seed S', 'the run\'s seed (default: random, printed first); with --swarm the first seed'],
    ['--out DIR', 'write summary.json, the CSV time series (online-agents.csv, commands-by-state.csv; the last row is the summary\'s final state) and latency-histogram.csv there'],
    ['--json', 'print the summary as JSON: the run\'s result with gitCommit, resolvedScenario, latencyMs (p50/p90/p99/max), failuresByCode and final (the seed goes to stderr)'],
    ['--progress', 'draw the progress bar even when stderr is not a terminal (otherwise a line per 10 % of virtual time there)'],
    ['--swarm K', 'run K consecutive seeds with random fault mixes; list failures; exit 1 if any (takes --agents, --duration, --seed, --crypto, --json; --json prints one object with every run\'s seed, trace hash and violations, the lines to stderr)'],
    ['--lossy', 'with --swarm: include in-connection loss, duplication and reordering'],
    ['--outages', 'with --swarm: include bus and SQL outages'],
    ['--telemetry-samples-per-frame K', 'with --swarm: every agent batches telemetry, up to K (1-64) samples per TELEMETRY_BATCH frame (the scenario field telemetrySamplesPerFrame); reproduce one with --scenario swarm:S[:lossy][:outages]:batchK'],
    ['--real URL', 'run the simulated agents over real WebSocket/TLS against a running `sdc serve` at this control-plane URL (wall time, not reproducible)'],
    ['--admin NAME', 'with --real: the operator account that pairs the agents and sends the commands'],
    ['--password-stdin', 'with --real: read the operator password from the first line of stdin (otherwise from SDC_PASSWORD)'],
    ['--ca FILE', 'with --real: the deployment root CA (PEM), trusted for HTTPS and the gateways'],
    ['--processes P', 'with --real: worker processes holding the agents (default ceil(N / 2000))'],
  ],
  options: {
    scenario: { type: 'string' }, agents: { type: 'string' }, duration: { type: 'string' }, seed: { type: 'string' },
    out: { type: 'string' }, json: { type: 'boolean' }, progress: { type: 'boolean' }, swarm: { type: 'string' }, lossy: { type: 'boolean' }, outages: { type: 'boolean' }, 'telemetry-samples-per-frame': { type: 'string' },
    real: { type: 'string' }, admin: { type: 'string' }, 'password-stdin': { type: 'boolean' }, ca: { type: 'string' }, processes: { type: 'string' },
    tier: { type: 'string' }, 'validate-model': { type: 'boolean' }, crypto: { type: 'string' },
  },
  run: (args, io) => {
    const modes = [args.values.real !== undefined, args.values.swarm !== undefined, args.values['validate-model'] === true, (args.values.tier ?? 'full') !== 'full'];
    if (modes.filter(Boolean).length > 1) throw new SdcError('CLI_USAGE', '--real, --swarm, --validate-model and --tier do not combine');
    refuseOptionsOfOtherModes(args);
    if (args.values['validate-model'] === true) return runValidateCommand(args, io);
    if (args.values.real !== undefined) {
      if (args.values.swarm !== undefined) throw new SdcError('CLI_USAGE', '--real and --swarm do not combine');
      return runRealCommand(args, io);
    }
    return args.values.swarm === undefined ? runOne(args, io) : runSwarmCommand(args, io);
  },
};
