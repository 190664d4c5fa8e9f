import type { SeededRandom } from '../../core/random/prng.js';
import type { Scenario } from '../scenario.js';
import { Ev } from './events.js';
import type { ModelPartition } from './network.js';
import type { ModelWorld } from './world.js';

/**
 * Every fault of the scenario format, scheduled as the full tier schedules it (sim/run.ts), from
 * the same `faults` stream in the same order, so both tiers crash and churn the same agents at
 * the same times and cut off the same agents in a partition:
 *
 * - partitions: a seeded fraction of agents (one draw per device per partition), ended at the
 *   end of the safety phase at the latest; links to the named gateways drop every frame;
 * - agent crashes and churn: fleet-wide processes with uniform gaps in [0, 2 x mean], a uniform
 *   victim and a uniform down/offline time;
 * - gateway restarts: abort at atMs (only within the safety phase), a new gateway after downMs;
 * - bus and SQL outages: windows in which every call to the stream bus / SQL fails;
 * - link faults (loss, delay, duplication, reordering): sim/model/network.ts;
 * - kernel errors: sim/model/agent-commands.ts; clock skew: drawn per agent in sim/model/fleet.ts
 *   and applied to the agent's expiry check.
 *
 * Healing (the liveness phase) ends outages, partitions and link faults and stops the crash and
 * churn processes; a gateway still down comes back at its own time.
 */
interface Window {
  readonly startMs: number;
  readonly endMs: number;
}

function windows(list: ReadonlyArray<{ atMs: number; durationMs: number }> | undefined): Window[] {
  return (list ?? []).map((w) => ({ startMs: w.atMs, endMs: w.atMs + w.durationMs }));
}

export class Faults {
  readonly #w: ModelWorld;
  readonly #bus: Window[];
  readonly #sql: Window[];
  #crashRandom: SeededRandom | undefined;
  #churnRandom: SeededRandom | undefined;

  constructor(world: ModelWorld) {
    this.#w = world;
    this.#bus = windows(world.scenario.faults.busOutages);
    this.#sql = windows(world.scenario.faults.sqlOutages);
  }

  busDown(): boolean {
    return this.#bus.length > 0 && this.#inWindow(this.#bus);
  }

  sqlDown(): boolean {
    return this.#sql.length > 0 && this.#inWindow(this.#sql);
  }

  #inWindow(list: readonly Window[]): boolean {
    const w = this.#w;
    if (w.healed) return false;
    for (const window of list) if (w.nowMs >= window.startMs && w.nowMs < window.endMs) return true;
    return false;
  }

  /** Draws and schedules every fault, in the full tier's order of draws. */
  schedule(): void {
    const w = this.#w;
    const { faults, churn } = w.scenario;
    for (const partition of faults.partitions ?? []) w.network.addPartition(this.#partition(partition));
    const crashes = faults.agentCrashes;
    if (crashes && crashes.perAgentHour > 0) {
      this.#crashRandom = w.rng.faults.fork();
      this.#every(crashes.perAgentHour, this.#crashRandom, Ev.crashTick);
    }
    if (churn && churn.perAgentHour > 0) {
      this.#churnRandom = w.rng.faults.fork();
      this.#every(churn.perAgentHour, this.#churnRandom, Ev.churnTick);
    }
    for (const restart of faults.gatewayRestarts ?? []) {
      if (restart.atMs >= w.safetyEndMs) continue;
      w.at(restart.atMs, Ev.gatewayCrash, Number(restart.gateway.slice('gw-'.length)) - 1, restart.downMs);
    }
  }

  #partition(partition: NonNullable<Scenario['faults']['partitions']>[number]): ModelPartition {
    const w = this.#w;
    let agents: Uint8Array | undefined;
    if (partition.agents) {
      agents = new Uint8Array(w.agents);
      for (let i = 0; i < w.agents; i += 1) agents[i] = w.rng.faults.chance(partition.agents.numerator, partition.agents.denominator) ? 1 : 0;
    }
    return {
      startMs: partition.atMs, endMs: Math.min(w.safetyEndMs, partition.atMs + partition.durationMs),
      gateways: partition.gateways?.map((id) => Number(id.slice('gw-'.length)) - 1), agents,
    };
  }

  #meanGapMs(perAgentHour: number): number {
    return 3_600_000 / (this.#w.agents * perAgentHour);
  }

  #every(perAgentHour: number, random: SeededRandom, kind: number): void {
    const gapMaxMs = Math.max(1, Math.round(2 * this.#meanGapMs(perAgentHour)));
    this.#w.after(random.intBetween(0, gapMaxMs), kind);
  }

  onCrashTick(): void {
    const w = this.#w;
    const crashes = w.scenario.faults.agentCrashes!;
    const random = this.#crashRandom!;
    if (!w.inSafety()) return;
    w.counts.agent_crashes! += 1;
    const agent = random.intBelow(w.agents);
    w.presence.crash(agent, random.intBetween(crashes.downMsMin, crashes.downMsMax));
    this.#every(crashes.perAgentHour, random, Ev.crashTick);
  }

  onChurnTick(): void {
    const w = this.#w;
    const churn = w.scenario.churn!;
    const random = this.#churnRandom!;
    if (!w.inSafety()) return;
    w.counts.churn_leaves! += 1;
    const agent = random.intBelow(w.agents);
    w.presence.leave(agent, random.intBetween(churn.offlineMsMin, churn.offlineMsMax));
    this.#every(churn.perAgentHour, random, Ev.churnTick);
  }

  onGatewayCrash(gateway: number, downMs: number): void {
    const w = this.#w;
    if (!w.router.isUp(gateway)) return;
    w.counts.gateway_restarts! += 1;
    w.router.crash(gateway);
    w.after(downMs, Ev.gatewayStart, gateway);
  }
}
