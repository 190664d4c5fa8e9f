import { createHash } from 'node:crypto';
import { commandNotExecutedStates, commandTable, commandTerminalStates, type CommandEvent, type CommandState } from '../core/protocol/command-machine.js';
import { verifyAuditChain } from '../core/protocol/audit-chain.js';
import { nextState } from '../core/protocol/state-machine.js';

/**
 * The invariants a run must keep, apart from the agents: they see the stores (command table,
 * command_events, audit log, presence keys), frames as they enter the network, and kernel calls
 * at the mock kernel, never an agent's internals. Each returns violations instead of throwing, so
 * a test can plant one and see it caught.
 */
export interface Violation {
  readonly checker: 'none_lost' | 'at_most_once' | 'not_executed' | 'legal_transitions' | 'audit_chain' | 'presence' | 'session_seq' | 'liveness';
  readonly message: string;
}

/** The OTA checkers (sim/ota/ota-checkers.ts), in runs whose scenario has a rollout; kept apart so every run's core verdicts keep their shape. */
export const otaCheckerNames = ['ota_first_wave_only', 'ota_paused_in_first_wave', 'ota_download_resumed', 'ota_rollout_completed', 'ota_targets_route', 'ota_crash_recovered'] as const;
export type OtaCheckerName = (typeof otaCheckerNames)[number];

export interface OtaViolation {
  readonly checker: OtaCheckerName;
  readonly message: string;
}

const violationsKeptMax = 20;

/** Per-session seq must strictly increase in each direction, as frames leave their sender. */
export class SessionSeqChecker {
  /**
   * Last seq by session within each `<link>:<direction>` stream; a stream's entries go when its
   * link closes (bounded by open links). Nested by stream so that forgetting one is a delete,
   * not a scan of every open link's entries.
   */
  readonly #last = new Map<string, Map<string, number>>();
  framesChecked = 0;

  observe(streamKey: string, sessionId: string, seq: number): Violation | undefined {
    this.framesChecked += 1;
    let sessions = this.#last.get(streamKey);
    if (sessions === undefined) {
      sessions = new Map();
      this.#last.set(streamKey, sessions);
    }
    const previous = sessions.get(sessionId);
    sessions.set(sessionId, seq);
    if (previous !== undefined && seq <= previous) {
      return { checker: 'session_seq', message: `session ${sessionId} (${streamKey}) sent seq ${seq} after ${previous}` };
    }
    return undefined;
  }

  forget(streamKey: string): void {
    this.#last.delete(streamKey);
  }
}

/**
 * None takes effect twice: every kernel call is attributed to the command the device's journal
 * last marked `executing`; a command id seen by the kernel twice (on one device) is a violation,
 * as is a kernel call with no command marked.
 */
export class ExecutionChecker {
  readonly #current = new Map<string, string>();
  readonly #calls = new Map<string, number>();
  /** `<device>/<command>` of every command a journal marked executing (one entry per command run). */
  readonly #started = new Set<string>();
  kernelCalls = 0;

  executing(deviceId: string, commandId: string): void {
    this.#current.set(deviceId, commandId);
    this.#started.add(`${deviceId}/${commandId}`);
  }

  /** The device's journal marked the command executing: from then on it counts as run (it may have had an effect). */
  started(deviceId: string, commandId: string): boolean {
    return this.#started.has(`${deviceId}/${commandId}`);
  }

  kernelCall(deviceId: string): Violation | undefined {
    this.kernelCalls += 1;
    const commandId = this.#current.get(deviceId);
    if (commandId === undefined) return { checker: 'at_most_once', message: `device ${deviceId} made a kernel call outside any command` };
    // One kernel call per command: attributing it ends the command's slot.
    this.#current.delete(deviceId);
    const key = `${deviceId}/${commandId}`;
    const count = (this.#calls.get(key) ?? 0) + 1;
    this.#calls.set(key, count);
    if (count > 1) return { checker: 'at_most_once', message: `command ${commandId} took effect ${count} times on ${deviceId}` };
    return undefined;
  }

  executions(deviceId: string, commandId: string): number {
    return this.#calls.get(`${deviceId}/${commandId}`) ?? 0;
  }
}

/** Every accepted command is terminal at the end of the liveness phase. */
export function checkNoneLost(commands: ReadonlyArray<{ id: string; state: string }>, accepted: ReadonlySet<string>): Violation[] {
  const violations: Violation[] = [];
  const known = new Set<string>();
  for (const command of commands) {
    known.add(command.id);
    if (!commandTerminalStates.includes(command.state as CommandState) && violations.length < violationsKeptMax) {
      violations.push({ checker: 'none_lost', message: `command ${command.id} is still ${command.state}` });
    }
  }
  for (const id of accepted) {
    if (!known.has(id) && violations.length < violationsKeptMax) violations.push({ checker: 'none_lost', message: `accepted command ${id} is missing from the command table` });
  }
  return violations;
}

/**
 * The states that guarantee non-execution (commandNotExecutedStates: `expired`, `rejected`) tell
 * the truth: no command in one was ever started by its device's agent or reached its kernel.
 */
export function checkNotExecuted(
  commands: ReadonlyArray<{ id: string; device_id: string; state: string }>,
  executions: Pick<ExecutionChecker, 'started' | 'executions'>,
): Violation[] {
  const violations: Violation[] = [];
  for (const command of commands) {
    if (!commandNotExecutedStates.includes(command.state as CommandState)) continue;
    const kernelCalls = executions.executions(command.device_id, command.id);
    if ((kernelCalls > 0 || executions.started(command.device_id, command.id)) && violations.length < violationsKeptMax) {
      violations.push({ checker: 'not_executed', message: `command ${command.id} is ${command.state}, which guarantees it never ran, but ${command.device_id} started it (${kernelCalls} kernel calls)` });
    }
  }
  return violations;
}

export interface CommandEventRow {
  readonly command_id: string;
  readonly state: string;
  readonly at: number;
  readonly detail_json: string | null;
}

/**
 * Replays each command's history (command_events, in insertion order) through the command
 * machine: it must start with `queued` (event create), each row must be the machine's next state
 * for its event, times must not go backwards, and the last row must be the command's state.
 */
export function checkCommandHistories(rows: readonly CommandEventRow[], finalStates: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  const replay = new Map<string, { state: CommandState; atMs: number }>();
  const fail = (message: string) => { if (violations.length < violationsKeptMax) violations.push({ checker: 'legal_transitions', message }); };
  for (const row of rows) {
    const detail = row.detail_json === null ? {} : JSON.parse(row.detail_json) as { event?: string };
    const current = replay.get(row.command_id);
    const atMs = Number(row.at);
    if (current === undefined) {
      if (row.state !== 'queued' || detail.event !== 'create') fail(`command ${row.command_id} starts with ${row.state} (${String(detail.event)})`);
      replay.set(row.command_id, { state: row.state as CommandState, atMs });
      continue;
    }
    const expected = nextState(commandTable, current.state, detail.event as CommandEvent);
    if (expected !== row.state) fail(`command ${row.command_id}: ${current.state} --${String(detail.event)}--> ${row.state} is not in the command table`);
    if (atMs < current.atMs) fail(`command ${row.command_id}: ${row.state} at ${atMs} is before the previous change at ${current.atMs}`);
    replay.set(row.command_id, { state: row.state as CommandState, atMs: Math.max(atMs, current.atMs) });
  }
  for (const [id, state] of finalStates) {
    const replayed = replay.get(id)?.state;
    if (replayed !== state) fail(`command ${id} is ${state} but its history ends at ${String(replayed)}`);
  }
  return violations;
}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

export async function checkAuditChain(entries: AsyncIterable<unknown> | Iterable<unknown>): Promise<Violation[]> {
  const result = await verifyAuditChain(entries, sha256);
  return result.ok ? [] : [{ checker: 'audit_chain', message: `audit chain broken at seq ${result.firstBrokenSeq}: ${result.reason} (${result.detail})` }];
}

export interface PresenceObservation {
  readonly deviceId: string;
  /** Reality: the agent runs and its session is ready. */
  readonly connected: boolean;
  /** What the control plane says (the presence key). */
  readonly online: boolean;
}

/** After healing, the control plane's view of presence matches the agents'. */
export function checkPresence(observations: readonly PresenceObservation[]): Violation[] {
  const violations: Violation[] = [];
  for (const o of observations) {
    if (o.connected !== o.online && violations.length < violationsKeptMax) {
      violations.push({ checker: 'presence', message: `device ${o.deviceId} is ${o.connected ? 'connected' : 'disconnected'} but shown ${o.online ? 'online' : 'offline'}` });
    }
  }
  return violations;
}
