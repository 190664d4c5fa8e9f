import type { SeededRandom } from '../../core/random/prng.js';
import type { ScenarioLinkFaults } from '../scenario.js';

/**
 * The wire between agents and gateways, as chaos/network.ts models it, without objects per link:
 * each agent has at most one link, so per-direction state is an array indexed by agent. A frame
 * is a scheduled arrival event; its fate is drawn when it is sent, in the full tier's order:
 * partition, loss, duplication, then per copy a delay in [delayMsMin, delayMsMax] and a
 * reordering hold-back. Without reordering a direction stays FIFO.
 *
 * Frame numbering is the replay guard's (core/protocol/replay-guard.ts): a frame whose sequence
 * number is not above the highest one accepted in its direction (a duplicate, or a frame held back
 * behind a later one) is refused on arrival. The in-flight bound of chaos/network.ts (1,024 frames per
 * direction) is not modelled: a session never has more than a few frames in flight.
 */
export const Dir = { toGateway: 0, toAgent: 1 } as const;
export type Direction = (typeof Dir)[keyof typeof Dir];

interface Faults {
  readonly lossNum: number;
  readonly lossDen: number;
  readonly dupNum: number;
  readonly dupDen: number;
  readonly reorderNum: number;
  readonly reorderDen: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  readonly reorderDelayMsMax: number;
}

export interface ModelPartition {
  readonly startMs: number;
  readonly endMs: number;
  /** Gateway indexes cut off; undefined: all. */
  readonly gateways: readonly number[] | undefined;
  /** 1 for agents cut off; undefined: all. */
  readonly agents: Uint8Array | undefined;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  partitioned: number;
  queueFull: number;
  duplicated: number;
  reordered: number;
}

function resolveFaults(faults: ScenarioLinkFaults | undefined): Faults {
  const f = faults ?? {};
  const delayMsMin = f.delayMsMin ?? 1;
  const delayMsMax = f.delayMsMax ?? delayMsMin;
  return {
    lossNum: f.loss?.numerator ?? 0, lossDen: f.loss?.denominator ?? 1,
    dupNum: f.duplicate?.numerator ?? 0, dupDen: f.duplicate?.denominator ?? 1,
    reorderNum: f.reorder?.numerator ?? 0, reorderDen: f.reorder?.denominator ?? 1,
    delayMsMin, delayMsMax, reorderDelayMsMax: f.reorderDelayMsMax ?? delayMsMax + 1,
  };
}

const healthy = resolveFaults(undefined);

export interface NetworkOptions {
  readonly agents: number;
  readonly gateways: number;
  readonly random: SeededRandom;
  readonly faults: ScenarioLinkFaults | undefined;
  /** Overrides by gateway index. */
  readonly gatewayFaults: ReadonlyArray<ScenarioLinkFaults | undefined>;
}

export class ModelNetwork {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, partitioned: 0, queueFull: 0, duplicated: 0, reordered: 0 };
  readonly #random: SeededRandom;
  #byGateway: Faults[];
  #partitions: ModelPartition[] = [];
  readonly #lastDueMs: [Float64Array, Float64Array];
  readonly #nextSeq: [Int32Array, Int32Array];
  readonly #highestSeq: [Int32Array, Int32Array];
  /** Arrival times of the frame just sent (one or two copies); read after send(). */
  readonly arrivals = new Float64Array(2);
  /** Sequence number of the frame just sent. */
  seq = 0;

  constructor(options: NetworkOptions) {
    this.#random = options.random;
    const defaults = resolveFaults(options.faults);
    this.#byGateway = Array.from({ length: options.gateways }, (_, g) => (options.gatewayFaults[g] ? resolveFaults(options.gatewayFaults[g]) : defaults));
    const n = options.agents;
    this.#lastDueMs = [new Float64Array(n), new Float64Array(n)];
    this.#nextSeq = [new Int32Array(n), new Int32Array(n)];
    this.#highestSeq = [new Int32Array(n), new Int32Array(n)];
  }

  addPartition(partition: ModelPartition): void {
    this.#partitions.push(partition);
  }

  /** The liveness phase: every fault and partition removed; frames in flight still arrive. */
  heal(): void {
    this.#byGateway = this.#byGateway.map(() => healthy);
    this.#partitions = [];
  }

  /** A new connection of `agent`: both directions start from sequence 1 and an empty pipe. */
  openLink(agent: number): void {
    for (const dir of [Dir.toGateway, Dir.toAgent]) {
      this.#lastDueMs[dir][agent] = 0;
      this.#nextSeq[dir][agent] = 0;
      this.#highestSeq[dir][agent] = 0;
    }
  }

  baseDelayMs(gateway: number): number {
    return this.#byGateway[gateway]!.delayMsMin;
  }

  /** When an orderly close reaches the peer: after the base delay and after every frame already in flight (FIN after data). */
  closeNoticeDueMs(dir: Direction, agent: number, gateway: number, nowMs: number): number {
    return Math.max(nowMs + this.baseDelayMs(gateway), this.#lastDueMs[dir][agent]!);
  }

  isPartitioned(agent: number, gateway: number, nowMs: number): boolean {
    for (const p of this.#partitions) {
      if (nowMs < p.startMs || nowMs >= p.endMs) continue;
      if (p.gateways !== undefined && !p.gateways.includes(gateway)) continue;
      if (p.agents !== undefined && p.agents[agent] !== 1) continue;
      return true;
    }
    return false;
  }

  /**
   * Sends one frame; returns how many copies will arrive (0: dropped), their arrival times in
   * `arrivals` and the frame's sequence number in `seq`.
   */
  send(dir: Direction, agent: number, gateway: number, nowMs: number): number {
    const stats = this.stats;
    stats.sent += 1;
    const seq = ++this.#nextSeq[dir][agent]!;
    this.seq = seq;
    if (this.#partitions.length > 0 && this.isPartitioned(agent, gateway, nowMs)) {
      stats.partitioned += 1;
      return 0;
    }
    const f = this.#byGateway[gateway]!;
    const random = this.#random;
    if (f.lossNum > 0 && random.chance(f.lossNum, f.lossDen)) {
      stats.lost += 1;
      return 0;
    }
    const copies = f.dupNum > 0 && random.chance(f.dupNum, f.dupDen) ? 2 : 1;
    if (copies === 2) stats.duplicated += 1;
    for (let copy = 0; copy < copies; copy += 1) {
      let dueMs = nowMs + (f.delayMsMax === f.delayMsMin ? f.delayMsMin : random.intBetween(f.delayMsMin, f.delayMsMax));
      if (f.reorderNum > 0 && random.chance(f.reorderNum, f.reorderDen)) {
        stats.reordered += 1;
        dueMs += random.intBetween(1, Math.max(1, f.reorderDelayMsMax));
      } else {
        const last = this.#lastDueMs[dir];
        if (dueMs < last[agent]!) dueMs = last[agent]!;
        last[agent] = dueMs;
      }
      this.arrivals[copy] = dueMs;
      stats.delivered += 1;
    }
    return copies;
  }

  /** The replay guard on arrival: false for a frame not above the highest accepted in its direction. */
  acceptSeq(dir: Direction, agent: number, seq: number): boolean {
    const highest = this.#highestSeq[dir];
    if (seq <= highest[agent]!) return false;
    highest[agent] = seq;
    return true;
  }
}
