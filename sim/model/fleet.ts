import type { SeededRandom } from '../../core/random/prng.js';

/**
 * Per-agent facts of the model tier, in typed arrays (an agent is an index, 0..size-1; device id
 * `dev-00001` is index 0, as in the full tier).
 *
 * The draws are the full tier's: the full tier gives agent i the i-th fork of its `agents` stream
 * and draws from it, in this order, the device key (32 bytes) and certificate serial (8 bytes),
 * the clock skew (when the scenario has one), the agent and kernel-service keys (32 bytes each),
 * the mock kernel's own stream (a fork), the preferred gateway, and at boot the telemetry phase
 * and the first connect delay (sim/run.ts, sim/sim-agent.ts, agent/agent-core.ts). Drawing the
 * same words here gives each agent the same skew, gateway, kernel fault draws, telemetry phase
 * and first connect time in both tiers, for the price of about 35 draws per agent.
 */
export class Fleet {
  readonly size: number;
  readonly skewMs: Int32Array;
  readonly preferredGateway: Uint8Array;
  /** Seed of the agent's mock-kernel stream (status faults draw from it, one draw per kernel call). */
  readonly kernelSeed: Float64Array;
  /** First telemetry sample after the first boot, virtual ms. */
  readonly telemetryPhaseMs: Int32Array;
  /** First connect after the first boot, virtual ms. */
  readonly connectDelayMs: Int32Array;
  /** The process runs (not crashed). */
  readonly up: Uint8Array;
  /** Not churned away. */
  readonly wantOnline: Uint8Array;
  /** Bumped at every boot: timers of an earlier boot are stale. */
  readonly bootEpoch: Int32Array;

  constructor(size: number) {
    this.size = size;
    this.skewMs = new Int32Array(size);
    this.preferredGateway = new Uint8Array(size);
    this.kernelSeed = new Float64Array(size);
    this.telemetryPhaseMs = new Int32Array(size);
    this.connectDelayMs = new Int32Array(size);
    this.up = new Uint8Array(size);
    this.wantOnline = new Uint8Array(size).fill(1);
    this.bootEpoch = new Int32Array(size);
  }
}

export interface FleetDraws {
  readonly gateways: number;
  readonly clockSkewMsMax: number;
  readonly telemetryIntervalMs: number;
  readonly connectDelayMsMax: number;
}

/** Words drawn by SeededRandom.bytes(n): one 32-bit draw per 4 bytes. */
function skipBytes(random: SeededRandom, bytes: number): void {
  for (let i = 0; i < bytes; i += 4) random.nextUint32();
}

/** Builds the fleet from the run's `agents` stream (the fourth fork of the seed, as in the full tier). */
export function drawFleet(agentsStream: SeededRandom, size: number, draws: FleetDraws): Fleet {
  const fleet = new Fleet(size);
  for (let i = 0; i < size; i += 1) {
    const random = agentsStream.fork();
    skipBytes(random, 32); // device key
    skipBytes(random, 8); // certificate serial
    fleet.skewMs[i] = draws.clockSkewMsMax === 0 ? 0 : random.intBetween(-draws.clockSkewMsMax, draws.clockSkewMsMax);
    skipBytes(random, 32); // agent key
    skipBytes(random, 32); // kernel service key
    fleet.kernelSeed[i] = random.fork().seed;
    fleet.preferredGateway[i] = random.intBelow(draws.gateways);
    fleet.telemetryPhaseMs[i] = random.intBelow(draws.telemetryIntervalMs) + 1;
    fleet.connectDelayMs[i] = random.intBelow(draws.connectDelayMsMax);
  }
  return fleet;
}
