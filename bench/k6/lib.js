// Shared by the k6 scripts: the scenario definitions (scenarios.json, the same file the Node
// harness reads, so k6 and `sdc bench api` run the same rates, durations and thresholds) turned
// into k6 options, and RFC 8785 canonical JSON for the frames the agent script signs.

/**
 * @typedef {{ duration_s: number, target_vus: number }} Stage
 * @typedef {{
 *   kind: 'api' | 'agent', description: string, executor: 'constant-arrival-rate' | 'ramping-vus',
 *   rate_per_s?: number, duration_s?: number, pre_allocated_vus?: number, max_vus?: number,
 *   opcode?: string, ttl_ms?: number, poll_interval_ms?: number, poll_timeout_ms?: number,
 *   stages?: Stage[], session_s?: number, heartbeat_interval_ms?: number, telemetry_interval_ms?: number,
 *   thresholds: Record<string, string[]>
 * }} ScenarioDefinition
 */

/** @type {{ schema_version: number, scenarios: Record<string, ScenarioDefinition> }} */
const definitions = JSON.parse(open('./scenarios.json'));

/**
 * The named scenario (`-e SDC_SCENARIO=name`, else `fallback`); a name of the other kind or an
 * unknown one stops the script in the init context, before any VU starts.
 * @param {'api' | 'agent'} kind
 * @param {string} fallback
 * @returns {{ name: string, definition: ScenarioDefinition }}
 */
export function scenarioFromEnv(kind, fallback) {
  const name = __ENV.SDC_SCENARIO || fallback;
  const definition = definitions.scenarios[name];
  if (definition === undefined || definition.kind !== kind) {
    const known = Object.keys(definitions.scenarios).filter((n) => definitions.scenarios[n]?.kind === kind);
    throw new Error(`SDC_SCENARIO=${name} is not a ${kind} scenario; known: ${known.join(', ')}`);
  }
  return { name, definition };
}

/**
 * The k6 `scenarios` entry of a definition, as k6 users write it. SDC_RATE and SDC_DURATION_S
 * override the rate and the duration for a quick look, as the Node harness's --rate and --duration do.
 * @param {ScenarioDefinition} definition
 * @param {string} exec
 * @returns {import('k6/options').Scenario}
 */
export function k6Scenario(definition, exec) {
  if (definition.executor === 'constant-arrival-rate') {
    return {
      executor: 'constant-arrival-rate', exec,
      rate: Number(__ENV.SDC_RATE || definition.rate_per_s), timeUnit: '1s',
      duration: `${Number(__ENV.SDC_DURATION_S || definition.duration_s)}s`,
      preAllocatedVUs: definition.pre_allocated_vus ?? 1, maxVUs: definition.max_vus ?? 1,
    };
  }
  return {
    executor: 'ramping-vus', exec, startVUs: 0,
    stages: (definition.stages ?? []).map((s) => ({ duration: `${s.duration_s}s`, target: s.target_vus })),
    gracefulRampDown: '30s',
  };
}

/**
 * RFC 8785 canonical JSON for the values frames carry (objects, arrays, strings, booleans, null
 * and numbers, which JSON.stringify already writes in ECMAScript form); members sorted by UTF-16
 * code units, as the default sort does.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonical JSON has no NaN or Infinity');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = /** @type {Record<string, unknown>} */ (value);
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}
