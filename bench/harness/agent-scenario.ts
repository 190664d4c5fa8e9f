import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemScheduler } from '../../runtime/system.js';
import { newAgentSessionTally, runAgentSession, type AgentSessionTally, type AgentVuIdentity } from './agent-session.js';
import { RampingVusRun, type RampingVusResult } from './ramping-vus.js';
import type { AgentScenario } from './scenario.js';
import { evaluateThresholds, MetricSet, type ThresholdResult } from './thresholds.js';

/**
 * The agent scenario of bench/k6/agent.js in Node: k6's ramping-vus executor (ramping-vus.ts)
 * over device sessions (agent-session.ts), VU i being device i. The metric names are k6's
 * (ws_connecting, ws_session_duration, ws_sessions, ws_msgs_sent, ws_msgs_received, iterations,
 * vus, vus_max) and the script's (sdc_auth_ms, sdc_auth_ok, sdc_frames_refused,
 * sdc_commands_answered, sdc_commands_redelivered), so the definition's thresholds read the same under both.
 */

export const agentMetricKinds = {
  ws_connecting: 'trend', ws_session_duration: 'trend', ws_sessions: 'counter', ws_msgs_sent: 'counter', ws_msgs_received: 'counter',
  iterations: 'counter', vus: 'gauge', vus_max: 'gauge',
  sdc_auth_ms: 'trend', sdc_auth_ok: 'rate', sdc_frames_refused: 'counter', sdc_commands_answered: 'counter',
  sdc_commands_redelivered: 'counter',
} as const;

/** k6 samples `vus` once a second. */
const vusSampleIntervalMs = 1_000;

export interface AgentRunOptions {
  readonly gracefulRampDownMs: number;
  readonly gracefulStopMs: number;
  readonly connectTimeoutMs: number;
  /** Called once the executor has started (the in-process run starts sending commands then), with the live tally. */
  readonly onStarted?: (tally: AgentSessionTally) => void;
}

export interface AgentScenarioRun {
  readonly metrics: MetricSet;
  readonly executor: RampingVusResult;
  readonly elapsedMs: number;
  readonly thresholds: ThresholdResult[];
  readonly tally: AgentSessionTally;
}

/** Every threshold parsed and matched to a recorded metric of the right kind, before anything starts (k6 refuses a bad one at start too). */
export function checkAgentThresholds(scenario: AgentScenario): void {
  evaluateThresholds(scenario.thresholds, new MetricSet(agentMetricKinds), 0);
}

export function maxPlannedVus(scenario: AgentScenario): number {
  return Math.max(...scenario.stages.map((s) => s.target_vus));
}

/** The scenario against the devices given (one per VU at least); thresholds evaluated at the end, as k6 does. */
export async function runAgentScenario(scenario: AgentScenario, identities: readonly AgentVuIdentity[], options: AgentRunOptions): Promise<AgentScenarioRun> {
  const vus = maxPlannedVus(scenario);
  // One session per device at a time: a VU without a device of its own would take another VU's session over.
  if (identities.length < vus) throw new SdcError('CLI_USAGE', `the scenario ramps to ${vus} VUs and each needs its own device; ${identities.length} given (lower it with --vus)`);
  const metrics = new MetricSet(agentMetricKinds);
  const tally = newAgentSessionTally();
  const settings = {
    sessionMs: scenario.session_s * 1000, heartbeatIntervalMs: scenario.heartbeat_interval_ms, telemetryIntervalMs: scenario.telemetry_interval_ms,
    connectTimeoutMs: options.connectTimeoutMs,
  };
  const executor = new RampingVusRun({
    stages: scenario.stages, gracefulRampDownMs: options.gracefulRampDownMs, gracefulStopMs: options.gracefulStopMs,
    clock: systemClock, scheduler: systemScheduler,
    iteration: (vu, signal) => runAgentSession(identities[vu]!, settings, metrics, tally, signal),
    onIterationEnd: (_vu, interrupted) => { if (!interrupted) metrics.add('iterations', 1); },
  });
  const started = performance.now();
  const sampler = setInterval(() => metrics.add('vus', executor.activeVus), vusSampleIntervalMs);
  let result: RampingVusResult;
  try {
    const running = executor.run();
    options.onStarted?.(tally);
    result = await running;
  } finally {
    clearInterval(sampler);
  }
  metrics.add('vus', executor.activeVus);
  metrics.add('vus_max', executor.maxVus);
  const elapsedMs = performance.now() - started;
  return { metrics, executor: result, elapsedMs, thresholds: evaluateThresholds(scenario.thresholds, metrics, elapsedMs), tally };
}
