import { Ev, Report } from './events.js';
import { Dir } from './network.js';
import { Side } from './presence.js';
import type { ModelWorld } from './world.js';
import { LatencyRecorder } from '../latency-recorder.js';

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
 * Batches (scenario telemetrySamplesPerFrame K > 1; decision 0004, "Batches"), as the agent core
 * batches: every sample is buffered; on a ready session a full buffer (K samples) goes at once as
 * one TELEMETRY_BATCH frame, otherwise the first buffered sample starts the batch delay, after
 * which whatever is buffered goes (in frames of up to K; a lone sample as TELEMETRY). AUTH_ACK
 * flushes the buffer the same way. A frame is one chain link, one presence refresh and one report
 * to the control plane, which stores its samples all or none (the writer's one INSERT per frame);
 * a per-frame service cost is params.telemetryFrameServiceMs. Samples are taken every interval
 * from the boot's phase, so a frame's samples are its first sample's time plus whole intervals:
 * a frame carries its first sample's time and its sample count (in a small ring per agent, read at
 * arrival), and the control plane records each stored sample's storage delay (sampled to stored).
 *
 * Counts: telemetry_sampled, telemetry_sent (samples), telemetry_frames_sent,
 * telemetry_batch_frames_sent, telemetry_samples_sent (= telemetry_sent, the full tier's name),
 * telemetry_buffer_dropped, telemetry_chain_broken (frames), telemetry_lost_bus (samples),
 * telemetry_stored (rows in the telemetry table, as the full tier counts them).
 */
export class Telemetry {
  readonly #w: ModelWorld;
  readonly #buffered: Uint8Array;
  /** Per agent: the number of the next sample it sends (its chain position). */
  readonly #sentIndex: Int32Array;
  /** Per agent: the number of the last sample the gateway's session checked, -1 before the first (the anchor). */
  readonly #checkedIndex: Int32Array;
  readonly #intervalMs: number;
  /** Samples per frame (1: no batches, the per-sample path as before). */
  readonly #perFrame: number;
  readonly #batchDelayMs: number;
  /** Batching only (empty otherwise): per agent, the first buffered sample's time, the pending batch timer's epoch and whether it runs. */
  readonly #firstAtMs: Int32Array;
  readonly #batchEpoch: Int32Array;
  readonly #batchPending: Uint8Array;
  /** Batching only: the frames in flight per agent (chain index, first sample's time, samples), a ring of #ringSize. */
  readonly #ringSize: number;
  readonly #ringIndex: Int32Array;
  readonly #ringAtMs: Int32Array;
  readonly #ringSamples: Uint8Array;
  /** Sampled to stored, per stored sample of a batching run (the full tier's telemetryStorageDelayMs). */
  readonly storageDelay = new LatencyRecorder();

  constructor(world: ModelWorld) {
    this.#w = world;
    this.#buffered = new Uint8Array(world.agents);
    this.#sentIndex = new Int32Array(world.agents);
    this.#checkedIndex = new Int32Array(world.agents).fill(-1);
    this.#intervalMs = world.scenario.telemetryIntervalMs;
    this.#perFrame = world.scenario.telemetrySamplesPerFrame ?? 1;
    this.#batchDelayMs = world.scenario.telemetryBatchDelayMs ?? world.params.telemetryBatchDelayMs;
    const batching = this.#perFrame > 1;
    const agents = batching ? world.agents : 0;
    this.#firstAtMs = new Int32Array(agents);
    this.#batchEpoch = new Int32Array(agents);
    this.#batchPending = new Uint8Array(agents);
    // A flush sends at most bufferMax / K frames at once (+1 partial); two more for the frames
    // sent before it that may still be on the wire. An overwritten slot is read as one sample.
    this.#ringSize = batching ? Math.ceil(world.params.telemetryBufferMax / this.#perFrame) + 3 : 0;
    this.#ringIndex = new Int32Array(agents * this.#ringSize).fill(-1);
    this.#ringAtMs = new Int32Array(agents * this.#ringSize);
    this.#ringSamples = new Uint8Array(agents * this.#ringSize);
  }

  /** Samples buffered in the agents now (the full tier's telemetry_samples_buffered_end at the end of a run). */
  bufferedTotal(): number {
    let total = 0;
    for (let agent = 0; agent < this.#buffered.length; agent += 1) total += this.#buffered[agent]!;
    return total;
  }

  get batching(): boolean {
    return this.#perFrame > 1;
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
    if (this.batching) this.#cancelBatchTimer(agent);
  }

  onTimer(agent: number, bootEpoch: number): void {
    const w = this.#w;
    if (w.fleet.bootEpoch[agent] !== bootEpoch || w.fleet.up[agent] !== 1) return;
    w.after(this.#intervalMs, Ev.telemetryTimer, agent, bootEpoch);
    w.counts.telemetry_sampled! += 1;
    if (this.batching) {
      this.#bufferSample(agent);
      if (w.presence.agentSide[agent] === Side.ready) this.#onSampleBuffered(agent);
      return;
    }
    if (w.presence.agentSide[agent] === Side.ready) {
      this.#send(agent);
      return;
    }
    if (this.#buffered[agent]! >= w.params.telemetryBufferMax) w.counts.telemetry_buffer_dropped! += 1;
    else this.#buffered[agent]! += 1;
  }

  /** AUTH_ACK: the buffered samples go out first. */
  flush(agent: number): void {
    if (this.batching) {
      this.#flushBatches(agent);
      return;
    }
    for (let i = this.#buffered[agent]!; i > 0; i -= 1) this.#send(agent);
    this.#buffered[agent] = 0;
  }

  // --- batches ---------------------------------------------------------------------------------

  /** Past telemetryBufferMax the oldest sample goes (AgentCore #bufferSample). */
  #bufferSample(agent: number): void {
    const w = this.#w;
    if (this.#buffered[agent] === 0) this.#firstAtMs[agent] = w.nowMs;
    if (this.#buffered[agent]! >= w.params.telemetryBufferMax) {
      w.counts.telemetry_buffer_dropped! += 1;
      this.#firstAtMs[agent]! += this.#intervalMs;
      return;
    }
    this.#buffered[agent]! += 1;
  }

  /** Connected: a full batch goes now; otherwise the first buffered sample starts the batch delay (AgentCore #onSampleBuffered). */
  #onSampleBuffered(agent: number): void {
    if (this.#buffered[agent]! >= this.#perFrame) {
      this.#flushBatches(agent);
      return;
    }
    if (this.#batchPending[agent] === 1) return;
    this.#batchPending[agent] = 1;
    this.#w.after(this.#batchDelayMs, Ev.telemetryBatchTimer, agent, this.#batchEpoch[agent]!);
  }

  onBatchTimer(agent: number, epoch: number): void {
    if (this.#batchEpoch[agent] !== epoch) return;
    this.#batchPending[agent] = 0;
    this.#batchEpoch[agent]! += 1;
    // Not connected: the buffer waits for the next AUTH_ACK.
    if (this.#w.presence.agentSide[agent] === Side.ready) this.#flushBatches(agent);
  }

  #cancelBatchTimer(agent: number): void {
    this.#batchPending[agent] = 0;
    this.#batchEpoch[agent]! += 1;
  }

  /** Every buffered sample, in frames of up to K (AgentCore #flushTelemetry). */
  #flushBatches(agent: number): void {
    this.#cancelBatchTimer(agent);
    while (this.#buffered[agent]! > 0) {
      const samples = Math.min(this.#perFrame, this.#buffered[agent]!);
      const firstAtMs = this.#firstAtMs[agent]!;
      this.#buffered[agent]! -= samples;
      this.#firstAtMs[agent] = firstAtMs + samples * this.#intervalMs;
      this.#sendFrame(agent, samples, firstAtMs);
    }
  }

  #sendFrame(agent: number, samples: number, firstAtMs: number): void {
    const w = this.#w;
    w.counts.telemetry_sent! += samples;
    w.counts.telemetry_samples_sent! += samples;
    w.counts.telemetry_frames_sent! += 1;
    if (samples > 1) w.counts.telemetry_batch_frames_sent! += 1;
    const index = this.#sentIndex[agent]!++;
    const slot = agent * this.#ringSize + (index % this.#ringSize);
    this.#ringIndex[slot] = index;
    this.#ringAtMs[slot] = firstAtMs;
    this.#ringSamples[slot] = samples;
    w.presence.sendFrame(Dir.toGateway, agent, Ev.telemetryAtGateway, index);
  }

  /** A stored frame's samples: their storage delays (sampled to now), one interval apart. */
  stored(samples: number, firstAtMs: number): void {
    const nowMs = this.#w.nowMs;
    for (let i = 0; i < samples; i += 1) this.storageDelay.record(Math.max(0, nowMs - (firstAtMs + i * this.#intervalMs)));
  }

  // --- per sample -------------------------------------------------------------------------------

  #send(agent: number): void {
    this.#w.counts.telemetry_sent! += 1;
    this.#w.counts.telemetry_samples_sent! += 1;
    this.#w.counts.telemetry_frames_sent! += 1;
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
    if (!this.batching) {
      if (w.faults.busDown()) {
        w.counts.telemetry_lost_bus! += 1;
        return;
      }
      w.controlPlane.onReport(Report.telemetry, agent, -1, w.nowMs);
      return;
    }
    const slot = agent * this.#ringSize + (index % this.#ringSize);
    const known = this.#ringIndex[slot] === index;
    const samples = known ? this.#ringSamples[slot]! : 1;
    if (w.faults.busDown()) {
      w.counts.telemetry_lost_bus! += samples;
      return;
    }
    // The report carries the frame's samples (as the command argument) and its first sample's time; -1: unknown, no delay recorded.
    const firstAtMs = known ? this.#ringAtMs[slot]! : -1;
    if (w.params.telemetryFrameServiceMs > 0) w.after(w.params.telemetryFrameServiceMs, Ev.reportAtControlPlane, agent, samples, Report.telemetry, firstAtMs);
    else w.controlPlane.onReport(Report.telemetry, agent, samples, firstAtMs);
  }
}
