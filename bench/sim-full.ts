import { runSimulation, type RunResult, type SimCrypto } from '../sim/run.js';
import type { Scenario } from '../sim/scenario.js';
import { fullTierFloorScheduler, ratioToFloor, schedulerFloors, type SchedulerFloorRow } from './sim-floors.js';

export type { SchedulerFloorRow } from './sim-floors.js';

/**
 * The full tier on the standard profile (`sdc bench sim --json`): start-up and steady state
 * apart, with real and with modelled crypto in the same run (each the other's baseline), CPU per
 * message by kind, and the schedulers' empty-event floors. CPU comes from process.cpuUsage, so
 * the figures hold on a shared machine better than wall time does; both are reported.
 */
/** One run: field names carry their units (bench/output.ts); `fullTierUnits` lists them. */
export interface FullTierRow {
  readonly [field: string]: string | number | null;
  readonly agents: number;
  readonly crypto: SimCrypto;
  readonly trace_hash: string;
  readonly violations: number;
  /** The whole run: safety and liveness phase. */
  readonly virtual_ms: number;
  readonly peak_rss_mib: number;
  /** World building plus the virtual time until every agent first had a ready session. */
  readonly startup_cpu_ms_per_agent: number;
  readonly startup_wall_ms: number;
  readonly steady_virtual_ms: number;
  readonly steady_agent_s_per_wall_s: number;
  readonly steady_agent_s_per_cpu_s: number;
  /** CPU of one virtual timer event in the steady state, everything it triggers included. */
  readonly steady_cpu_us_per_timer_event: number;
  /**
   * The baseline measured in the same run (issue 14): steady_cpu_us_per_timer_event over the CPU
   * of an empty event through the scheduler the full tier drives (`fullTierFloorScheduler`); null
   * when that floor measured 0 (too few events for the CPU clock to see).
   */
  readonly ratio_to_empty_event_floor: number | null;
}

export const fullTierUnits = {
  agents: 'agents', crypto: 'real (Ed25519 on node:crypto) or model (sim/model-crypto.ts)', trace_hash: 'SHA-256 hex of the run trace',
  violations: 'checker violations', virtual_ms: 'milliseconds of virtual time', peak_rss_mib: 'MiB',
  startup_cpu_ms_per_agent: 'milliseconds of CPU per agent (world building and every first handshake)',
  startup_wall_ms: 'milliseconds', steady_virtual_ms: 'milliseconds of virtual time',
  steady_agent_s_per_wall_s: 'agent-seconds of virtual time per wall-clock second', steady_agent_s_per_cpu_s: 'agent-seconds of virtual time per CPU second',
  steady_cpu_us_per_timer_event: 'microseconds of CPU per virtual timer event',
  ratio_to_empty_event_floor: 'ratio to an empty event through the same scheduler (same run)',
} as const;

export interface MessageCostRow {
  readonly agents: number;
  readonly crypto: SimCrypto;
  /** Steady-state CPU of a heartbeats-only fleet divided by its heartbeats (everything included). */
  readonly heartbeat_cpu_us: number;
  /** Added steady-state CPU when telemetry is switched on, per sample. */
  readonly telemetry_cpu_us: number;
  /** Added steady-state CPU when commands are switched on, per command (create, deliver, execute, result, states). */
  readonly command_round_trip_cpu_us: number;
}

export interface FullTierBench {
  readonly profile: string;
  readonly fleets: readonly FullTierRow[];
  readonly messageCosts: readonly MessageCostRow[];
  readonly schedulerFloors: readonly SchedulerFloorRow[];
}

/** A short liveness bound: the bench measures the safety phase; the run still checks convergence. */
function benchScenario(scenario: Scenario, changes: Partial<Scenario>): Scenario {
  return { ...scenario, livenessBoundMs: 60_000, ...changes };
}

/** The row of one run; its ratio is filled once the floors are measured, after every fleet. */
function fleetRow(agents: number, crypto: SimCrypto, result: RunResult): FullTierRow {
  const timing = result.timing!;
  const steadyAgentSeconds = (agents * timing.steadyVirtualMs) / 1_000;
  return {
    agents, crypto, trace_hash: result.traceHash, violations: result.violations.length, virtual_ms: result.virtualMs, peak_rss_mib: Math.round(result.peakRssBytes / 2 ** 20),
    startup_cpu_ms_per_agent: (timing.setupCpuMs + timing.connectCpuMs) / agents,
    startup_wall_ms: timing.setupWallMs + timing.connectWallMs,
    steady_virtual_ms: timing.steadyVirtualMs,
    steady_agent_s_per_wall_s: Math.round(steadyAgentSeconds / Math.max(0.001, timing.steadyWallMs / 1_000)),
    steady_agent_s_per_cpu_s: Math.round(steadyAgentSeconds / Math.max(0.001, timing.steadyCpuMs / 1_000)),
    steady_cpu_us_per_timer_event: Math.round((timing.steadyCpuMs * 1_000) / Math.max(1, timing.steadyTimersFired)),
    ratio_to_empty_event_floor: null,
  };
}

async function runOne(scenario: Scenario, agents: number, safetyMs: number, seed: number, crypto: SimCrypto): Promise<RunResult> {
  return runSimulation({ scenario, scenarioRef: 'standard', seed, agents, safetyMs, crypto });
}

/**
 * Per-kind costs by difference: heartbeats only, then telemetry on, then commands on, each over
 * the same steady state; what a kind adds divided by how many of it the steady state had.
 */
async function messageCosts(standard: Scenario, agents: number, safetyMs: number, seed: number, crypto: SimCrypto): Promise<MessageCostRow> {
  const quiet = { perAgentHour: 0, ttlMs: standard.commands.ttlMs, mix: standard.commands.mix };
  const heartbeatsOnly = await runOne(benchScenario(standard, { telemetryIntervalMs: 3_600_000, commands: quiet }), agents, safetyMs, seed, crypto);
  const withTelemetry = await runOne(benchScenario(standard, { commands: quiet }), agents, safetyMs, seed, crypto);
  const full = await runOne(benchScenario(standard, {}), agents, safetyMs, seed, crypto);
  const steadyCpuMicros = (r: RunResult) => r.timing!.steadyCpuMs * 1_000;
  const steadyMs = heartbeatsOnly.timing!.steadyVirtualMs;
  const heartbeats = (agents * steadyMs) / standard.heartbeatIntervalMs;
  const samples = (agents * steadyMs) / standard.telemetryIntervalMs;
  const commands = Math.max(1, full.counts.executions ?? 0);
  return {
    agents, crypto,
    heartbeat_cpu_us: Math.round(steadyCpuMicros(heartbeatsOnly) / Math.max(1, heartbeats)),
    telemetry_cpu_us: Math.round((steadyCpuMicros(withTelemetry) - steadyCpuMicros(heartbeatsOnly)) / Math.max(1, samples)),
    command_round_trip_cpu_us: Math.round((steadyCpuMicros(full) - steadyCpuMicros(withTelemetry)) / commands),
  };
}

export async function benchFullTier(options: {
  readonly standard: Scenario; readonly fleets: readonly number[]; readonly safetyMs: number; readonly seed: number;
  /** Fleet of the CPU-per-message runs; 0 leaves them out (a smoke run of the command). */
  readonly costAgents: number; readonly floorEvents: number;
  /** Called before each fleet and once at the end, with the fleets done. */
  readonly onFleet?: (done: number, agents: number | undefined) => void;
}): Promise<FullTierBench> {
  const fleets: FullTierRow[] = [];
  for (const agents of options.fleets) {
    options.onFleet?.(fleets.length / 2, agents);
    for (const crypto of ['real', 'model'] as const) {
      fleets.push(fleetRow(agents, crypto, await runOne(benchScenario(options.standard, {}), agents, options.safetyMs, options.seed, crypto)));
    }
  }
  const messageCostRows: MessageCostRow[] = [];
  options.onFleet?.(options.fleets.length, undefined);
  if (options.costAgents > 0) for (const crypto of ['real', 'model'] as const) messageCostRows.push(await messageCosts(options.standard, options.costAgents, options.safetyMs, options.seed, crypto));
  const floors = await schedulerFloors(options.floorEvents);
  const floor = floors.find((row) => row.scheduler === fullTierFloorScheduler);
  return {
    profile: options.standard.name, messageCosts: messageCostRows, schedulerFloors: floors,
    fleets: fleets.map((row) => ({ ...row, ratio_to_empty_event_floor: ratioToFloor(row.steady_cpu_us_per_timer_event, floor) })),
  };
}
