// The HTTP API scenario under k6: log in once (setup), then create commands at a constant arrival
// rate, each with its own Idempotency-Key, and poll each until a terminal state.
//
//   SSL_CERT_FILE=data/pki/root-ca.pem k6 run -e SDC_API_URL=https://127.0.0.1:8080 \
//     -e SDC_USER=admin -e SDC_PASSWORD=... -e SDC_DEVICES=lab-01,lab-02 bench/k6/api.js
//
// Options come from scenarios.json (SDC_SCENARIO, default api-commands), the file the Node
// harness (`sdc bench api`) reads too. k6 has no option for a private CA: Go reads SSL_CERT_FILE.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { k6Scenario, scenarioFromEnv } from './lib.js';

const { name, definition } = scenarioFromEnv('api', 'api-commands');
/** The states after which a command never changes again but for a late refinement (core/protocol/command-machine.ts). */
const terminalStates = ['succeeded', 'failed', 'expired', 'rejected', 'dead_lettered', 'timed_out', 'succeeded_late', 'failed_late'];

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: { [name]: k6Scenario(definition, 'createAndPoll') },
  thresholds: definition.thresholds,
  // Latency percentiles the harness reports too.
  summaryTrendStats: ['min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
};

// Custom metrics, named as in the Node harness (bench/harness/api-scenario.ts).
const createMs = new Trend('sdc_command_create_ms', true);
const terminalMs = new Trend('sdc_command_terminal_ms', true);
const succeeded = new Rate('sdc_command_succeeded');

const apiUrl = __ENV.SDC_API_URL || 'https://127.0.0.1:8080';
const devices = (__ENV.SDC_DEVICES || '').split(',').filter((d) => d.length > 0);
/** Keeps this run's idempotency keys apart from any earlier run's. */
const runTag = __ENV.SDC_RUN_TAG || String(Date.now());

export function setup() {
  if (devices.length === 0) fail('set SDC_DEVICES to the enrolled device ids to command (comma-separated)');
  const login = http.post(`${apiUrl}/v1/auth/login`, JSON.stringify({ name: __ENV.SDC_USER, password: __ENV.SDC_PASSWORD }), {
    headers: { 'content-type': 'application/json' }, tags: { name: 'login' },
  });
  if (login.status !== 200) fail(`login answered ${login.status}: ${String(login.body)}`);
  return { token: String(login.json('token')) };
}

/** @param {{ token: string }} data */
export function createAndPoll(data) {
  const auth = { authorization: `Bearer ${data.token}` };
  const key = `${runTag}-${__VU}-${__ITER}`;
  const device = devices[(__VU + __ITER) % devices.length];
  const started = Date.now();
  const created = http.post(`${apiUrl}/v1/commands`, JSON.stringify({ device_id: device, opcode: definition.opcode, args: {}, ttl_ms: definition.ttl_ms }), {
    headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': key }, tags: { name: 'POST /v1/commands' },
  });
  createMs.add(Date.now() - started);
  if (!check(created, { 'command created': (r) => r.status === 201 || r.status === 200 })) {
    succeeded.add(false);
    return;
  }
  const id = String(created.json('id'));
  const deadline = started + (definition.poll_timeout_ms ?? 40_000);
  let state = String(created.json('state'));
  while (!terminalStates.includes(state) && Date.now() < deadline) {
    sleep((definition.poll_interval_ms ?? 200) / 1000);
    const polled = http.get(`${apiUrl}/v1/commands/${id}`, { headers: auth, tags: { name: 'GET /v1/commands/{id}' } });
    if (polled.status === 200) state = String(polled.json('state'));
  }
  if (terminalStates.includes(state)) terminalMs.add(Date.now() - started);
  succeeded.add(state === 'succeeded');
}
