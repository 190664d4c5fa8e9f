import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { SdcError } from '../../core/errors/index.js';
import type { SeededRandom } from '../../core/random/prng.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import type { Scenario } from '../scenario.js';
import { forEachBounded, sleep } from './concurrency.js';
import type { ChaosWorkerSettings, WorkerAgentSpec, WorkerSettings } from './messages.js';
import type { OperatorApi } from './operator-api.js';
import type { ViolationLog } from './violations.js';
import { WorkerPool } from './worker-pool.js';

/** Agents' first connections are spread over at most this long, so the TLS handshakes do not all land at once. */
const rampMsMax = 20_000;
const onlinePollMs = 250;

/**
 * Step: the fleet, from the seed: device ids, per-agent seeds, clock skew and start delay. The run
 * tag keeps device ids apart from earlier runs against the same deployment.
 */
export function planFleet(options: { seed: number; agentCount: number; scenario: Scenario; random: SeededRandom; workDir: string }): WorkerAgentSpec[] {
  const { seed, agentCount, scenario, random, workDir } = options;
  const runTag = Buffer.from(systemRandom.bytes(3)).toString('hex');
  const rampMs = Math.min(rampMsMax, Math.max(1_000, agentCount * 5));
  const skewMax = scenario.faults.clockSkewMsMax ?? 0;
  return Array.from({ length: agentCount }, (_, i) => {
    const agentRandom = random.fork();
    const deviceId = `simr-${seed}-${runTag}-${String(i + 1).padStart(5, '0')}`;
    return {
      deviceId, dir: join(workDir, 'agents', deviceId), seed: agentRandom.seed,
      clockSkewMs: skewMax === 0 ? 0 : agentRandom.intBetween(-skewMax, skewMax), startDelayMs: agentRandom.intBelow(rampMs),
    };
  });
}

/** Step: pair every agent, a one-time token through the API, then the agent's own enrollment; `concurrency` at once. */
export async function pairFleet(api: OperatorApi, agents: readonly WorkerAgentSpec[], concurrency: number, progress: (line: string) => void): Promise<void> {
  let paired = 0;
  await forEachBounded(agents, concurrency, async (agent) => {
    try {
      const { token: pairingToken } = await api.call<{ token: string }>('POST', `/v1/devices/${encodeURIComponent(agent.deviceId)}/pairing-tokens`, {});
      await mkdir(agent.dir, { recursive: true, mode: 0o700 });
      await ensureEnrolled({ dir: agent.dir, serverUrl: api.apiUrl.origin, deviceId: agent.deviceId, pairingToken, caPem: api.caPem, random: systemRandom, clock: systemClock });
    } catch (error) {
      throw new SdcError('SIM_REAL_SETUP_FAILED', `pairing ${agent.deviceId} failed: ${(error as Error).message}`, {}, { cause: error });
    }
    paired += 1;
    if (paired % 50 === 0 || paired === agents.length) progress(`paired ${paired}/${agents.length}`);
  });
}

export interface StartFleetOptions {
  readonly agents: readonly WorkerAgentSpec[];
  readonly processes: number;
  readonly scenario: Scenario;
  readonly onlineTimeoutMs: number;
  readonly violations: ViolationLog;
  /** `sdc chaos run`: durable journals, a switchable kernel fault. */
  readonly chaosSettings?: ChaosWorkerSettings;
}

/**
 * Step: the worker processes, each running its share of the agents, until every agent has a
 * session. The caller owns the pool it returns (stop it); if the fleet does not come online,
 * the pool is stopped here and the refusal thrown.
 */
export async function startFleet(options: StartFleetOptions): Promise<WorkerPool> {
  const { scenario } = options;
  const pool = new WorkerPool({ processes: options.processes, onViolation: (message) => options.violations.add('at_most_once', message) });
  pool.start(options.agents, {
    telemetryIntervalMs: scenario.telemetryIntervalMs,
    ...(scenario.telemetrySamplesPerFrame === undefined ? {} : { telemetrySamplesPerFrameMax: scenario.telemetrySamplesPerFrame }),
    ...(scenario.telemetryBatchDelayMs === undefined ? {} : { telemetryBatchDelayMs: scenario.telemetryBatchDelayMs }),
    ...(scenario.faults.kernelErrors ? { kernelErrors: scenario.faults.kernelErrors } : {}),
    ...options.chaosSettings,
  });
  try {
    await waitForSessions(pool, options.agents.length, systemClock.nowMs() + options.onlineTimeoutMs);
    return pool;
  } catch (error) {
    await pool.stop();
    throw error;
  }
}

async function waitForSessions(pool: WorkerPool, agentCount: number, deadlineMs: number): Promise<void> {
  for (;;) {
    pool.assertHealthy();
    const { connected } = pool.totals();
    if (connected === agentCount) return;
    if (systemClock.nowMs() >= deadlineMs) throw new SdcError('SIM_REAL_SETUP_FAILED', `only ${connected}/${agentCount} agents came online`);
    await sleep(onlinePollMs);
  }
}
