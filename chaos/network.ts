import type { Clock, Scheduler } from '../core/ports/ports.js';
import type { SeededRandom } from '../core/random/prng.js';

/**
 * The simulated network between agents and gateways (TigerBeetle's packet_simulator): every
 * link is a pair of bounded one-way queues whose deliveries are timers on the virtual scheduler.
 * Every fault is a named option below; probabilities are integer ratios drawn from the seeded
 * PRNG, so a run replays exactly.
 */

/** numerator / denominator, integers, 0 <= numerator <= denominator, denominator > 0. */
export interface Ratio {
  readonly numerator: number;
  readonly denominator: number;
}

export interface LinkFaults {
  /** Each frame is dropped with this probability (the connection stays up, like a lossy middlebox). */
  readonly loss?: Ratio;
  /** Every frame takes delayMsMin plus a uniform jitter up to delayMsMax (both default 1 ms). */
  readonly delayMsMin?: number;
  readonly delayMsMax?: number;
  /** Each frame is delivered twice with this probability (the copy after its own delay). */
  readonly duplicate?: Ratio;
  /**
   * Each frame is held back by up to reorderDelayMsMax extra with this probability, so later
   * frames overtake it. Without it a direction is FIFO (like TCP).
   */
  readonly reorder?: Ratio;
  readonly reorderDelayMsMax?: number;
}

/** While nowMs is in [startMs, endMs), frames between the named sides are dropped. */
export interface Partition {
  readonly startMs: number;
  readonly endMs: number;
  /** Gateways cut off; absent: all. */
  readonly gatewayIds?: readonly string[];
  /** Agents cut off; absent: all. */
  readonly agentIds?: ReadonlySet<string>;
}

export type Direction = 'to_gateway' | 'to_agent';

/** One end of a link: where frames and the close notice arrive. */
export interface LinkEndpoint {
  deliver(bytes: Uint8Array): void;
  closed(): void;
}

export interface NetworkObserver {
  /** A frame was handed to the network by its sender (before any fault). */
  sent?(link: SimLink, direction: Direction, bytes: Uint8Array): void;
  delivered?(link: SimLink, direction: Direction, bytes: Uint8Array): void;
  dropped?(link: SimLink, direction: Direction, reason: 'loss' | 'partition' | 'queue_full' | 'closed'): void;
}

export interface SimNetworkOptions {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly random: SeededRandom;
  /** Frames in flight per direction of a link; more are dropped (a full socket buffer). */
  readonly queueFramesMax?: number;
  readonly observer?: NetworkObserver;
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

const noFaults: LinkFaults = {};

export function checkRatio(ratio: Ratio, name: string): void {
  const { numerator, denominator } = ratio;
  if (!(Number.isSafeInteger(numerator) && Number.isSafeInteger(denominator) && denominator > 0 && numerator >= 0 && numerator <= denominator)) {
    throw new RangeError(`${name} must be an integer ratio in [0, 1], got ${numerator}/${denominator}`);
  }
}

export function checkLinkFaults(faults: LinkFaults): void {
  for (const name of ['loss', 'duplicate', 'reorder'] as const) {
    const ratio = faults[name];
    if (ratio !== undefined) checkRatio(ratio, name);
  }
  const min = faults.delayMsMin ?? 1;
  const max = faults.delayMsMax ?? min;
  if (!(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min >= 0 && max >= min)) throw new RangeError('delays must be integers with 0 <= delayMsMin <= delayMsMax');
  const reorderMax = faults.reorderDelayMsMax ?? 0;
  if (!(Number.isSafeInteger(reorderMax) && reorderMax >= 0)) throw new RangeError('reorderDelayMsMax must be a non-negative integer');
}

function fires(random: SeededRandom, ratio: Ratio | undefined): boolean {
  return ratio !== undefined && ratio.numerator > 0 && random.chance(ratio.numerator, ratio.denominator);
}

interface Half {
  endpoint: LinkEndpoint | undefined;
  inFlight: number;
  /** Latest scheduled delivery time, to keep a direction FIFO when nothing reorders it. */
  lastDueMs: number;
}

/** A connection between one agent and one gateway. */
export class SimLink {
  readonly #network: SimNetwork;
  readonly #halves: Record<Direction, Half> = {
    to_gateway: { endpoint: undefined, inFlight: 0, lastDueMs: 0 },
    to_agent: { endpoint: undefined, inFlight: 0, lastDueMs: 0 },
  };
  #open = true;

  constructor(network: SimNetwork, readonly id: number, readonly agentId: string, readonly gatewayId: string) {
    this.#network = network;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Sets where frames of `direction` arrive; frames sent before attach wait in flight. */
  attach(direction: Direction, endpoint: LinkEndpoint): void {
    this.#halves[direction].endpoint = endpoint;
  }

  send(direction: Direction, bytes: Uint8Array): void {
    if (!this.#open) {
      this.#network.observer?.dropped?.(this, direction, 'closed');
      return;
    }
    this.#network.transmit(this, direction, bytes);
  }

  /**
   * An orderly close from one side: the peer hears of it after the frames already in flight
   * (FIN after data). Idempotent.
   */
  close(from: 'agent' | 'gateway'): void {
    if (!this.#open) return;
    this.#open = false;
    const toward: Direction = from === 'agent' ? 'to_gateway' : 'to_agent';
    const half = this.#halves[toward];
    const dueMs = Math.max(this.#network.clock.nowMs() + this.#network.baseDelayMs(this), half.lastDueMs);
    this.#network.scheduler.schedule(dueMs - this.#network.clock.nowMs(), () => half.endpoint?.closed());
    this.#network.linkClosed(this);
  }

  /**
   * One side vanished (crash): it receives nothing more, and the peer learns of it after the
   * base delay (a reset), dropping whatever was in flight.
   */
  abort(from: 'agent' | 'gateway'): void {
    const gone: Direction = from === 'agent' ? 'to_agent' : 'to_gateway';
    const peer: Direction = from === 'agent' ? 'to_gateway' : 'to_agent';
    this.#halves[gone].endpoint = undefined;
    if (!this.#open) return;
    this.#open = false;
    const endpoint = this.#halves[peer].endpoint;
    this.#halves[peer].endpoint = undefined;
    this.#network.scheduler.schedule(this.#network.baseDelayMs(this), () => endpoint?.closed());
    this.#network.linkClosed(this);
  }

  /** Internal: a frame arrives (the network checked faults when it was sent). */
  arrive(direction: Direction, bytes: Uint8Array): void {
    const half = this.#halves[direction];
    half.inFlight -= 1;
    if (half.endpoint === undefined) return;
    this.#network.observer?.delivered?.(this, direction, bytes);
    half.endpoint.deliver(bytes);
  }

  half(direction: Direction): Half {
    return this.#halves[direction];
  }
}

export class SimNetwork {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly observer: NetworkObserver | undefined;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, partitioned: 0, queueFull: 0, duplicated: 0, reordered: 0 };
  readonly #random: SeededRandom;
  readonly #queueFramesMax: number;
  readonly #links = new Set<SimLink>();
  #nextLinkId = 1;
  #defaultFaults: LinkFaults = noFaults;
  #gatewayFaults = new Map<string, LinkFaults>();
  #partitions: Partition[] = [];

  constructor(options: SimNetworkOptions) {
    this.clock = options.clock;
    this.scheduler = options.scheduler;
    this.#random = options.random;
    this.#queueFramesMax = options.queueFramesMax ?? 1024;
    this.observer = options.observer;
  }

  get openLinks(): number {
    return this.#links.size;
  }

  /** Faults for every link, and overrides for links to particular gateways. */
  setFaults(defaults: LinkFaults, byGateway: ReadonlyMap<string, LinkFaults> = new Map()): void {
    checkLinkFaults(defaults);
    for (const faults of byGateway.values()) checkLinkFaults(faults);
    this.#defaultFaults = defaults;
    this.#gatewayFaults = new Map(byGateway);
  }

  addPartition(partition: Partition): void {
    if (!(Number.isSafeInteger(partition.startMs) && Number.isSafeInteger(partition.endMs) && partition.endMs >= partition.startMs)) {
      throw new RangeError('a partition needs integer startMs <= endMs');
    }
    this.#partitions.push(partition);
  }

  /** Removes every fault and partition (the liveness phase). Frames already in flight still arrive. */
  heal(): void {
    this.#defaultFaults = noFaults;
    this.#gatewayFaults.clear();
    this.#partitions = [];
  }

  connect(agentId: string, gatewayId: string): SimLink {
    const link = new SimLink(this, this.#nextLinkId++, agentId, gatewayId);
    this.#links.add(link);
    return link;
  }

  /** Every open link to `gatewayId` (a gateway crash aborts them all). */
  linksTo(gatewayId: string): SimLink[] {
    return [...this.#links].filter((link) => link.gatewayId === gatewayId);
  }

  faultsFor(link: SimLink): LinkFaults {
    return this.#gatewayFaults.get(link.gatewayId) ?? this.#defaultFaults;
  }

  baseDelayMs(link: SimLink): number {
    return this.faultsFor(link).delayMsMin ?? 1;
  }

  isPartitioned(link: SimLink, nowMs: number): boolean {
    return this.#partitions.some((p) => nowMs >= p.startMs && nowMs < p.endMs
      && (p.gatewayIds === undefined || p.gatewayIds.includes(link.gatewayId))
      && (p.agentIds === undefined || p.agentIds.has(link.agentId)));
  }

  linkClosed(link: SimLink): void {
    this.#links.delete(link);
  }

  transmit(link: SimLink, direction: Direction, bytes: Uint8Array): void {
    this.stats.sent += 1;
    this.observer?.sent?.(link, direction, bytes);
    const nowMs = this.clock.nowMs();
    if (this.isPartitioned(link, nowMs)) {
      this.stats.partitioned += 1;
      this.observer?.dropped?.(link, direction, 'partition');
      return;
    }
    const faults = this.faultsFor(link);
    if (fires(this.#random, faults.loss)) {
      this.stats.lost += 1;
      this.observer?.dropped?.(link, direction, 'loss');
      return;
    }
    const copies = fires(this.#random, faults.duplicate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated += 1;
    for (let copy = 0; copy < copies; copy += 1) this.#schedule(link, direction, bytes, faults, nowMs);
  }

  #schedule(link: SimLink, direction: Direction, bytes: Uint8Array, faults: LinkFaults, nowMs: number): void {
    const half = link.half(direction);
    if (half.inFlight >= this.#queueFramesMax) {
      this.stats.queueFull += 1;
      this.observer?.dropped?.(link, direction, 'queue_full');
      return;
    }
    const min = faults.delayMsMin ?? 1;
    const max = faults.delayMsMax ?? min;
    let dueMs = nowMs + this.#random.intBetween(min, max);
    if (fires(this.#random, faults.reorder)) {
      this.stats.reordered += 1;
      dueMs += this.#random.intBetween(1, Math.max(1, faults.reorderDelayMsMax ?? max + 1));
    } else {
      dueMs = Math.max(dueMs, half.lastDueMs);
      half.lastDueMs = dueMs;
    }
    half.inFlight += 1;
    this.scheduler.schedule(dueMs - nowMs, () => {
      this.stats.delivered += 1;
      link.arrive(direction, bytes);
    });
  }
}
