import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { CommandState } from '../../core/protocol/command-machine.js';
import { SeededRandom } from '../../core/random/prng.js';
import { systemClock } from '../../runtime/system.js';
import type { Scenario } from '../scenario.js';
import { AcceptedCommands, drainCommands, runCommandSchedule, startSeries, type RealSeriesSample } from './command-schedule.js';
import { pairFleet, planFleet, startFleet } from './fleet.js';
import { openLiveStates, type LiveStates } from './live-states.js';
import { logInOperator, type OperatorApi, type OperatorLogin } from './operator-api.js';
import { checkAuditChain, checkCommandRecords, checkPresenceAgreement, readBackCommands, readStoredTelemetry, type LatencyHistogram } from './outside-checks.js';
import { ViolationLog, type RealCheckerName, type RealViolation } from './violations.js';
import type { ChaosWorkerSettings, WorkerAgentSpec, WorkerStatus } from './messages.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * `sdc sim --real URL`: the simulator's agents (the real agent core with the in-memory journal,
 * synthetic telemetry and the mock kernel) over real WebSocket/TLS against a running `sdc serve`,
 * spread over child processes. Time is the wall clock, so a run is not reproducible; the seed
 * still fixes the fleet (per-agent PRNGs, start spread, clock skew), the command targets, mix and
 * gaps. Only the scenario's fleet, telemetry interval and batches (telemetrySamplesPerFrame,
 * telemetryBatchDelayMs), command rate/mix/TTL, kernel errors and clock skew apply: link and
 * store faults need the in-process world.
 */
export interface RealRunOptions {
  /** Control plane base URL, https://HOST:PORT. */
  readonly url: string;
  /** The deployment's root CA (PEM): trusted for HTTPS and, through enrollment, for the gateways. */
  readonly caPem: string;
  readonly admin: string;
  readonly password: string;
  readonly scenario: Scenario;
  readonly scenarioRef: string;
  readonly seed: number;
  /** Overrides scenario.agents. */
  readonly agents?: number;
  /** Wall ms during which commands are sent (default scenario.safetyMs). */
  readonly durationMs?: number;
  /** Worker processes (default ceil(N / 2000)). */
  readonly processes?: number;
  /** Keep the agents' enrollment directories under DIR/agents (default: a temporary directory, removed). */
  readonly outDir?: string;
  /** Enrollments in flight at once (default 8). */
  readonly pairConcurrency?: number;
  /** Wall ms allowed for every agent to come online (default 30 s + 20 ms per agent). */
  readonly onlineTimeoutMs?: number;
  readonly onProgress?: (line: string) => void;
  /** Called once every agent is online, as the command schedule starts (`sdc chaos run` starts its faults here). */
  readonly onCommandsStart?: () => void;
  /** Awaited after the last command, before the drain (`sdc chaos run` heals its faults here, so the drain measures recovery). */
  readonly beforeDrain?: () => Promise<void>;
  /** `sdc chaos run`: worker settings its faults need (durable journals, a switchable kernel fault). */
  readonly chaosSettings?: ChaosWorkerSettings;
  /** `sdc chaos run`: called once the fleet is online, with its worker pool (to kill workers, skew clocks, ask about devices). */
  readonly onFleet?: (pool: WorkerPool, agents: readonly WorkerAgentSpec[], api: OperatorApi) => void;
  /** `sdc chaos run`'s expired-JWT fault: where the operator's tokens come from (operator-api.ts). */
  readonly tokenSource?: OperatorLogin['tokenSource'];
}

export type { RealCheckerName, RealViolation } from './violations.js';
export type { RealSeriesSample } from './command-schedule.js';

export interface RealRunResult {
  readonly mode: 'real';
  readonly url: string;
  readonly seed: number;
  readonly scenario: string;
  /** Not a reproduction (wall time): the same fleet, mix and command timing choices against the same URL. */
  readonly rerun: string;
  readonly agents: number;
  readonly processes: number;
  readonly durationMs: number;
  /** The scenario's liveness bound: wall ms allowed after the last command for every command to finish. */
  readonly drainBoundMs: number;
  readonly drainedAfterMs: number | null;
  readonly pairingMs: number;
  readonly onlineAfterMs: number;
  readonly wallMs: number;
  readonly counts: Readonly<Record<string, number>>;
  /** Agents with a ready session (workers) and devices the control plane shows online, at the end. */
  readonly online: { readonly agents: number; readonly controlPlane: number };
  readonly commandsByState: Readonly<Record<CommandState, number>>;
  readonly checkers: Readonly<Record<RealCheckerName, 'pass' | 'fail' | 'not_reached'>>;
  readonly violations: readonly RealViolation[];
  readonly series: readonly RealSeriesSample[];
  /** Round trip from creation to the device's result (succeeded, failed, rejected), from each command's history. */
  readonly latencyHistogram: ReadonlyArray<{ readonly le_ms: number | null; readonly count: number }>;
}

const agentsPerProcessDefault = 2_000;
/** Each agent is one socket; a process may hold 20,000 open files here, so stay well below. */
const agentsPerProcessMax = 10_000;
const pairConcurrencyDefault = 8;

/** How long agents may take to come online by default: a fixed allowance, plus 20 ms per agent because a larger fleet starts over a longer ramp (fleet.ts). */
function onlineTimeoutMsDefault(agentCount: number): number {
  return 30_000 + 20 * agentCount;
}

/** What a run is, once its options are read: the fleet's size and spread, and the seed's streams. */
interface RunPlan {
  readonly options: RealRunOptions;
  readonly wallStartMs: number;
  readonly agentCount: number;
  readonly durationMs: number;
  readonly processes: number;
  readonly progress: (line: string) => void;
  /** One fork per concern, in a fixed order, as in sim/run.ts. */
  readonly random: { readonly agents: SeededRandom; readonly commands: SeededRandom };
  readonly violations: ViolationLog;
  readonly counts: Record<string, number>;
}

/**
 * The steps, each owning what it opens and closing it in reverse order: log in, follow the live
 * stream, make the agents' work directory, plan and pair the fleet, start the worker processes
 * until every agent is online, send commands at the scenario's rate, drain, check from outside.
 */
export async function runRealSimulation(options: RealRunOptions): Promise<RealRunResult> {
  const plan = planRun(options);
  const api = await logInOperator(options);
  plan.progress(`logged in as ${options.admin} at ${api.apiUrl.origin}`);
  const live = await openLiveStates(api);
  try {
    return await withWorkDir(options.outDir, (workDir) => runFleet(plan, api, live, workDir));
  } finally {
    live.close();
  }
}

/** Step: read the options into a plan; a process count the fleet cannot be spread over is CLI_USAGE. */
function planRun(options: RealRunOptions): RunPlan {
  const wallStartMs = systemClock.nowMs();
  const agentCount = options.agents ?? options.scenario.agents;
  const processes = options.processes ?? Math.ceil(agentCount / agentsPerProcessDefault);
  if (!Number.isSafeInteger(processes) || processes < 1 || processes > agentCount || Math.ceil(agentCount / processes) > agentsPerProcessMax) {
    throw new SdcError('CLI_USAGE', `--processes must be from ${Math.ceil(agentCount / agentsPerProcessMax)} to ${agentCount} for ${agentCount} agents (at most ${agentsPerProcessMax} agents per process)`);
  }
  const root = new SeededRandom(options.seed);
  return {
    options, wallStartMs, agentCount, processes, durationMs: options.durationMs ?? options.scenario.safetyMs,
    progress: options.onProgress ?? (() => {}),
    random: { agents: root.fork(), commands: root.fork() },
    violations: new ViolationLog(),
    counts: { commands_accepted: 0, commands_refused: 0, commands_outcome_unknown: 0, commands_skipped: 0 },
  };
}

/** Step: the agents' enrollment directories: `outDir` when given (kept), else a temporary directory removed at the end. */
async function withWorkDir<T>(outDir: string | undefined, run: (workDir: string) => Promise<T>): Promise<T> {
  const workDir = outDir ?? await mkdtemp(join(tmpdir(), 'sdc-sim-real-'));
  try {
    return await run(workDir);
  } finally {
    if (outDir === undefined) await rm(workDir, { recursive: true, force: true });
  }
}

/** Steps: plan, pair and start the fleet, then the commands, the checks and the telemetry counts. Owns the worker pool. */
async function runFleet(plan: RunPlan, api: OperatorApi, live: LiveStates, workDir: string): Promise<RealRunResult> {
  const { options, agentCount, progress } = plan;
  const agents = planFleet({ seed: options.seed, agentCount, scenario: options.scenario, random: plan.random.agents, workDir });
  await pairFleet(api, agents, options.pairConcurrency ?? pairConcurrencyDefault, progress);
  const pairingMs = systemClock.nowMs() - plan.wallStartMs;
  const pool = await startFleet({ agents, processes: plan.processes, scenario: options.scenario, onlineTimeoutMs: options.onlineTimeoutMs ?? onlineTimeoutMsDefault(agentCount), violations: plan.violations, ...(options.chaosSettings ? { chaosSettings: options.chaosSettings } : {}) });
  options.onFleet?.(pool, agents, api);
  try {
    const onlineAfterMs = systemClock.nowMs() - plan.wallStartMs;
    progress(`${agentCount} agents online over ${plan.processes} processes`);
    const deviceIds = agents.map((a) => a.deviceId);
    const run = await commandsAndChecks(plan, api, live, pool, deviceIds);
    const telemetry = await telemetryAtEnd(api, pool, deviceIds);
    return resultOf(plan, api, { ...run, pairingMs, onlineAfterMs, telemetry });
  } finally {
    await pool.stop();
  }
}

/** What the command phase and the checks found, for resultOf. */
interface RunFindings {
  readonly drainedAfterMs: number | null;
  readonly series: readonly RealSeriesSample[];
  readonly commandsByState: Record<CommandState, number>;
  readonly latencyHistogram: LatencyHistogram;
  readonly online: { readonly agents: number; readonly controlPlane: number };
  readonly status: WorkerStatus;
}

/**
 * Step, after the checks: the agents stop (their counters final, nothing sent after), then the
 * rows the control plane stored for them. The same counts as the in-process full tier's
 * (sim/run.ts countTelemetry): frames and samples as they left the agents, rows stored, samples
 * still buffered at the end, dropped past the agents' buffer bound, and lost with a killed worker.
 */
async function telemetryAtEnd(api: OperatorApi, pool: WorkerPool, deviceIds: readonly string[]): Promise<Record<string, number>> {
  const final = await pool.stop();
  const stored = await readStoredTelemetry(api, deviceIds, final.telemetrySamplesSent);
  return {
    telemetry_frames_sent: final.telemetryFramesSent, telemetry_batch_frames_sent: final.telemetryBatchFramesSent,
    telemetry_samples_sent: final.telemetrySamplesSent, telemetry_stored: stored.stored, telemetry_stored_duplicates: stored.duplicates,
    telemetry_samples_buffered_end: final.telemetrySamplesBuffered, telemetry_samples_dropped: final.telemetrySamplesDropped,
    telemetry_samples_lost_in_crashes: pool.telemetrySamplesLostInCrashes(),
  };
}

/** Steps: the command phase, then the checks from outside. */
async function commandsAndChecks(plan: RunPlan, api: OperatorApi, live: LiveStates, pool: WorkerPool, deviceIds: readonly string[]): Promise<RunFindings> {
  const { violations } = plan;
  const accepted = new AcceptedCommands(live);
  const { drainedAfterMs, series } = await commandPhase(plan, api, live, pool, { deviceIds, accepted });
  const collection = await pool.collect();
  const records = await readBackCommands(api, accepted.ids);
  const { commandsByState, latencyHistogram } = checkCommandRecords({ records, accepted: accepted.ids, collection, violations });
  await checkAuditChain(api, violations);
  const online = await checkPresenceAgreement({ api, pool, deviceIds, collection, violations });
  return { drainedAfterMs, series, commandsByState, latencyHistogram, online, status: collection.status };
}

/** Steps: the schedule, then the drain, with the time series sampled over both. */
async function commandPhase(plan: RunPlan, api: OperatorApi, live: LiveStates, pool: WorkerPool, commands: { deviceIds: readonly string[]; accepted: AcceptedCommands }): Promise<{ drainedAfterMs: number | null; series: RealSeriesSample[] }> {
  const { options: { scenario }, violations, durationMs } = plan;
  const { deviceIds, accepted } = commands;
  const series = startSeries({ pool, accepted, spanMs: durationMs + scenario.livenessBoundMs });
  try {
    plan.options.onCommandsStart?.();
    await runCommandSchedule({ api, pool, scenario, deviceIds, random: plan.random.commands, durationMs, accepted, counts: plan.counts });
    await plan.options.beforeDrain?.();
    plan.progress(`${plan.counts.commands_accepted} commands accepted; waiting for terminal states`);
    const drainedAfterMs = await drainCommands({ api, pool, live, accepted, boundMs: scenario.livenessBoundMs, violations });
    return { drainedAfterMs, series: series.stop() };
  } finally {
    series.stop();
  }
}

function resultOf(plan: RunPlan, api: OperatorApi, found: RunFindings & { pairingMs: number; onlineAfterMs: number; telemetry: Record<string, number> }): RealRunResult {
  const { options, agentCount, processes, durationMs, counts, violations } = plan;
  const origin = api.apiUrl.origin;
  const { status } = found;
  return {
    mode: 'real', url: origin, seed: options.seed, scenario: options.scenario.name,
    rerun: `sdc sim --real ${origin} --seed ${options.seed} --scenario ${options.scenarioRef} --agents ${agentCount} --duration ${durationMs}ms --processes ${processes}`,
    agents: agentCount, processes, durationMs, drainBoundMs: options.scenario.livenessBoundMs, drainedAfterMs: found.drainedAfterMs,
    pairingMs: found.pairingMs, onlineAfterMs: found.onlineAfterMs, wallMs: systemClock.nowMs() - plan.wallStartMs,
    counts: {
      ...counts, executions: status.executions, rejections: status.rejections, kernel_calls: status.kernelCalls,
      sessions_ready: status.sessionsReady, sessions_closed: status.sessionsClosed, token_expired_relogins: api.expiredRefusals(),
      ...found.telemetry,
    },
    online: found.online, commandsByState: found.commandsByState, checkers: violations.verdicts(), violations: [...violations.all],
    series: found.series, latencyHistogram: found.latencyHistogram,
  };
}
