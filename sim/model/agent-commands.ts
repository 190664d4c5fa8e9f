import { SeededRandom } from '../../core/random/prng.js';
import { noGateway, Stage, Status } from './command-store.js';
import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import { deadlinePassedCode, expiredCode, interruptedCode, kernelFaultCode, opcodeFailureCodes } from './params.js';
import { Side } from './presence.js';
import type { ModelWorld } from './world.js';

/**
 * The agent's side of a command (agent/agent-core.ts over its journal), on its two lanes:
 *
 * - intake, at once on arrival: a known command id is answered from the journal (the result, or
 *   an ACK of its stage) and never run again; a new one is checked (deadline on the gateway's
 *   clock: expired is rejected COMMAND_EXPIRED, not journaled, answered once), journaled
 *   `received`, acknowledged, and queued to run;
 * - execution, one command at a time in the order taken: just before the kernel call the deadline
 *   is checked again (passed while it waited: rejected AGENT_COMMAND_EXPIRED, journaled, never
 *   run), then `executing` (ACK), the kernel call, `finished` (RESULT).
 *
 * The kernel answers by opcode as the mock kernel does. The scenario's kernel faults are drawn
 * from the agent's own mock-kernel stream as the mock draws them, per call: the latency fault
 * when the call starts, the status fault when it is served. Deadlines are judged on the gateway's
 * clock as the agent estimates it from its session's AUTH (presence.ts), on its own skewed clock
 * before its first session.
 *
 * A journaled answer counts as confirmed once the echo of a heartbeat sent after it arrives;
 * unconfirmed ones are sent again after the next AUTH_ACK. A crash keeps the journal and loses
 * the queue: at boot an entry left executing is reported failed (AGENT_INTERRUPTED), one left
 * received is queued to run again.
 */
export class AgentCommands {
  readonly #w: ModelWorld;
  readonly #opcodes: readonly string[];
  /** Per agent: the execution lane, a queue of commands linked through laneNext; -1 when empty. */
  readonly #laneHead: Int32Array;
  readonly #laneTail: Int32Array;
  #laneNext: Int32Array;
  /** Per agent: the command in the kernel, -1 when the lane is idle. */
  readonly #running: Int32Array;
  /** Per agent, created at its first kernel call when the scenario has kernel faults. */
  readonly #kernelRandoms = new Map<number, SeededRandom>();
  readonly #statusFault: { readonly numerator: number; readonly denominator: number } | undefined;
  readonly #latencyFault: { readonly numerator: number; readonly denominator: number; readonly delayMs: number } | undefined;
  readonly #isSettled = (command: number): boolean => this.#settled(command);
  /** Entries queued again at boot: they get the delivery checks again, so a passed deadline is COMMAND_EXPIRED. */
  readonly #recovered = new Set<number>();

  constructor(world: ModelWorld, opcodes: readonly string[]) {
    this.#w = world;
    this.#opcodes = opcodes;
    this.#laneHead = new Int32Array(world.agents).fill(-1);
    this.#laneTail = new Int32Array(world.agents).fill(-1);
    this.#laneNext = new Int32Array(1_024).fill(-1);
    this.#running = new Int32Array(world.agents).fill(-1);
    const { kernelErrors, kernelLatency } = world.scenario.faults;
    this.#statusFault = kernelErrors?.ratio;
    this.#latencyFault = kernelLatency ? { ...kernelLatency.ratio, delayMs: kernelLatency.delayMs } : undefined;
  }

  // --- intake ----------------------------------------------------------------------------------

  onDelivery(agent: number, command: number, link: number, seq: number): void {
    const w = this.#w;
    if (!w.presence.acceptAtAgent(agent, link, seq) || w.presence.agentSide[agent] !== Side.ready) return;
    const store = w.commands;
    const stage = store.jStage[command]!;
    if (stage === Stage.finished) {
      this.#sendResult(agent, command, true);
      return;
    }
    if (stage !== Stage.none) {
      this.#send(agent, stage === Stage.received ? Ev.ackAtGateway : Ev.startAtGateway, command);
      return;
    }
    if (this.#deadlinePassed(agent, command)) {
      this.#reject(agent, command);
      return;
    }
    store.jStage[command] = Stage.received;
    this.#send(agent, Ev.ackAtGateway, command);
    this.#queue(agent, command);
  }

  #deadlinePassed(agent: number, command: number): boolean {
    const w = this.#w;
    return w.nowMs + w.presence.deadlineAheadMs[agent]! >= w.commands.expiresAtMs[command]!;
  }

  /** Refused at intake: answered once, not journaled, so a redelivery is checked again. */
  #reject(agent: number, command: number): void {
    const store = this.#w.commands;
    this.#w.counts.rejections! += 1;
    store.jStatus[command] = Status.rejected;
    store.jCode[command] = store.codeOf(expiredCode);
    this.#sendResult(agent, command, false);
  }

  // --- the execution lane ------------------------------------------------------------------------

  #queue(agent: number, command: number): void {
    if (command >= this.#laneNext.length) {
      const next = new Int32Array(Math.max(command + 1, this.#laneNext.length * 2)).fill(-1);
      next.set(this.#laneNext);
      this.#laneNext = next;
    }
    this.#laneNext[command] = -1;
    const tail = this.#laneTail[agent]!;
    if (tail === -1) this.#laneHead[agent] = command;
    else this.#laneNext[tail] = command;
    this.#laneTail[agent] = command;
    if (this.#running[agent] === -1) this.#startNext(agent);
  }

  #startNext(agent: number): void {
    const w = this.#w;
    const store = w.commands;
    for (;;) {
      const command = this.#laneHead[agent]!;
      if (command === -1) return;
      this.#laneHead[agent] = this.#laneNext[command]!;
      if (this.#laneHead[agent] === -1) this.#laneTail[agent] = -1;
      const recovered = this.#recovered.delete(command);
      if (this.#deadlinePassed(agent, command)) {
        w.counts.rejections! += 1;
        this.#finish(agent, command, Status.rejected, recovered ? expiredCode : deadlinePassedCode);
        continue;
      }
      store.jStage[command] = Stage.executing;
      this.#send(agent, Ev.startAtGateway, command);
      this.#running[agent] = command;
      const delayMs = this.#kernelDelayMs(agent) + w.params.executionServiceMs;
      if (delayMs === 0) {
        this.#served(agent, command);
        continue;
      }
      w.after(delayMs, Ev.executionDone, agent, command, w.fleet.bootEpoch[agent]!);
      return;
    }
  }

  onExecutionDone(agent: number, command: number, bootEpoch: number): void {
    if (this.#w.fleet.bootEpoch[agent] !== bootEpoch || this.#running[agent] !== command) return;
    this.#served(agent, command);
    this.#startNext(agent);
  }

  /** The kernel answered: a status fault, or the opcode's own outcome. */
  #served(agent: number, command: number): void {
    const w = this.#w;
    this.#running[agent] = -1;
    w.counts.kernel_calls! += 1;
    const code = this.#statusFaultFires(agent) ? kernelFaultCode : opcodeFailureCodes[this.#opcodes[w.commands.opcode[command]!]!];
    w.counts.executions! += 1;
    this.#finish(agent, command, code === undefined ? Status.succeeded : Status.failed, code);
  }

  #kernelRandom(agent: number): SeededRandom {
    let random = this.#kernelRandoms.get(agent);
    if (random === undefined) {
      random = new SeededRandom(this.#w.fleet.kernelSeed[agent]!);
      this.#kernelRandoms.set(agent, random);
    }
    return random;
  }

  #kernelDelayMs(agent: number): number {
    const fault = this.#latencyFault;
    if (fault === undefined || fault.numerator === 0) return 0;
    return this.#kernelRandom(agent).intBelow(fault.denominator) < fault.numerator ? fault.delayMs : 0;
  }

  #statusFaultFires(agent: number): boolean {
    const fault = this.#statusFault;
    if (fault === undefined || fault.numerator === 0) return false;
    return this.#kernelRandom(agent).intBelow(fault.denominator) < fault.numerator;
  }

  #finish(agent: number, command: number, status: number, code: string | undefined): void {
    const store = this.#w.commands;
    store.jStage[command] = Stage.finished;
    store.jStatus[command] = status;
    store.jCode[command] = code === undefined ? 0 : store.codeOf(code);
    store.jConfirmed[command] = 0;
    store.jResultSentMs[command] = -1;
    this.#sendResult(agent, command, true);
  }

  // --- answers ---------------------------------------------------------------------------------

  /** A journaled answer is tracked for confirmation; a refusal that was never journaled is sent once. */
  #sendResult(agent: number, command: number, journaled: boolean): void {
    const w = this.#w;
    if (w.presence.agentSide[agent] !== Side.ready) return;
    if (journaled) w.commands.jResultSentMs[command] = w.nowMs;
    this.#send(agent, Ev.resultAtGateway, command);
  }

  /** ACKs and results go out only on a ready session (AgentCore #sendAck, #sendResult). */
  #send(agent: number, kind: number, command: number): void {
    if (this.#w.presence.agentSide[agent] === Side.ready) this.#w.presence.sendFrame(Dir.toGateway, agent, kind, command);
  }

  /** The echo of a heartbeat sent at `heartbeatSentMs` proves the gateway read every answer sent before it. */
  confirm(agent: number, heartbeatSentMs: number): void {
    const store = this.#w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      const sentMs = store.jResultSentMs[c]!;
      if (store.jStage[c] === Stage.finished && store.jConfirmed[c] === 0 && sentMs >= 0 && sentMs <= heartbeatSentMs) store.jConfirmed[c] = 1;
    }
    store.prune(agent, this.#isSettled);
  }

  /** After AUTH_ACK: journaled answers the gateway may not have received are sent again. */
  onReady(agent: number): void {
    const store = this.#w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      if (store.jStage[c] === Stage.finished && store.jConfirmed[c] === 0) this.#sendResult(agent, c, true);
    }
  }

  /** The process died: the queue is gone with it (the journal stays). */
  onCrash(agent: number): void {
    this.#laneHead[agent] = -1;
    this.#laneTail[agent] = -1;
    this.#running[agent] = -1;
  }

  /** At boot, entries a previous run left: executing ones are reported failed, received ones queued to run. */
  recover(agent: number): void {
    const w = this.#w;
    const store = w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      if (store.jStage[c] === Stage.executing) {
        w.counts.interrupted! += 1;
        this.#finish(agent, c, Status.failed, interruptedCode);
      } else if (store.jStage[c] === Stage.received) {
        this.#recovered.add(c);
        this.#queue(agent, c);
      }
    }
  }

  /** Nothing can happen to the command any more: final at the control plane, no delivery, the journal settled. */
  #settled(command: number): boolean {
    const store = this.#w.commands;
    const stage = store.jStage[command];
    const journalSettled = stage === Stage.none || (stage === Stage.finished && store.jConfirmed[command] === 1);
    return journalSettled && this.#w.controlPlane.isFinal(command) && store.dlvGateway[command] === noGateway;
  }

  /** The gateway's view of a result frame as a report kind. */
  static reportOf(status: number): number {
    return status === Status.succeeded ? Report.succeeded : status === Status.failed ? Report.failed : Report.rejected;
  }
}
