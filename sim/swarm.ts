import { SeededRandom } from '../core/random/prng.js';
import { runSimulation, type RunResult, type SimCrypto } from './run.js';
import { parseScenario, type Scenario } from './scenario.js';

/**
 * Swarm testing: each seed draws its own fault mix (which faults are on and how hard), then runs
 * it. In-connection loss, duplication and reordering are left out unless `lossy` is set: a
 * WebSocket over TCP never shows them without dropping the connection, so they test the
 * protocol outside its stated assumptions (docs/simulation.md, "Findings").
 */
export interface SwarmOptions {
  readonly runs: number;
  /** Seeds are baseSeed, baseSeed+1, ... */
  readonly baseSeed: number;
  readonly agents: number;
  readonly safetyMs: number;
  readonly lossy?: boolean;
  /** Include bus and SQL outages (docs/simulation.md, "Findings" for what they found). */
  readonly outages?: boolean;
  /** Each run's crypto (default real); the trace hash of a seed is the same with either (sim/model-crypto.ts). */
  readonly crypto?: SimCrypto;
  /**
   * Every agent batches telemetry, up to this many samples per frame (the scenario's
   * telemetrySamplesPerFrame); drawn from no seed, so a seed keeps its fault mix with or without it.
   */
  readonly telemetrySamplesPerFrame?: number;
  readonly onResult?: (result: RunResult) => void;
}

/** Fixed, so that `--scenario swarm:S` reproduces a swarm run from its seed alone. */
export const swarmLivenessBoundMs = 60_000;

export function swarmScenario(seed: number, options: Pick<SwarmOptions, 'agents' | 'safetyMs' | 'lossy' | 'outages' | 'telemetrySamplesPerFrame'>): Scenario {
  const random = new SeededRandom(seed);
  const on = () => random.chance(1, 2);
  const gateways = random.intBetween(1, 3);
  const safetyMs = options.safetyMs;
  const window = () => ({ atMs: random.intBelow(Math.max(1, safetyMs - 5_000)), durationMs: random.intBetween(500, 5_000) });
  const delayMsMax = random.intBetween(1, 300);
  const faults: Scenario['faults'] = {
    network: {
      delayMsMin: 1, delayMsMax,
      ...(options.lossy === true && on() ? { loss: { numerator: 1, denominator: random.intBetween(20, 500) } } : {}),
      ...(options.lossy === true && on() ? { duplicate: { numerator: 1, denominator: random.intBetween(20, 500) } } : {}),
      ...(options.lossy === true && on() ? { reorder: { numerator: 1, denominator: random.intBetween(20, 500) }, reorderDelayMsMax: 500 } : {}),
    },
    ...(on() ? { partitions: [{ ...window(), agents: { numerator: 1, denominator: random.intBetween(2, 10) } }] } : {}),
    ...(on() ? { agentCrashes: { perAgentHour: random.intBetween(1, 60), downMsMin: 100, downMsMax: random.intBetween(100, 10_000) } } : {}),
    ...(on() ? { gatewayRestarts: [{ atMs: random.intBelow(safetyMs), gateway: `gw-${random.intBetween(1, gateways)}`, downMs: random.intBetween(0, 10_000) }] } : {}),
    ...(options.outages === true && on() ? { busOutages: [window()] } : {}),
    ...(options.outages === true && on() ? { sqlOutages: [window()] } : {}),
    ...(on() ? { kernelErrors: { ratio: { numerator: 1, denominator: random.intBetween(5, 100) }, status: random.pick(['BUSY', 'IO_ERROR'] as const) } } : {}),
    ...(on() ? { clockSkewMsMax: random.intBetween(0, 5_000) } : {}),
  };
  return parseScenario({
    name: `swarm-${seed}`,
    description: 'a random fault mix drawn from the seed',
    agents: options.agents,
    gateways,
    safetyMs,
    livenessBoundMs: swarmLivenessBoundMs,
    heartbeatIntervalMs: 10_000,
    telemetryIntervalMs: 30_000,
    ...(options.telemetrySamplesPerFrame === undefined ? {} : { telemetrySamplesPerFrame: options.telemetrySamplesPerFrame }),
    commands: { perMinute: random.intBetween(10, 200), ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 4, EXEC_GET_STATUS: 2, EXEC_LOCK_SCREEN: 1, EXEC_GET_PROCESS_LIST: 1 } },
    ...(on() ? { churn: { perAgentHour: random.intBetween(1, 60), offlineMsMin: 100, offlineMsMax: random.intBetween(100, 10_000) } } : {}),
    faults,
  }, `swarm seed ${seed}`);
}

/** `swarm:S[:lossy][:outages][:batchK]`: the scenario reference that reproduces one swarm run (sdc sim --scenario). */
export function swarmScenarioRef(seed: number, options: Pick<SwarmOptions, 'lossy' | 'outages' | 'telemetrySamplesPerFrame'>): string {
  return `swarm:${seed}${options.lossy === true ? ':lossy' : ''}${options.outages === true ? ':outages' : ''}${options.telemetrySamplesPerFrame === undefined ? '' : `:batch${options.telemetrySamplesPerFrame}`}`;
}

/** Runs the swarm one seed at a time (a run is single-threaded); returns every result. */
export async function runSwarm(options: SwarmOptions): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (let i = 0; i < options.runs; i += 1) {
    const seed = options.baseSeed + i;
    const scenario = swarmScenario(seed, options);
    const result = await runSimulation({ scenario, scenarioRef: swarmScenarioRef(seed, options), seed, agents: options.agents, safetyMs: options.safetyMs,
      ...(options.crypto === undefined ? {} : { crypto: options.crypto }),
    });
    options.onResult?.(result);
    results.push(result);
  }
  return results;
}
