import { SdcError } from '../../core/errors/index.js';
import { commandTerminalStates } from '../../core/protocol/command-machine.js';
import { sleep } from '../wall-time.js';
import { runOpenLoop, type OpenLoopResult } from './open-loop.js';
import type { ApiScenario } from './scenario.js';
import { evaluateThresholds, MetricSet, type ThresholdResult } from './thresholds.js';
import { keepAliveClient, type KeepAliveClient } from './https-keepalive.js';

/**
 * The HTTP API scenario of bench/k6/api.js, in Node: commands created at a fixed arrival rate
 * (open loop), each with its own Idempotency-Key, then polled until terminal. The metric names
 * are k6's (http_req_duration, http_req_failed, iterations, dropped_iterations) and the k6
 * script's own (sdc_command_*), so one threshold list serves both.
 */

export const apiMetricKinds = {
  http_req_duration: 'trend', http_req_failed: 'rate', iterations: 'counter', dropped_iterations: 'counter',
  sdc_command_create_ms: 'trend', sdc_command_terminal_ms: 'trend', sdc_command_succeeded: 'rate',
} as const;

export interface ApiTarget {
  readonly apiUrl: string;
  readonly caPem: string;
  readonly token: string;
  readonly deviceIds: readonly string[];
  /** Keeps this run's idempotency keys apart from any other run's. */
  readonly runTag: string;
}

export interface ApiScenarioRun {
  readonly metrics: MetricSet;
  readonly loop: OpenLoopResult;
  readonly elapsedMs: number;
  readonly thresholds: ThresholdResult[];
  readonly finalStates: Readonly<Record<string, number>>;
  /** Failed requests by the server's error code (`HTTP_429`, `API_RATE_LIMITED`) or the client's (`HTTP_UNREACHABLE`). */
  readonly failuresByCode: Readonly<Record<string, number>>;
}

interface CommandView { id: string; state: string }

const terminal = new Set<string>(commandTerminalStates);

/** One HTTPS call, timed as k6 times a request (from its own send, not the arrival). */
async function timed<T>(metrics: MetricSet, failures: Record<string, number>, call: () => Promise<T>): Promise<T | undefined> {
  const sent = performance.now();
  try {
    const body = await call();
    metrics.add('http_req_duration', performance.now() - sent);
    metrics.add('http_req_failed', false);
    return body;
  } catch (error) {
    if (!SdcError.is(error)) throw error;
    metrics.add('http_req_duration', performance.now() - sent);
    metrics.add('http_req_failed', true);
    const code = typeof error.details?.serverCode === 'string' ? error.details.serverCode : error.code;
    failures[code] = (failures[code] ?? 0) + 1;
    return undefined;
  }
}

interface IterationContext {
  readonly scenario: ApiScenario;
  readonly target: ApiTarget;
  readonly client: KeepAliveClient;
  readonly metrics: MetricSet;
  readonly finalStates: Record<string, number>;
  readonly failures: Record<string, number>;
}

function countState(context: IterationContext, key: string): void {
  context.finalStates[key] = (context.finalStates[key] ?? 0) + 1;
}

/** Step: one iteration, create then poll; latencies from the intended start (`intendedMs`, performance.now() time). */
async function createAndPoll(context: IterationContext, index: number, intendedMs: number): Promise<void> {
  const { scenario, target, client, metrics, failures } = context;
  metrics.add('iterations', 1);
  const call = { token: target.token, timeoutMs: scenario.poll_timeout_ms };
  const deviceId = target.deviceIds[index % target.deviceIds.length]!;
  const created = await timed(metrics, failures, () => client.json<CommandView>('POST', new URL('/v1/commands', target.apiUrl), {
    ...call, body: { device_id: deviceId, opcode: scenario.opcode, args: {}, ttl_ms: scenario.ttl_ms }, headers: { 'idempotency-key': `${target.runTag}-${index}` },
  }));
  metrics.add('sdc_command_create_ms', performance.now() - intendedMs);
  if (created === undefined) { metrics.add('sdc_command_succeeded', false); countState(context, 'refused'); return; }
  let state = created.state;
  const deadline = intendedMs + scenario.poll_timeout_ms;
  while (!terminal.has(state) && performance.now() < deadline) {
    await sleep(scenario.poll_interval_ms);
    const polled = await timed(metrics, failures, () => client.json<CommandView>('GET', new URL(`/v1/commands/${encodeURIComponent(created.id)}`, target.apiUrl), call));
    if (polled !== undefined) state = polled.state;
  }
  if (terminal.has(state)) metrics.add('sdc_command_terminal_ms', performance.now() - intendedMs);
  metrics.add('sdc_command_succeeded', state === 'succeeded');
  countState(context, terminal.has(state) ? state : `not_terminal:${state}`);
}

/** The scenario against a running deployment; thresholds evaluated at the end, as k6 does. */
export async function runApiScenario(scenario: ApiScenario, target: ApiTarget): Promise<ApiScenarioRun> {
  if (target.deviceIds.length === 0) throw new SdcError('CLI_USAGE', 'the API scenario needs at least one device to command');
  const metrics = new MetricSet(apiMetricKinds);
  // One connection per iteration in flight at most, kept alive between requests as k6 keeps a VU's.
  const client = keepAliveClient({ caPem: target.caPem, maxSockets: scenario.max_vus });
  const context: IterationContext = { scenario, target, client, metrics, finalStates: {}, failures: {} };
  const started = performance.now();
  const loop = await runOpenLoop({
    ratePerS: scenario.rate_per_s, durationMs: scenario.duration_s * 1000, maxInFlight: scenario.max_vus,
    nowMs: () => performance.now(), sleep,
    iteration: (index, intendedMs) => createAndPoll(context, index, intendedMs),
  }).finally(() => client.close());
  for (let i = 0; i < loop.dropped; i++) metrics.add('dropped_iterations', 1);
  const elapsedMs = performance.now() - started;
  return { metrics, loop, elapsedMs, thresholds: evaluateThresholds(scenario.thresholds, metrics, elapsedMs), finalStates: context.finalStates, failuresByCode: context.failures };
}
