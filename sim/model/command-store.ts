/**
 * Every command of a model run, one index each, in typed arrays: what the control plane records
 * (state, times, the gateway it was dispatched to), what a gateway holds (the delivery), and what
 * the agent's journal says. The three views are kept apart by prefix (`cp`, `dlv`, `j`), as they
 * are kept apart in the real system; a module changes only its own.
 *
 * Each agent's commands form a list in creation (device_seq) order; a command leaves it once
 * nothing can happen to it any more (see `settled` in sim/model/agent-commands.ts).
 */
export const commandStoreLimits = Object.freeze({
  capacityInitial: 1_024,
  /** About 80 bytes each: 4 GiB. A run creating more is mis-specified. */
  commandsMax: 50_000_000,
});

export const noGateway = 255;
export const noCode = 0;

/** Journal stage on the device (agent/command-journal.ts). */
export const Stage = { none: 0, received: 1, executing: 2, finished: 3 } as const;
/** Result status as the device reports it. */
export const Status = { none: 0, succeeded: 1, failed: 2, rejected: 3 } as const;

type NumberArray = Uint8Array | Uint16Array | Int32Array | Float64Array;

function resized<T extends NumberArray>(array: T, length: number): T {
  const next = new (array.constructor as new (n: number) => T)(length);
  next.set(array);
  return next;
}

export class CommandStore {
  count = 0;
  // identity
  agent = new Int32Array(commandStoreLimits.capacityInitial);
  opcode = new Uint8Array(commandStoreLimits.capacityInitial);
  createdAtMs = new Float64Array(commandStoreLimits.capacityInitial);
  expiresAtMs = new Float64Array(commandStoreLimits.capacityInitial);
  // control plane
  cpState = new Uint8Array(commandStoreLimits.capacityInitial);
  /** -1: never dispatched. */
  cpDispatchedAtMs = new Float64Array(commandStoreLimits.capacityInitial);
  /** When its state last changed (created, or a transition): the redelivery sweep's wait grows from it (commands.updated_at). */
  cpUpdatedAtMs = new Float64Array(commandStoreLimits.capacityInitial);
  cpGateway = new Uint8Array(commandStoreLimits.capacityInitial);
  /** Ever appended to a gateway's stream (a gateway may hold it). */
  cpAppended = new Uint8Array(commandStoreLimits.capacityInitial);
  /** Code of the result the control plane recorded (index into `codes`), noCode when none. */
  cpCode = new Uint16Array(commandStoreLimits.capacityInitial);
  // the gateway's delivery
  dlvGateway = new Uint8Array(commandStoreLimits.capacityInitial);
  dlvAttempt = new Uint8Array(commandStoreLimits.capacityInitial);
  dlvAcked = new Uint8Array(commandStoreLimits.capacityInitial);
  dlvLink = new Int32Array(commandStoreLimits.capacityInitial);
  /** Bumped whenever the delivery starts or ends: its timers carry it. */
  dlvEpoch = new Int32Array(commandStoreLimits.capacityInitial);
  /** When COMMAND_DELIVERY was last written: a duplicate entry re-asks the device at most once per ACK timeout after it. */
  dlvSentAtMs = new Float64Array(commandStoreLimits.capacityInitial);
  // the agent's journal
  jStage = new Uint8Array(commandStoreLimits.capacityInitial);
  jStatus = new Uint8Array(commandStoreLimits.capacityInitial);
  jCode = new Uint16Array(commandStoreLimits.capacityInitial);
  jConfirmed = new Uint8Array(commandStoreLimits.capacityInitial);
  /** When the result was last written to a ready session, -1 never. */
  jResultSentMs = new Float64Array(commandStoreLimits.capacityInitial);
  /** Next command of the same agent, -1 at the end. */
  nextOfAgent = new Int32Array(commandStoreLimits.capacityInitial);

  /** Per agent: first and last command of its list, -1 when empty. */
  readonly agentHead: Int32Array;
  readonly agentTail: Int32Array;

  constructor(agents: number) {
    this.agentHead = new Int32Array(agents).fill(-1);
    this.agentTail = new Int32Array(agents).fill(-1);
  }

  /** Error codes by index; index 0 is "no code". */
  readonly codes: string[] = [''];
  readonly #codeIndex = new Map<string, number>();

  codeOf(code: string): number {
    let index = this.#codeIndex.get(code);
    if (index === undefined) {
      index = this.codes.length;
      this.codes.push(code);
      this.#codeIndex.set(code, index);
    }
    return index;
  }

  add(agent: number, opcode: number, createdAtMs: number, expiresAtMs: number): number {
    if (this.count === this.agent.length) this.#grow();
    const id = this.count++;
    this.agent[id] = agent;
    this.opcode[id] = opcode;
    this.createdAtMs[id] = createdAtMs;
    this.expiresAtMs[id] = expiresAtMs;
    this.cpDispatchedAtMs[id] = -1;
    this.cpUpdatedAtMs[id] = createdAtMs;
    this.cpGateway[id] = noGateway;
    this.dlvGateway[id] = noGateway;
    this.jResultSentMs[id] = -1;
    this.nextOfAgent[id] = -1;
    const tail = this.agentTail[agent]!;
    if (tail === -1) this.agentHead[agent] = id;
    else this.nextOfAgent[tail] = id;
    this.agentTail[agent] = id;
    return id;
  }

  /** Unlinks the agent's commands for which `settled` holds (nothing can happen to them any more). */
  prune(agent: number, settled: (command: number) => boolean): void {
    let previous = -1;
    for (let c = this.agentHead[agent]!; c !== -1; c = this.nextOfAgent[c]!) {
      if (!settled(c)) {
        previous = c;
        continue;
      }
      if (previous === -1) this.agentHead[agent] = this.nextOfAgent[c]!;
      else this.nextOfAgent[previous] = this.nextOfAgent[c]!;
      if (this.agentTail[agent] === c) this.agentTail[agent] = previous;
    }
  }

  #grow(): void {
    const length = this.agent.length;
    if (length >= commandStoreLimits.commandsMax) throw new RangeError(`more than ${commandStoreLimits.commandsMax} commands in one model run`);
    const next = Math.min(commandStoreLimits.commandsMax, length * 2);
    this.agent = resized(this.agent, next);
    this.opcode = resized(this.opcode, next);
    this.createdAtMs = resized(this.createdAtMs, next);
    this.expiresAtMs = resized(this.expiresAtMs, next);
    this.cpState = resized(this.cpState, next);
    this.cpDispatchedAtMs = resized(this.cpDispatchedAtMs, next);
    this.cpUpdatedAtMs = resized(this.cpUpdatedAtMs, next);
    this.cpGateway = resized(this.cpGateway, next);
    this.cpAppended = resized(this.cpAppended, next);
    this.cpCode = resized(this.cpCode, next);
    this.dlvGateway = resized(this.dlvGateway, next);
    this.dlvAttempt = resized(this.dlvAttempt, next);
    this.dlvAcked = resized(this.dlvAcked, next);
    this.dlvLink = resized(this.dlvLink, next);
    this.dlvEpoch = resized(this.dlvEpoch, next);
    this.dlvSentAtMs = resized(this.dlvSentAtMs, next);
    this.jStage = resized(this.jStage, next);
    this.jStatus = resized(this.jStatus, next);
    this.jCode = resized(this.jCode, next);
    this.jConfirmed = resized(this.jConfirmed, next);
    this.jResultSentMs = resized(this.jResultSentMs, next);
    this.nextOfAgent = resized(this.nextOfAgent, next);
  }
}
