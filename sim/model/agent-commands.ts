import { SeededRandom } from '../prng.js';
import { noGateway, Stage, Status } from './command-store.js';
import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import { expiredCode, interruptedCode, kernelFaultCode, opcodeFailureCodes } from './params.js';
import { Side } from './presence.js';
import type { ModelWorld } from './world.js';

/**
 * The agent's side of a command (agent/agent-core.ts over its journal): a delivery of a known
 * command id is answered from the journal (the result, or an ACK of its stage) and never run
 * again; a new one is checked against the agent's own clock (expired: rejected, not journaled),
 * journaled `received` (ACK), `executing` (ACK), run through the kernel and `finished` (RESULT).
 * The kernel answers by opcode as the mock kernel does, and a scenario's status faults are drawn
 * from the agent's own mock-kernel stream, one draw per call, as the full tier draws them.
 *
 * A result counts as confirmed once the echo of a heartbeat sent after it arrives; results not
 * confirmed are sent again after the next AUTH_ACK. A crash keeps the journal: an entry left
 * executing is reported failed (AGENT_INTERRUPTED), one left received runs at boot.
 */
export class AgentCommands {
  readonly #w: ModelWorld;
  readonly #opcodes: readonly string[];
  /** Per agent: when its current command finishes (executionServiceMs > 0: one command at a time). */
  readonly #busyUntilMs: Float64Array;
  /** Per agent, created at its first kernel call when the scenario has kernel faults. */
  readonly #kernelRandoms = new Map<number, SeededRandom>();
  readonly #kernelFault: { readonly numerator: number; readonly denominator: number } | undefined;
  readonly #isSettled = (command: number): boolean => this.#settled(command);

  constructor(world: ModelWorld, opcodes: readonly string[]) {
    this.#w = world;
    this.#opcodes = opcodes;
    this.#busyUntilMs = new Float64Array(world.agents);
    this.#kernelFault = world.scenario.faults.kernelErrors?.ratio;
  }

  onDelivery(agent: number, command: number, link: number, seq: number): void {
    const w = this.#w;
    if (!w.presence.acceptAtAgent(agent, link, seq) || w.presence.agentSide[agent] !== Side.ready) return;
    const store = w.commands;
    const stage = store.jStage[command]!;
    if (stage === Stage.finished) {
      this.#sendResult(agent, command);
      return;
    }
    if (stage !== Stage.none) {
      this.#send(agent, stage === Stage.received ? Ev.ackAtGateway : Ev.startAtGateway, command);
      return;
    }
    if (this.#expired(agent, command)) {
      this.#reject(agent, command);
      return;
    }
    store.jStage[command] = Stage.received;
    this.#send(agent, Ev.ackAtGateway, command);
    this.#execute(agent, command);
  }

  #expired(agent: number, command: number): boolean {
    const w = this.#w;
    return w.nowMs + w.fleet.skewMs[agent]! >= w.commands.expiresAtMs[command]!;
  }

  /** Refused commands are answered but not journaled: a redelivery is checked again. */
  #reject(agent: number, command: number): void {
    const store = this.#w.commands;
    this.#w.counts.rejections! += 1;
    store.jStatus[command] = Status.rejected;
    store.jCode[command] = store.codeOf(expiredCode);
    this.#send(agent, Ev.resultAtGateway, command);
  }

  #execute(agent: number, command: number): void {
    const w = this.#w;
    w.commands.jStage[command] = Stage.executing;
    this.#send(agent, Ev.startAtGateway, command);
    const serviceMs = w.params.executionServiceMs;
    if (serviceMs === 0) {
      this.#finishKernelCall(agent, command);
      return;
    }
    const startMs = Math.max(w.nowMs, this.#busyUntilMs[agent]!);
    this.#busyUntilMs[agent] = startMs + serviceMs;
    w.at(startMs + serviceMs, Ev.executionDone, agent, command);
  }

  onExecutionDone(agent: number, command: number): void {
    if (this.#w.commands.jStage[command] === Stage.executing && this.#w.fleet.up[agent] === 1) this.#finishKernelCall(agent, command);
  }

  #finishKernelCall(agent: number, command: number): void {
    const w = this.#w;
    w.counts.kernel_calls! += 1;
    const code = this.#kernelFails(agent) ? kernelFaultCode : opcodeFailureCodes[this.#opcodes[w.commands.opcode[command]!]!];
    this.#finish(agent, command, code === undefined ? Status.succeeded : Status.failed, code);
    w.counts.executions! += 1;
  }

  #kernelFails(agent: number): boolean {
    const fault = this.#kernelFault;
    if (fault === undefined || fault.numerator === 0) return false;
    let random = this.#kernelRandoms.get(agent);
    if (random === undefined) {
      random = new SeededRandom(this.#w.fleet.kernelSeed[agent]!);
      this.#kernelRandoms.set(agent, random);
    }
    return random.intBelow(fault.denominator) < fault.numerator;
  }

  #finish(agent: number, command: number, status: number, code: string | undefined): void {
    const store = this.#w.commands;
    store.jStage[command] = Stage.finished;
    store.jStatus[command] = status;
    store.jCode[command] = code === undefined ? 0 : store.codeOf(code);
    store.jConfirmed[command] = 0;
    store.jResultSentMs[command] = -1;
    this.#sendResult(agent, command);
  }

  #sendResult(agent: number, command: number): void {
    const w = this.#w;
    if (w.presence.agentSide[agent] !== Side.ready) return;
    if (w.commands.jStatus[command] !== Status.rejected) w.commands.jResultSentMs[command] = w.nowMs;
    this.#send(agent, Ev.resultAtGateway, command);
  }

  /** ACKs and results go out only on a ready session (AgentCore #sendAck, #sendResult). */
  #send(agent: number, kind: number, command: number): void {
    if (this.#w.presence.agentSide[agent] === Side.ready) this.#w.presence.sendFrame(Dir.toGateway, agent, kind, command);
  }

  /** The echo of a heartbeat sent at `heartbeatSentMs` proves the gateway read every result sent before it. */
  confirm(agent: number, heartbeatSentMs: number): void {
    const store = this.#w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      const sentMs = store.jResultSentMs[c]!;
      if (store.jStage[c] === Stage.finished && store.jConfirmed[c] === 0 && sentMs >= 0 && sentMs <= heartbeatSentMs) store.jConfirmed[c] = 1;
    }
    store.prune(agent, this.#isSettled);
  }

  /** After AUTH_ACK: results the gateway may not have received are sent again. */
  onReady(agent: number): void {
    const store = this.#w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      if (store.jStage[c] === Stage.finished && store.jConfirmed[c] === 0 && store.jStatus[c] !== Status.rejected) this.#sendResult(agent, c);
    }
  }

  /** At boot, entries a previous run left: executing ones are reported failed, received ones run. */
  recover(agent: number): void {
    const w = this.#w;
    const store = w.commands;
    for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) {
      if (store.jStage[c] === Stage.executing) {
        w.counts.interrupted! += 1;
        this.#finish(agent, c, Status.failed, interruptedCode);
      } else if (store.jStage[c] === Stage.received) {
        if (this.#expired(agent, c)) {
          w.counts.rejections! += 1;
          this.#finish(agent, c, Status.rejected, expiredCode);
        } else {
          this.#execute(agent, c);
        }
      }
    }
  }

  /** Nothing can happen to the command any more: final at the control plane, no delivery, the journal settled. */
  #settled(command: number): boolean {
    const store = this.#w.commands;
    const journalSettled = store.jStage[command] === Stage.none || (store.jStage[command] === Stage.finished && (store.jConfirmed[command] === 1 || store.jStatus[command] === Status.rejected));
    return journalSettled && this.#w.controlPlane.isFinal(command) && store.dlvGateway[command] === noGateway;
  }

  /** The gateway's view of a result frame as a report kind. */
  static reportOf(status: number): number {
    return status === Status.succeeded ? Report.succeeded : status === Status.failed ? Report.failed : Report.rejected;
  }
}
