import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../../core/errors/index.js';

/**
 * The scenario definitions shared with the k6 scripts (bench/k6/scenarios.json): one file, so
 * the figures the harness produces here and k6 produces elsewhere come from the same rates,
 * durations and thresholds.
 */
export interface ApiScenario {
  readonly kind: 'api';
  readonly description: string;
  readonly executor: 'constant-arrival-rate';
  readonly rate_per_s: number;
  readonly duration_s: number;
  readonly pre_allocated_vus: number;
  /** In flight at once: an arrival beyond it is dropped and counted, as k6's dropped_iterations. */
  readonly max_vus: number;
  readonly opcode: string;
  readonly ttl_ms: number;
  readonly poll_interval_ms: number;
  readonly poll_timeout_ms: number;
  readonly thresholds: Readonly<Record<string, readonly string[]>>;
}

// From the sources: bench/harness -> bench/k6; from dist/bench/harness the JSON is not copied, so
// the checkout's own file, three levels up.
const candidateUrls = [new URL('../k6/scenarios.json', import.meta.url), new URL('../../../bench/k6/scenarios.json', import.meta.url)];

/** Limits that keep a typo from asking for a million requests a second or a week-long run. */
export const apiScenarioLimits = Object.freeze({ ratePerSMax: 10_000, durationSMax: 86_400, maxVusMax: 100_000 });

export async function loadScenarioFile(path?: string): Promise<{ path: string; scenarios: Record<string, unknown> }> {
  const paths = path === undefined ? candidateUrls.map((u) => fileURLToPath(u)) : [path];
  for (const candidate of paths) {
    let text: string;
    try {
      text = await readFile(candidate, 'utf8');
    } catch {
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SdcError('CLI_USAGE', `${candidate} is not JSON`);
    }
    const scenarios = (parsed as { scenarios?: unknown }).scenarios;
    if (typeof scenarios !== 'object' || scenarios === null) throw new SdcError('CLI_USAGE', `${candidate} has no scenarios object`);
    return { path: candidate, scenarios: scenarios as Record<string, unknown> };
  }
  throw new SdcError('CLI_USAGE', `no scenario file at ${paths.join(' or ')}`);
}

function positive(name: string, field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new SdcError('CLI_USAGE', `scenario ${name}: ${field} must be a number above 0 and at most ${max}`);
  }
  return value;
}

/** One API scenario by name, checked field by field (the file is shared and hand-edited). */
export function apiScenario(scenarios: Record<string, unknown>, name: string): ApiScenario {
  const raw = scenarios[name] as Partial<ApiScenario> | undefined;
  if (raw === undefined || raw.kind !== 'api') {
    const known = Object.entries(scenarios).filter(([, s]) => (s as { kind?: unknown }).kind === 'api').map(([n]) => n);
    const hint = (raw as { kind?: unknown } | undefined)?.kind === 'agent' ? ' (an agent scenario: sdc bench agents runs it)' : '';
    throw new SdcError('CLI_USAGE', `--scenario ${name} is not an API scenario; known: ${known.join(', ')}${hint}`);
  }
  if (raw.executor !== 'constant-arrival-rate') throw new SdcError('CLI_USAGE', `scenario ${name}: the harness runs constant-arrival-rate only`);
  const thresholds = raw.thresholds ?? {};
  if (typeof thresholds !== 'object' || Object.values(thresholds).some((t) => !Array.isArray(t) || t.some((s) => typeof s !== 'string'))) {
    throw new SdcError('CLI_USAGE', `scenario ${name}: thresholds map a metric to a list of expressions`);
  }
  if (typeof raw.opcode !== 'string') throw new SdcError('CLI_USAGE', `scenario ${name}: opcode is missing`);
  return {
    kind: 'api', description: String(raw.description ?? ''), executor: 'constant-arrival-rate', opcode: raw.opcode, thresholds,
    rate_per_s: positive(name, 'rate_per_s', raw.rate_per_s, apiScenarioLimits.ratePerSMax),
    duration_s: positive(name, 'duration_s', raw.duration_s, apiScenarioLimits.durationSMax),
    pre_allocated_vus: positive(name, 'pre_allocated_vus', raw.pre_allocated_vus, apiScenarioLimits.maxVusMax),
    max_vus: positive(name, 'max_vus', raw.max_vus, apiScenarioLimits.maxVusMax),
    ttl_ms: positive(name, 'ttl_ms', raw.ttl_ms, 86_400_000),
    poll_interval_ms: positive(name, 'poll_interval_ms', raw.poll_interval_ms, 60_000),
    poll_timeout_ms: positive(name, 'poll_timeout_ms', raw.poll_timeout_ms, 86_400_000),
  };
}

/** One stage of a ramping-vus scenario: the VU count ramps linearly to `target_vus` over `duration_s`. */
export interface RampingStage {
  readonly duration_s: number;
  readonly target_vus: number;
}

/** The agent scenario of bench/k6/agent.js (`kind: "agent"`, executor ramping-vus): one device session per iteration. */
export interface AgentScenario {
  readonly kind: 'agent';
  readonly description: string;
  readonly executor: 'ramping-vus';
  readonly stages: readonly RampingStage[];
  /** One iteration: a session held this long, then closed by the agent. */
  readonly session_s: number;
  readonly heartbeat_interval_ms: number;
  readonly telemetry_interval_ms: number;
  readonly thresholds: Readonly<Record<string, readonly string[]>>;
}

/** Bounds on an agent scenario: a typo must not ask for a million sessions or a week-long ramp. */
export const agentScenarioLimits = Object.freeze({ vusMax: 10_000, stagesMax: 100, stageDurationSMax: 86_400, sessionSMax: 86_400, intervalMsMin: 10, intervalMsMax: 3_600_000 });

/** One agent scenario by name, checked field by field, as apiScenario checks an API one. */
export function agentScenario(scenarios: Record<string, unknown>, name: string): AgentScenario {
  const raw = scenarios[name] as Partial<Omit<AgentScenario, 'stages'>> & { stages?: unknown } | undefined;
  if (raw === undefined || raw.kind !== 'agent') {
    const known = Object.entries(scenarios).filter(([, s]) => (s as { kind?: unknown }).kind === 'agent').map(([n]) => n);
    throw new SdcError('CLI_USAGE', `--scenario ${name} is not an agent scenario; known: ${known.join(', ')}`);
  }
  if (raw.executor !== 'ramping-vus') throw new SdcError('CLI_USAGE', `scenario ${name}: the agent harness runs ramping-vus only`);
  const thresholds = raw.thresholds ?? {};
  if (typeof thresholds !== 'object' || Object.values(thresholds).some((t) => !Array.isArray(t) || t.some((s) => typeof s !== 'string'))) {
    throw new SdcError('CLI_USAGE', `scenario ${name}: thresholds map a metric to a list of expressions`);
  }
  const limits = agentScenarioLimits;
  if (!Array.isArray(raw.stages) || raw.stages.length === 0 || raw.stages.length > limits.stagesMax) {
    throw new SdcError('CLI_USAGE', `scenario ${name}: stages is a list of 1 to ${limits.stagesMax} { duration_s, target_vus }`);
  }
  const stages = (raw.stages as unknown[]).map((stage, i): RampingStage => {
    const s = (stage ?? {}) as Partial<RampingStage>;
    const duration = s.duration_s;
    const target = s.target_vus;
    // A stage of 0 s is allowed (k6 jumps to its target at once); a VU count is a whole number.
    if (typeof duration !== 'number' || !Number.isFinite(duration) || duration < 0 || duration > limits.stageDurationSMax) {
      throw new SdcError('CLI_USAGE', `scenario ${name}: stage ${i + 1} duration_s must be 0 to ${limits.stageDurationSMax}`);
    }
    if (typeof target !== 'number' || !Number.isInteger(target) || target < 0 || target > limits.vusMax) {
      throw new SdcError('CLI_USAGE', `scenario ${name}: stage ${i + 1} target_vus must be a whole number 0 to ${limits.vusMax}`);
    }
    return { duration_s: duration, target_vus: target };
  });
  if (!stages.some((s) => s.target_vus > 0)) throw new SdcError('CLI_USAGE', `scenario ${name}: no stage has a VU`);
  return {
    kind: 'agent', description: String(raw.description ?? ''), executor: 'ramping-vus', stages, thresholds,
    session_s: positive(name, 'session_s', raw.session_s, limits.sessionSMax),
    heartbeat_interval_ms: intervalMs(name, 'heartbeat_interval_ms', raw.heartbeat_interval_ms),
    telemetry_interval_ms: intervalMs(name, 'telemetry_interval_ms', raw.telemetry_interval_ms),
  };
}

/** A frame interval: below 10 ms a session would be a flood, not an agent. */
function intervalMs(name: string, field: string, value: unknown): number {
  const ms = positive(name, field, value, agentScenarioLimits.intervalMsMax);
  if (ms < agentScenarioLimits.intervalMsMin) throw new SdcError('CLI_USAGE', `scenario ${name}: ${field} must be at least ${agentScenarioLimits.intervalMsMin}`);
  return ms;
}
