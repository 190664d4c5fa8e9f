import { commandEvents, commandStates, commandTable, commandTerminalStates, type CommandEvent, type CommandState } from '../../core/protocol/command-machine.js';
import { LatencyRecorder } from '../latency-recorder.js';
import { retryLimits } from '../../server/control-plane/stream-consumer.js';
import { outcomeKey } from '../outcomes.js';
import { noCode, noGateway } from './command-store.js';
import { Ev, Report } from './events.js';
import type { ModelWorld } from './world.js';

/**
 * The control plane's side of commands (server/control-plane/commands.ts, events.ts): create
 * (refused while SQL is down), dispatch to the gateway the presence key names, redelivery on
 * presence, the redelivery and expiry sweeps, and the gateways' reports applied through the
 * command machine itself: core/protocol/command-machine.ts's table is compiled into a matrix
 * here, so a change to the table changes the model. An event the table has no entry for changes
 * nothing, as CommandService.transition ignores it.
 *
 * Reports a handler cannot apply while SQL is down are retried in place, after pauses that double
 * (StreamConsumer retryLimits), while the device's later reports wait behind them; after the last
 * attempt they stay pending in their partition until a claim takes them again.
 */
const illegal = 255;
/** The states a round trip is measured into, as the full tier's live listener does. */
const resultStates: ReadonlySet<CommandState> = new Set(['succeeded', 'failed', 'rejected']);
export const latencyBucketsMs: readonly number[] = Object.freeze([10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000]);

export interface CompiledCommandTable {
  /** [state * events + event] -> next state index, 255 where the table has no entry. */
  readonly next: Uint8Array;
  readonly eventCount: number;
  readonly terminal: Uint8Array;
  /** Terminal and with no transition out (a refinable terminal state is not final). */
  readonly final: Uint8Array;
  readonly resultState: Uint8Array;
}

export function compileCommandTable(): CompiledCommandTable {
  const eventCount = commandEvents.length;
  const next = new Uint8Array(commandStates.length * eventCount).fill(illegal);
  const terminal = new Uint8Array(commandStates.length);
  const final = new Uint8Array(commandStates.length);
  const resultState = new Uint8Array(commandStates.length);
  commandStates.forEach((state, s) => {
    const row: Partial<Record<CommandEvent, CommandState>> = commandTable.transitions[state];
    for (const [event, to] of Object.entries(row)) next[s * eventCount + commandEvents.indexOf(event as CommandEvent)] = commandStates.indexOf(to);
    terminal[s] = commandTerminalStates.includes(state) ? 1 : 0;
    final[s] = terminal[s] === 1 && Object.keys(row).length === 0 ? 1 : 0;
    resultState[s] = resultStates.has(state) ? 1 : 0;
  });
  return { next, eventCount, terminal, final, resultState };
}

const eventOf = (name: string): number => commandEvents.indexOf(name as CommandEvent);
const reportEvents: ReadonlyMap<number, number> = new Map([
  [Report.deliver, eventOf('deliver')], [Report.ack, eventOf('ack')], [Report.start, eventOf('start')],
  [Report.succeeded, eventOf('succeed')], [Report.failed, eventOf('fail')], [Report.rejected, eventOf('reject')],
  [Report.deadLetter, eventOf('dead_letter')],
]);

interface PartitionBacklog {
  /** [kind, agent, command, at ms] per report. */
  readonly reports: number[];
  /** Failed attempts in place since the last claim. */
  attempts: number;
  /** Claims of the first entry (StreamConsumer deliveriesMax). */
  deliveries: number;
}

export class ControlPlane {
  readonly #w: ModelWorld;
  readonly table: CompiledCommandTable;
  /** Commands by their current state (the live channel's view, sampled into the series). */
  readonly byState: Int32Array;
  /** Creation to device result, in latencyBucketsMs buckets plus one for larger. */
  readonly latency: Int32Array;
  /** The same round trips, for percentiles (summary.json latencyMs). */
  readonly latencyRecorder = new LatencyRecorder();
  readonly #unfinished = new Set<number>();
  /** Blocked partitions by key: agent (events) or agents + agent (telemetry). */
  readonly #blocked = new Map<number, PartitionBacklog>();
  readonly #opcodes: readonly string[];
  readonly #queued = commandStates.indexOf('queued');
  readonly #expire = eventOf('expire');
  readonly #succeed = eventOf('succeed');
  readonly #fail = eventOf('fail');
  readonly #reject = eventOf('reject');
  /** -1 where the command table has no time_out event. */
  readonly #timeOut = eventOf('time_out');

  constructor(world: ModelWorld, opcodes: readonly string[]) {
    this.#w = world;
    this.#opcodes = opcodes;
    this.table = compileCommandTable();
    this.byState = new Int32Array(commandStates.length);
    this.latency = new Int32Array(latencyBucketsMs.length + 1);
  }

  get unfinishedCount(): number {
    return this.#unfinished.size;
  }

  stateName(command: number): CommandState {
    return commandStates[this.#w.commands.cpState[command]!]!;
  }

  isFinal(command: number): boolean {
    return this.table.final[this.#w.commands.cpState[command]!] === 1;
  }

  start(): void {
    const w = this.#w;
    w.after(w.params.expirySweepIntervalMs, Ev.expirySweep);
    w.after(w.params.redeliverySweepIntervalMs, Ev.redeliverySweep);
  }

  // --- commands in -----------------------------------------------------------------------------

  create(agent: number, opcode: string): void {
    const w = this.#w;
    if (w.faults.sqlDown()) {
      w.counts.commands_refused! += 1;
      return;
    }
    const store = w.commands;
    const command = store.add(agent, this.#opcodes.indexOf(opcode), w.nowMs, w.nowMs + w.scenario.commands.ttlMs);
    store.cpState[command] = this.#queued;
    this.byState[this.#queued]! += 1;
    this.#unfinished.add(command);
    w.counts.commands_accepted! += 1;
    this.#dispatchWaiting(agent);
  }

  /** The device's queued commands no gateway holds, in device_seq order, stopping at the first failure. */
  #dispatchWaiting(agent: number): void {
    const w = this.#w;
    const gateway = w.presence.keyGatewayOf(agent);
    if (gateway === -1) return;
    const store = w.commands;
    for (let c = store.agentHead[agent]!, n = 0; c !== -1 && n < 100; c = store.nextOfAgent[c]!) {
      if (store.cpState[c] !== this.#queued || store.cpGateway[c] !== noGateway || store.expiresAtMs[c]! <= w.nowMs) continue;
      n += 1;
      if (!this.#append(c, gateway)) return;
    }
  }

  #append(command: number, gateway: number): boolean {
    const w = this.#w;
    const store = w.commands;
    // first_dispatched_at is set before the append: from then on a device may have it (timed_out, never expired).
    store.cpAppended[command] = 1;
    if (w.faults.busDown()) return false;
    store.cpGateway[command] = gateway;
    store.cpDispatchedAtMs[command] = w.nowMs;
    w.router.append(command, gateway);
    return true;
  }

  /** Presence online: every unfinished, unexpired command of the device goes to that gateway. */
  #redeliver(agent: number, gateway: number): void {
    const w = this.#w;
    const store = w.commands;
    for (let c = store.agentHead[agent]!, n = 0; c !== -1 && n < w.params.redeliverPerPresenceMax; c = store.nextOfAgent[c]!) {
      if (this.table.terminal[store.cpState[c]!] === 1 || store.expiresAtMs[c]! <= w.nowMs) continue;
      n += 1;
      this.#append(c, gateway);
    }
  }

  // --- reports from the gateways -------------------------------------------------------------

  onReport(kind: number, agent: number, command: number, atMs: number): void {
    const w = this.#w;
    const key = kind === Report.telemetry ? w.agents + agent : agent;
    const blocked = this.#blocked.get(key);
    if (blocked !== undefined) {
      blocked.reports.push(kind, agent, command, atMs);
      return;
    }
    if (w.faults.sqlDown()) {
      const blocked: PartitionBacklog = { reports: [kind, agent, command, atMs], attempts: 0, deliveries: 1 };
      this.#blocked.set(key, blocked);
      this.#failed(key, blocked);
      return;
    }
    this.#apply(kind, agent, command, atMs);
  }

  /**
   * A failed attempt: again in place after a pause (250 ms doubling to 8 s, 9 attempts), then at
   * a claim 30-60 s later; after consumerDeliveriesMax claims the first entry is dead-lettered.
   */
  #failed(key: number, blocked: PartitionBacklog): void {
    const w = this.#w;
    blocked.attempts += 1;
    if (blocked.attempts < retryLimits.attemptsMax) {
      w.after(Math.min(retryLimits.pauseMsMax, retryLimits.pauseMsFirst * 2 ** (blocked.attempts - 1)), Ev.eventRetry, key);
      return;
    }
    blocked.attempts = 0;
    blocked.deliveries += 1;
    if (blocked.deliveries > w.params.consumerDeliveriesMax) {
      w.counts.events_dead_lettered! += 1;
      blocked.reports.splice(0, 4);
      blocked.deliveries = 1;
      if (blocked.reports.length === 0) {
        this.#blocked.delete(key);
        return;
      }
    }
    w.after(w.rng.controlPlane.intBetween(w.params.eventRetryMsMin, w.params.eventRetryMsMax), Ev.eventRetry, key);
  }

  onEventRetry(key: number): void {
    const w = this.#w;
    const blocked = this.#blocked.get(key);
    if (blocked === undefined) return;
    if (w.faults.sqlDown()) {
      this.#failed(key, blocked);
      return;
    }
    this.#blocked.delete(key);
    const r = blocked.reports;
    for (let i = 0; i < r.length; i += 4) this.#apply(r[i]!, r[i + 1]!, r[i + 2]!, r[i + 3]!);
  }

  #apply(kind: number, agent: number, command: number, atMs: number): void {
    const w = this.#w;
    switch (kind) {
      case Report.telemetry:
        // Per sample (command -1): one row. A batch frame (sim/model/telemetry.ts): `command` samples, stored all or none, the first sampled at atMs.
        if (command < 1) {
          w.counts.telemetry_stored! += 1;
          return;
        }
        w.counts.telemetry_stored! += command;
        if (atMs >= 0) w.telemetry.stored(command, atMs);
        return;
      case Report.presenceOnline:
        this.#redeliver(agent, w.presence.linkGateway[agent]!);
        return;
      case Report.presenceOffline:
        return;
      case Report.requeue:
        w.commands.cpGateway[command] = noGateway;
        return;
      default:
        this.transition(command, reportEvents.get(kind)!, atMs);
    }
  }

  /** Applies a command-machine event; one the table has no entry for changes nothing. */
  transition(command: number, event: number, atMs: number): boolean {
    const w = this.#w;
    const store = w.commands;
    const from = store.cpState[command]!;
    const to = event < 0 ? illegal : this.table.next[from * this.table.eventCount + event]!;
    if (to === illegal) return false;
    store.cpState[command] = to;
    store.cpUpdatedAtMs[command] = atMs;
    this.byState[from]! -= 1;
    this.byState[to]! += 1;
    if (this.table.terminal[to] === 1) this.#unfinished.delete(command);
    // The stored result frame (late ones too) carries the device's code.
    if (event === this.#succeed || event === this.#fail || event === this.#reject) store.cpCode[command] = store.jCode[command]!;
    if (this.table.resultState[to] === 1) {
      const rttMs = atMs - store.createdAtMs[command]!;
      let bucket = 0;
      while (bucket < latencyBucketsMs.length && rttMs > latencyBucketsMs[bucket]!) bucket += 1;
      this.latency[bucket]! += 1;
      this.latencyRecorder.record(rttMs);
    }
    return true;
  }

  // --- sweeps ----------------------------------------------------------------------------------

  /** Commands past their TTL: `expire` (or `time_out` once a gateway may hold it, where the table has it), oldest first. */
  onExpirySweep(): void {
    const w = this.#w;
    w.after(w.params.expirySweepIntervalMs, Ev.expirySweep);
    if (w.faults.sqlDown()) return;
    const store = w.commands;
    const due = [...this.#unfinished].filter((c) => store.expiresAtMs[c]! <= w.nowMs);
    due.sort((x, y) => store.expiresAtMs[x]! - store.expiresAtMs[y]! || x - y);
    for (const command of due.slice(0, w.params.expirePerSweepMax)) {
      const sent = store.cpAppended[command] === 1 || store.cpState[command] !== this.#queued;
      if (!(sent && this.#timeOut >= 0 && this.transition(command, this.#timeOut, w.nowMs))) this.transition(command, this.#expire, w.nowMs);
    }
  }

  /**
   * Unfinished commands not dispatched for their wait go again to the presence gateway
   * (CommandService.redispatchDue): the wait is the time since the last state change, at least the
   * redispatch interval and at most redispatchIntervalMaxMs. One control plane: no claims to model.
   */
  onRedeliverySweep(): void {
    const w = this.#w;
    w.after(w.params.redeliverySweepIntervalMs, Ev.redeliverySweep);
    if (w.faults.sqlDown()) return;
    const store = w.commands;
    const dueBeforeMs = w.nowMs - w.params.redispatchIntervalMs;
    const longestDueBeforeMs = w.nowMs - Math.max(w.params.redispatchIntervalMs, w.params.redispatchIntervalMaxMs);
    const due = (c: number) => {
      const dispatchedMs = store.cpDispatchedAtMs[c]!;
      if (dispatchedMs === -1) return true;
      return dispatchedMs <= dueBeforeMs && (dispatchedMs <= longestDueBeforeMs || 2 * dispatchedMs - store.cpUpdatedAtMs[c]! <= w.nowMs);
    };
    const rows = [...this.#unfinished].filter((c) => store.expiresAtMs[c]! > w.nowMs && due(c));
    const dispatchedMs = (c: number) => Math.max(0, store.cpDispatchedAtMs[c]!);
    rows.sort((x, y) => dispatchedMs(x) - dispatchedMs(y) || store.createdAtMs[x]! - store.createdAtMs[y]! || x - y);
    const failedAgents = new Set<number>();
    for (const command of rows.slice(0, w.params.redispatchPerSweepMax)) {
      const agent = store.agent[command]!;
      if (failedAgents.has(agent)) continue;
      const gateway = w.presence.keyGatewayOf(agent);
      if (gateway === -1) {
        store.cpDispatchedAtMs[command] = w.nowMs;
        continue;
      }
      if (!this.#append(command, gateway)) failedAgents.add(agent);
    }
  }

  // --- the end of a run ----------------------------------------------------------------------

  /** `state` or `state:CODE` per command, as sim/outcomes.ts counts the full tier's rows. */
  outcomesByCode(): Record<string, number> {
    const store = this.#w.commands;
    const counts: Record<string, number> = {};
    for (let c = 0; c < store.count; c += 1) {
      const code = store.cpCode[c]!;
      const key = outcomeKey(commandStates[store.cpState[c]!]!, code === noCode ? undefined : store.codes[code]);
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }
}
