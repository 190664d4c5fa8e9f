/**
 * `sdc bench roundtrip --ladder R1,R2,...`: offered load in steps, after the closed-loop (or
 * `--rate`) phase, with the same deployment and agents (issue 17).
 *
 * Why: a closed loop posts each agent's next command as soon as its last one finished, so the
 * services are the queue by construction and their event loop is busy (utilization near 1) at any
 * speed; "the control path is not the bottleneck" cannot be read from it. An open loop at a stated
 * rate can: at rate R the services either keep up, with room to spare (utilization), or a backlog
 * grows. The ladder runs one step per rate, ascending, each `stepMs` long on a fixed schedule
 * (bench/paced-schedule.ts: command i of the step to agent i mod N, timed from its due time), and
 * reports per step the process's utilization and CPU per command over the step (from its first due
 * time to its last command's terminal event), the latencies, and whether the step was sustained.
 * Before the first step the same figures are taken with no commands at all (`idle_load`: the
 * agents' heartbeats and the services' own timers), so a reader sees what the commands added.
 *
 * A step is sustained when every command was created, reached `succeeded`, and the last terminal
 * event came within `drainSustainedMs` of the last due time: a backlog that grows over the step
 * shows there (at 10 % over capacity a 20 s step ends 2 s behind). The ladder stops after the
 * first step that is not sustained or whose utilization is at or over `eluMax` (a higher rate would
 * only be busier; where the main thread's CPU per wall is known, it must be at the bound too).
 * `sustained_rate_below_elu_per_s` is the highest rate both sustained and under `eluMax`: the
 * figure for "the control path is not the bottleneck at this rate";
 * `sustained_rate_below_main_thread_cpu_per_s` the same by the main thread's own CPU, which other
 * processes on the machine do not inflate.
 */

import type { AgentIdentity } from '../agent/enrollment.js';
import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { systemClock } from '../runtime/system.js';
import { hdrLatencyTableSummary } from './latency-hdr.js';
import { runPaced } from './paced-schedule.js';
import { loadMonitor, type ProcessLoad } from './process-load.js';
import { refusalCode, type ServerRecords } from './roundtrip-commands.js';
import type { BenchApi } from './roundtrip-deployment.js';
import type { LiveTracker } from './roundtrip-live.js';
import type { LatencySummary } from './stats.js';
import { sleep } from './wall-time.js';

/** The goal's utilization bound (issue 17): under it, the services' event loop is idle half the time or more. */
export const ladderEluMaxDefault = 0.5;
/** The last terminal event at most this long after the last due time, or the step fell behind. */
export const ladderDrainSustainedMs = 2_000;
export const ladderStepMsDefault = 20_000;
export const ladderIdleMsDefault = 5_000;
/** Steps at most; each rate's commands at most (rate x step length). */
export const ladderLimits = { stepsMax: 16, commandsPerStepMax: 100_000 } as const;

export interface LadderOptions {
  readonly api: BenchApi;
  readonly live: LiveTracker;
  readonly identities: readonly AgentIdentity[];
  readonly runTag: string;
  /** Ascending, each above 0 (checked by the caller: checkLadderRates). */
  readonly ratesPerS: readonly number[];
  readonly stepMs: number;
  readonly idleMs: number;
  readonly eluMax: number;
  /** Wall-clock deadline of the whole run; steps not begun by then are not run. */
  readonly deadlineMs: number;
  readonly progress: (line: string) => void;
  /** The server's records of the given commands (readServerRecords); read after the last step, outside every measured window. */
  readonly readRecords: (ids: readonly string[]) => Promise<ServerRecords>;
  /** Monotonic ms, a wait on it, and the load monitor: virtual ones in tests. */
  readonly nowMs?: () => number;
  readonly sleepUntil?: (atMs: number) => Promise<void>;
  readonly monitor?: () => { stop(): ProcessLoad };
}

export interface LadderStep {
  rate_per_s: number;
  /** `offered` on the schedule; `created` by the API; `refused_by_code` its refusals; `terminal` seen terminal; `succeeded` of them. */
  commands: { offered: number; created: number; refused_by_code: Record<string, number>; terminal: number; succeeded: number; by_state: Partial<Record<CommandState, number>> };
  /** The process over the step: from its first due time to its last command's terminal event (or the wait's end). */
  load: ProcessLoad;
  cpu_ms_per_command: number;
  /** Last terminal event after the last due time (ms); null when some command never became terminal. */
  drain_ms: number | null;
  /** Created -> terminal in the command's own history (as server_ms of the main phase). */
  server_ms: LatencySummary;
  /** Due time -> terminal event on the live stream (as client_ms under --rate). */
  client_ms: LatencySummary;
  sustained: boolean;
  /** Why not sustained (first reason), absent when sustained. */
  not_sustained_because?: string;
}

export interface LadderSummary {
  elu_max: number;
  step_ms: number;
  drain_sustained_ms: number;
  /** The process with the agents online and no commands, over idle_ms. */
  idle_ms: number;
  idle_load: ProcessLoad;
  steps: LadderStep[];
  /** Rates given but not run (the ladder stopped at a step over elu_max or not sustained, or at the deadline). */
  rates_not_run: number[];
  /** The highest rate whose step was sustained with utilization under elu_max; null when none. */
  sustained_rate_below_elu_per_s: number | null;
  /**
   * The same with the main thread's CPU per wall under elu_max instead (ProcessLoad.main_thread_cpu_per_wall):
   * the utilization the loop would have had with the machine to itself; null when none or not known.
   */
  sustained_rate_below_main_thread_cpu_per_s: number | null;
}

/** Refuses rates that are not ascending, or too many steps or commands per step (CLI_USAGE is the caller's). */
export function checkLadderRates(ratesPerS: readonly number[], stepMs: number): string | undefined {
  if (ratesPerS.length === 0 || ratesPerS.length > ladderLimits.stepsMax) return `1 to ${ladderLimits.stepsMax} rates`;
  for (let i = 0; i < ratesPerS.length; i += 1) {
    const rate = ratesPerS[i]!;
    if (!(rate > 0)) return 'every rate above 0';
    if (i > 0 && !(rate > ratesPerS[i - 1]!)) return 'rates in ascending order';
    if (Math.ceil((rate * stepMs) / 1_000) > ladderLimits.commandsPerStepMax) return `at most ${ladderLimits.commandsPerStepMax} commands per step (rate x step length)`;
  }
  return undefined;
}

interface StepRecord {
  readonly ids: string[];
  readonly clientSamples: number[];
  readonly refusedByCode: Record<string, number>;
  created: number;
  terminal: number;
  lastTerminalMs: number;
}

/** Runs the idle measurement and the steps; resolves with the summary (the server records read after the last step). */
export async function runLadder(options: LadderOptions): Promise<LadderSummary> {
  const nowMs = options.nowMs ?? (() => performance.now());
  const monitor = options.monitor ?? loadMonitor;
  const idle = monitor();
  await (options.sleepUntil ?? ((atMs: number) => sleep(Math.max(0, atMs - nowMs()))))(nowMs() + options.idleMs);
  const idleLoad = idle.stop();
  options.progress(`ladder: idle (no commands) for ${options.idleMs} ms: event-loop utilization ${idleLoad.event_loop_utilization}, main thread CPU per wall ${idleLoad.main_thread_cpu_per_wall ?? '?'}, CPU per wall ${idleLoad.cpu_per_wall}`);
  const ran: Array<{ rate: number; record: StepRecord; load: ProcessLoad; lastDueMs: number }> = [];
  let agentOffset = 0;
  for (const [index, rate] of options.ratesPerS.entries()) {
    if (systemClock.nowMs() >= options.deadlineMs) break;
    const count = Math.max(1, Math.round((rate * options.stepMs) / 1_000));
    const record: StepRecord = { ids: [], clientSamples: [], refusedByCode: {}, created: 0, terminal: 0, lastTerminalMs: 0 };
    const step = monitor();
    let lastDueMs = 0;
    const offset = agentOffset;
    await runPaced({
      count, ratePerS: rate, nowMs,
      ...(options.sleepUntil === undefined ? {} : { sleepUntil: options.sleepUntil }),
      deadlineMs: nowMs() + (options.deadlineMs - systemClock.nowMs()),
      start: async (i, dueMs) => {
        lastDueMs = dueMs;
        await ladderCommand(options, record, options.identities[(offset + i) % options.identities.length]!.deviceId, `ladder${index}-${i}`, dueMs, nowMs);
      },
    });
    const load = step.stop();
    // The next step starts on the agent after this one's last: no agent gets two steps' first commands.
    agentOffset = (offset + count) % options.identities.length;
    ran.push({ rate, record, load, lastDueMs });
    const drainMs = record.terminal === record.created && record.created > 0 ? Math.round(record.lastTerminalMs - lastDueMs) : null;
    options.progress(`ladder: ${rate}/s for ${options.stepMs} ms: ${record.terminal}/${count} terminal, utilization ${load.event_loop_utilization}, main thread CPU per wall ${load.main_thread_cpu_per_wall ?? '?'}, `
      + `CPU per command ${perCommand(load, record.created)} ms, last terminal ${drainMs ?? '-'} ms after the last due time`);
    const reason = notSustained(record, count, drainMs, undefined);
    if (reason !== undefined || overBound(load, options.eluMax)) break;
  }
  // The records are read after the last step, so no step's window holds another's read-back.
  const steps: LadderStep[] = [];
  for (const { rate, record, load, lastDueMs } of ran) {
    const records = await options.readRecords(record.ids);
    const count = Math.max(1, Math.round((rate * options.stepMs) / 1_000));
    const succeeded = records.byState.succeeded ?? 0;
    const drainMs = record.terminal === record.created && record.created > 0 ? Math.round(record.lastTerminalMs - lastDueMs) : null;
    const reason = notSustained(record, count, drainMs, succeeded);
    steps.push({
      rate_per_s: rate,
      commands: { offered: count, created: record.created, refused_by_code: record.refusedByCode, terminal: record.terminal, succeeded, by_state: records.byState },
      load, cpu_ms_per_command: perCommand(load, record.created), drain_ms: drainMs,
      server_ms: hdrLatencyTableSummary(records.serverSamples), client_ms: hdrLatencyTableSummary(record.clientSamples),
      sustained: reason === undefined, ...(reason === undefined ? {} : { not_sustained_because: reason }),
    });
  }
  const highest = (under: (load: ProcessLoad) => boolean) => {
    const rates = steps.filter((s) => s.sustained && under(s.load)).map((s) => s.rate_per_s);
    return rates.length === 0 ? null : Math.max(...rates);
  };
  return {
    elu_max: options.eluMax, step_ms: options.stepMs, drain_sustained_ms: ladderDrainSustainedMs, idle_ms: options.idleMs, idle_load: idleLoad, steps,
    rates_not_run: options.ratesPerS.slice(steps.length),
    sustained_rate_below_elu_per_s: highest((load) => load.event_loop_utilization < options.eluMax),
    sustained_rate_below_main_thread_cpu_per_s: highest((load) => load.main_thread_cpu_per_wall !== undefined && load.main_thread_cpu_per_wall < options.eluMax),
  };
}

/**
 * A higher rate would only be busier: the utilization is at the bound, and so is the main thread's
 * CPU per wall where it is known (on a machine others keep busy the first reaches it long before the
 * second, so the ladder goes on while the thread itself still has room).
 */
function overBound(load: ProcessLoad, eluMax: number): boolean {
  return load.event_loop_utilization >= eluMax && (load.main_thread_cpu_per_wall === undefined || load.main_thread_cpu_per_wall >= eluMax);
}

function perCommand(load: ProcessLoad, created: number): number {
  return created > 0 ? Math.round((load.cpu_ms / created) * 100) / 100 : 0;
}

/** The first reason a step was not sustained, or undefined; `succeeded` once the records are read. */
function notSustained(record: StepRecord, count: number, drainMs: number | null, succeeded: number | undefined): string | undefined {
  const refused = Object.values(record.refusedByCode).reduce((sum, n) => sum + n, 0);
  if (refused > 0) return `${refused} refused`;
  if (record.created < count) return `${count - record.created} not sent before the deadline`;
  if (drainMs === null) return `${record.created - record.terminal} not terminal`;
  if (succeeded !== undefined && succeeded < record.created) return `${record.created - succeeded} not succeeded`;
  if (drainMs > ladderDrainSustainedMs) return `fell behind: the last terminal event ${drainMs} ms after the last due time`;
  return undefined;
}

/** One command of a step: posted, then its terminal event awaited; timed from its due time. */
async function ladderCommand(options: LadderOptions, record: StepRecord, deviceId: string, key: string, dueMs: number, nowMs: () => number): Promise<void> {
  const epoch = options.live.epoch;
  let command: { id: string };
  try {
    command = await options.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} },
      { 'idempotency-key': `bench-${options.runTag}-${key}` });
  } catch (error) {
    const code = refusalCode(error);
    record.refusedByCode[code] = (record.refusedByCode[code] ?? 0) + 1;
    return;
  }
  record.created += 1;
  record.ids.push(command.id);
  const seen = await options.live.waitTerminal(command.id, options.deadlineMs, epoch);
  if (seen === undefined || !commandTerminalStates.includes(seen.state)) return;
  record.terminal += 1;
  const atMs = seen.atMs ?? nowMs();
  record.lastTerminalMs = Math.max(record.lastTerminalMs, atMs);
  if (seen.atMs !== undefined) record.clientSamples.push(seen.atMs - dueMs);
}
