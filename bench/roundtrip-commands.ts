import type { AgentIdentity } from '../agent/enrollment.js';
import { SdcError } from '../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { systemClock } from '../runtime/system.js';
import type { BenchApi, CommandRecord } from './roundtrip-deployment.js';
import { runPaced } from './paced-schedule.js';
import type { LiveTracker } from './roundtrip-live.js';
import { sleep } from './wall-time.js';

/** Command records read back at once. */
const readBackBatchSize = 64;
const progressEveryCommands = 100;

export interface CommandRoundsOptions {
  readonly api: BenchApi;
  readonly live: LiveTracker;
  readonly identities: readonly AgentIdentity[];
  readonly warmupRounds: number;
  readonly commandsPerAgent: number;
  readonly runTag: string;
  readonly deadlineMs: number;
  readonly progress: (line: string) => void;
  /**
   * Open loop (bench/paced-schedule.ts): every creation, warm-up round first, at this many per
   * second over the fleet, command k to agent k mod N, timed from its due time; an agent may have
   * several commands open. Absent: each agent posts its next command on the last one's terminal event.
   */
  readonly ratePerS?: number;
  /** Monotonic clock in ms (performance.now()) and a wait on it; a virtual pair in tests. */
  readonly nowMs?: () => number;
  readonly sleepUntil?: (atMs: number) => Promise<void>;
}

/** What the client saw of the measured commands (the warm-up rounds are left out). */
export interface CommandRounds {
  /** Every measured command the API created, in the order they were answered. */
  readonly ids: string[];
  readonly clientSamples: number[];
  readonly postSamples: number[];
  readonly lagSamples: number[];
  readonly refusedByCode: Record<string, number>;
  /** The warm-up rounds' refused creations by code: not measured, but a refusal is never hidden. */
  readonly warmupRefusedByCode: Record<string, number>;
  terminalCount: number;
  /** Commands the API created in the phase, warm-up ones included: what the phase's CPU is divided by. */
  created: number;
}

/**
 * Step: M EXEC_PING_KERNEL commands per agent one after another, all agents at once, each timed
 * from just before its POST to its terminal event on the live stream; until done or the deadline.
 */
export async function runCommandRounds(options: CommandRoundsOptions): Promise<CommandRounds> {
  const rounds: CommandRounds = { ids: [], clientSamples: [], postSamples: [], lagSamples: [], refusedByCode: {}, warmupRefusedByCode: {}, terminalCount: 0, created: 0 };
  const measuredTotal = options.identities.length * options.commandsPerAgent;
  const nowMs = options.nowMs ?? (() => performance.now());
  const reportProgress = (counted: boolean) => {
    if (counted && rounds.terminalCount % progressEveryCommands === 0) options.progress(`commands ${rounds.terminalCount}/${measuredTotal} terminal`);
  };
  if (options.ratePerS !== undefined) {
    const agents = options.identities;
    await runPaced({
      count: agents.length * (options.warmupRounds + options.commandsPerAgent), ratePerS: options.ratePerS, nowMs,
      ...(options.sleepUntil === undefined ? {} : { sleepUntil: options.sleepUntil }),
      // The run's deadline is on the wall clock; the schedule's clock is monotonic.
      deadlineMs: nowMs() + (options.deadlineMs - systemClock.nowMs()),
      start: async (k, dueMs) => reportProgress(await oneCommand(options, rounds, agents[k % agents.length]!.deviceId, Math.floor(k / agents.length), nowMs, dueMs)),
    });
    return rounds;
  }
  await Promise.all(options.identities.map(async ({ deviceId }) => {
    for (let round = 0; round < options.warmupRounds + options.commandsPerAgent; round += 1) {
      if (systemClock.nowMs() >= options.deadlineMs) return;
      reportProgress(await oneCommand(options, rounds, deviceId, round, nowMs));
    }
  }));
  return rounds;
}

/**
 * A refused creation's tally key: the server's code, or ours; a transport failure names its
 * socket error too (`HTTP_UNREACHABLE ECONNRESET`, `HTTP_UNREACHABLE timeout`), since those are
 * the bench's own connections failing, not the API refusing.
 */
export function refusalCode(error: unknown): string {
  if (!SdcError.is(error)) return 'UNKNOWN';
  if (error.code !== 'HTTP_UNREACHABLE') return String(error.details?.serverCode ?? error.code);
  const cause = (error as Error & { cause?: unknown }).cause as NodeJS.ErrnoException | undefined;
  return `HTTP_UNREACHABLE ${cause?.code ?? (/within \d+ ms/.test(error.message) ? 'timeout' : 'other')}`;
}

/**
 * One command, recorded in `rounds` when measured; true when it was created and measured. Its
 * client time runs from `dueMs` when it had one on a schedule (open loop), else from its POST.
 */
async function oneCommand(options: CommandRoundsOptions, rounds: CommandRounds, deviceId: string, round: number, nowMs: () => number, dueMs?: number): Promise<boolean> {
  const measured = round >= options.warmupRounds;
  const postStartMs = nowMs();
  const sentMs = dueMs ?? postStartMs;
  const epoch = options.live.epoch;
  let command: { id: string };
  try {
    command = await options.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} },
      { 'idempotency-key': `bench-${options.runTag}-${deviceId}-${round}` });
  } catch (error) {
    // A refused creation is a result, not a reason to stop: counted by code, the agent moves on.
    const code = refusalCode(error);
    const tally = measured ? rounds.refusedByCode : rounds.warmupRefusedByCode;
    tally[code] = (tally[code] ?? 0) + 1;
    return false;
  }
  const postedMs = nowMs();
  rounds.created += 1;
  const seen = await options.live.waitTerminal(command.id, options.deadlineMs, epoch);
  if (!measured) return false;
  rounds.postSamples.push(postedMs - postStartMs);
  rounds.ids.push(command.id);
  if (seen !== undefined) {
    rounds.terminalCount += 1;
    if (seen.atMs !== undefined) rounds.clientSamples.push(seen.atMs - sentMs);
    if (seen.lagMs !== undefined) rounds.lagSamples.push(seen.lagMs);
  }
  return true;
}

/**
 * Step: the server's own record of each measured command: how many ended in each state, and
 * created-to-terminal times. A record the API cannot be reached for (after readBackAttemptsMax
 * tries) is left out, so it counts as not terminal, and `unread` says how many: before, one
 * transport error here ended a run of half an hour (the paper set's 500 agents, issue 17).
 */
export async function readServerRecords(api: BenchApi, ids: readonly string[]): Promise<ServerRecords> {
  const byState: Partial<Record<CommandState, number>> = {};
  const serverSamples: number[] = [];
  const stepSamples: Record<string, number[]> = {};
  let unread = 0;
  for (let i = 0; i < ids.length; i += readBackBatchSize) {
    const read = await Promise.all(ids.slice(i, i + readBackBatchSize).map((id) => readRecord(api, id)));
    const records = read.filter((record): record is CommandRecord => record !== undefined);
    unread += read.length - records.length;
    for (const record of records) {
      byState[record.state] = (byState[record.state] ?? 0) + 1;
      const first = record.history[0];
      const last = record.history.at(-1);
      if (commandTerminalStates.includes(record.state) && first !== undefined && last !== undefined) {
        serverSamples.push(last.at_ms - first.at_ms);
        addStepSamples(stepSamples, record.history);
      }
    }
  }
  return { byState, serverSamples, stepSamples, unread };
}

/** What the read-back found: per state, created-to-terminal times, and the same split per step of the history. */
export interface ServerRecords {
  readonly byState: Partial<Record<CommandState, number>>;
  readonly serverSamples: number[];
  /**
   * Per consecutive pair of states in a terminal command's history (`queued->sent`, `sent->ack_received`,
   * ...), the time between them: where the server time goes. Keys are in the order first seen.
   */
  readonly stepSamples: Record<string, number[]>;
  readonly unread: number;
}

/** Each step's duration in `history` (ordered by the server, ms resolution), under its `from->to` key. */
function addStepSamples(stepSamples: Record<string, number[]>, history: CommandRecord['history']): void {
  for (let i = 1; i < history.length; i += 1) {
    const from = history[i - 1]!;
    const to = history[i]!;
    (stepSamples[`${from.state}->${to.state}`] ??= []).push(to.at_ms - from.at_ms);
  }
}

const readBackAttemptsMax = 3;
const readBackRetryMs = 1_000;

/** One command's record; undefined when the API stayed unreachable (HTTP_UNREACHABLE) for every attempt. Refusals are thrown. */
async function readRecord(api: BenchApi, id: string): Promise<CommandRecord | undefined> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api<CommandRecord>('GET', `/v1/commands/${id}`);
    } catch (error) {
      if (!SdcError.is(error, 'HTTP_UNREACHABLE')) throw error;
      if (attempt >= readBackAttemptsMax) return undefined;
      await sleep(readBackRetryMs);
    }
  }
}
