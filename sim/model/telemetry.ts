import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import { Side } from './presence.js';
import type { ModelWorld } from './world.js';

/**
 * Telemetry as the agent core sends it (agent/agent-core.ts): a sample every interval from a
 * random phase after boot, sent at once on a ready session, otherwise buffered (at most
 * telemetryBufferMax, oldest dropped) and flushed at the next AUTH_ACK. At the gateway a sample
 * refreshes the presence key (a quarter interval after the last refresh) and is appended to the
 * telemetry stream, which a bus outage refuses (the sample is lost); the control plane stores it,
 * later when SQL is down (the consumer claims it again).
 *
 * Each sample names the hash of the one the agent sent before it (prev_hash); the gateway checks
 * the chain within a session (core/protocol/session/telemetry-chain.ts): the first sample of a
 * session anchors it, and a sample that does not follow the last one the gateway checked (one
 * was lost on the way, or refused by the replay guard) is refused, with an ERROR frame and one
 * refusal of the session's budget, and not stored. The model numbers the samples instead of
 * hashing them.
 *
 * Counts: telemetry_sampled, telemetry_sent, telemetry_buffer_dropped, telemetry_chain_broken,
 * telemetry_lost_bus, telemetry_stored (rows in the telemetry table, as the full tier counts them).
 */
export class Telemetry {
  readonly #w: ModelWorld;
  readonly #buffered: Uint8Array;
  /** Per agent: the number of the next sample it sends (its chain position). */
  readonly #sentIndex: Int32Array;
  /** Per agent: the number of the last sample the gateway's session checked, -1 before the first (the anchor). */
  readonly #checkedIndex: Int32Array;
  readonly #intervalMs: number;

  constructor(world: ModelWorld) {
    this.#w = world;
    this.#buffered = new Uint8Array(world.agents);
    this.#sentIndex = new Int32Array(world.agents);
    this.#checkedIndex = new Int32Array(world.agents).fill(-1);
    this.#intervalMs = world.scenario.telemetryIntervalMs;
  }

  /** At boot: the first sample after a random phase (the fleet's draw at the first boot). */
  start(agent: number, firstBoot: boolean): void {
    const w = this.#w;
    const phaseMs = firstBoot ? w.fleet.telemetryPhaseMs[agent]! : w.rng.dynamics.intBelow(this.#intervalMs) + 1;
    w.after(phaseMs, Ev.telemetryTimer, agent, w.fleet.bootEpoch[agent]!);
  }

  /** A new session at the gateway: its first sample anchors the chain. */
  onLink(agent: number): void {
    this.#checkedIndex[agent] = -1;
  }

  /** The agent core is gone with its buffer. */
  onCrash(agent: number): void {
    this.#buffered[agent] = 0;
  }

  onTimer(agent: number, bootEpoch: number): void {
    const w = this.#w;
    if (w.fleet.bootEpoch[agent] !== bootEpoch || w.fleet.up[agent] !== 1) return;
    w.after(this.#intervalMs, Ev.telemetryTimer, agent, bootEpoch);
    w.counts.telemetry_sampled! += 1;
    if (w.presence.agentSide[agent] === Side.ready) {
      this.#send(agent);
      return;
    }
    if (this.#buffered[agent]! >= w.params.telemetryBufferMax) w.counts.telemetry_buffer_dropped! += 1;
    else this.#buffered[agent]! += 1;
  }

  /** AUTH_ACK: the buffered samples go out first. */
  flush(agent: number): void {
    for (let i = this.#buffered[agent]!; i > 0; i -= 1) this.#send(agent);
    this.#buffered[agent] = 0;
  }

  #send(agent: number): void {
    this.#w.counts.telemetry_sent! += 1;
    this.#w.presence.sendFrame(Dir.toGateway, agent, Ev.telemetryAtGateway, this.#sentIndex[agent]!++);
  }

  onArrival(agent: number, index: number, link: number, seq: number): void {
    const w = this.#w;
    if (!w.presence.acceptAtGateway(agent, link, seq) || w.presence.gatewaySide[agent] !== Side.ready) return;
    const last = this.#checkedIndex[agent]!;
    this.#checkedIndex[agent] = index;
    if (last !== -1 && index !== last + 1) {
      w.counts.telemetry_chain_broken! += 1;
      w.presence.refuseAtGateway(agent);
      return;
    }
    w.presence.refreshKey(agent, link, false);
    if (w.presence.gatewaySide[agent] !== Side.ready) return;
    if (w.faults.busDown()) {
      w.counts.telemetry_lost_bus! += 1;
      return;
    }
    w.controlPlane.onReport(Report.telemetry, agent, -1, w.nowMs);
  }
}
