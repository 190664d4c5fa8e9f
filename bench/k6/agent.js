// The agent WebSocket scenario under k6: each VU is one device over mutual TLS: AUTH_CHALLENGE,
// AUTH, AUTH_ACK, then heartbeats and telemetry, answering every COMMAND_DELIVERY with
// COMMAND_ACK received, COMMAND_ACK executing and a signed COMMAND_RESULT.
//
//   k6 run -e SDC_GATEWAY_ADDR=127.0.0.1:8443 -e SDC_AGENTS=$PWD/agents.json bench/k6/agent.js
//
// agents.json lists enrolled agent directories (`sdc agent --dir D` makes them):
//   { "agents": [ { "device_id": "lab-01", "dir": "/abs/path/agent-lab-01" } ] }
// k6 chooses a client certificate by host name (options.tlsAuth `domains`), not per connection,
// so device i dials its own alias `<device>.agents.sdc.invalid`, mapped to the gateway by
// options.hosts. The gateway's certificate does not name these aliases, so the server check is
// off here (insecureSkipTLSVerify); the gateway still verifies every client certificate.
//
// No session MAC: the script sends no x25519_pub in AUTH, so, as an older agent, it signs every
// frame with Ed25519 (docs/protocol.md, "Session MAC"), which the gateway accepts. Signing uses
// k6's WebCrypto with Ed25519; a k6 whose WebCrypto lacks Ed25519 fails in importKey, at AUTH.
import { WebSocket } from 'k6/websockets';
import { setInterval, clearInterval, setTimeout } from 'k6/timers';
import { Counter, Rate, Trend } from 'k6/metrics';
import { b64decode, b64encode } from 'k6/encoding';
import { sha256 } from 'k6/crypto';
import { canonicalJson, k6Scenario, scenarioFromEnv } from './lib.js';

const { name, definition } = scenarioFromEnv('agent', 'agent-sessions');
const gatewayAddr = __ENV.SDC_GATEWAY_ADDR || '127.0.0.1:8443';
const aliasDomain = 'agents.sdc.invalid';
// For a quick look (and the Node check of this script): shorter sessions and intervals than the definition's.
const sessionS = Number(__ENV.SDC_SESSION_S || definition.session_s || 60);
const heartbeatMs = Number(__ENV.SDC_HEARTBEAT_MS || definition.heartbeat_interval_ms || 10_000);
const telemetryMs = Number(__ENV.SDC_TELEMETRY_MS || definition.telemetry_interval_ms || 5_000);

/** @type {{ agents: Array<{ device_id: string, dir: string }> }} */
const manifest = JSON.parse(open(__ENV.SDC_AGENTS || './agents.json'));
// Init context: files can only be read here.
const identities = manifest.agents.map((a) => ({
  deviceId: a.device_id,
  keyPem: open(`${a.dir}/device.key`),
  certPem: open(`${a.dir}/device.pem`) + open(`${a.dir}/chain.pem`),
}));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: { [name]: k6Scenario(definition, 'agentSession') },
  thresholds: definition.thresholds,
  hosts: Object.fromEntries(identities.map((i) => [`${i.deviceId}.${aliasDomain}`, gatewayAddr])),
  tlsAuth: identities.map((i) => ({ domains: [`${i.deviceId}.${aliasDomain}`], cert: i.certPem, key: i.keyPem })),
  insecureSkipTLSVerify: true,
};

/**
 * The part of WebCrypto used here. k6 (v1 and later) has it as the global `crypto`; @types/k6
 * does not declare it, and a global declaration file would leak into the Node project's types.
 * @typedef {{ readonly type: string }} K6CryptoKey
 * @typedef {{
 *   importKey(format: 'pkcs8', keyData: ArrayBuffer, algorithm: { name: string }, extractable: boolean, usages: string[]): Promise<K6CryptoKey>,
 *   sign(algorithm: string, key: K6CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer>
 * }} K6Subtle
 */
/** Looked up when a session starts, not at load: a k6 without WebCrypto fails there, with the reason. */
function subtle() {
  /** @type {K6Subtle | undefined} */
  const found = /** @type {any} */ (globalThis).crypto?.subtle;
  if (found === undefined) throw new Error('this k6 has no WebCrypto (crypto.subtle): the agent scenario needs k6 v1 or later');
  return found;
}

/**
 * UTF-8 bytes of a string (k6 has no TextEncoder in every version).
 * @param {string} text
 */
function utf8(text) {
  /** @type {number[]} */
  const bytes = [];
  for (const char of text) {
    const c = /** @type {number} */ (char.codePointAt(0));
    if (c < 0x80) bytes.push(c);
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(bytes).buffer;
}

const authMs = new Trend('sdc_auth_ms', true);
const authOk = new Rate('sdc_auth_ok');
const framesRefused = new Counter('sdc_frames_refused');
const commandsAnswered = new Counter('sdc_commands_answered');
// Delivery is at least once: a command whose ACK the gateway did not see in time (a busy machine) is
// delivered again, and a device answers it again from its journal. Counted apart, so
// sdc_commands_answered counts commands, not deliveries.
const commandsRedelivered = new Counter('sdc_commands_redelivered');
/** Command ids a session has answered; bounded, a session lives minutes and gets a few commands. */
const answeredIdsMax = 10_000;

/** @param {string} pem */
function derOf(pem) {
  return b64decode(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''));
}

export async function agentSession() {
  const identity = identities[(__VU - 1) % identities.length];
  // One session per device at a time: more VUs than devices would take each other's sessions over.
  if (identity === undefined || __VU > identities.length) return;
  const deviceId = identity.deviceId;
  const key = await subtle().importKey('pkcs8', derOf(identity.keyPem), { name: 'Ed25519' }, false, ['sign']);
  const session = { id: '', seq: 0, offsetMs: 0 };
  /** @type {Set<string>} */
  const answeredIds = new Set();

  /** @param {string} type @param {Record<string, unknown>} body @param {number} ts */
  async function frame(type, body, ts) {
    session.seq += 1;
    const unsigned = { v: 1, type, id: `k6${__VU}_${session.seq}`, device_id: deviceId, session_id: session.id, seq: session.seq, ts, body };
    const input = utf8(`sdc-envelope-v1\n${canonicalJson(unsigned)}`);
    const signature = await subtle().sign('Ed25519', key, input);
    return JSON.stringify({ ...unsigned, sig: { alg: 'Ed25519', kid: `device:${deviceId}`, value: b64encode(signature, 'rawurl') } });
  }
  // Frames leave in sequence order: signing is asynchronous, and the gateway refuses a seq below one it accepted.
  let outgoing = Promise.resolve();
  /** SHA-256 of the last TELEMETRY frame sent: the next names it in prev_hash (the gateway checks the chain). */
  let telemetryHash = '';
  /** @param {string} type @param {Record<string, unknown>} body @param {() => number} tsOf */
  function send(type, body, tsOf) {
    outgoing = outgoing.then(async () => {
      const chained = type === 'TELEMETRY' && telemetryHash !== '' ? { ...body, prev_hash: telemetryHash } : body;
      const text = await frame(type, chained, tsOf());
      if (type === 'TELEMETRY') telemetryHash = sha256(text, 'hex');
      ws.send(text);
    }).catch(() => ws.close());
    return outgoing;
  }
  const gatewayNow = () => Date.now() - session.offsetMs;

  const opened = Date.now();
  const ws = new WebSocket(`wss://${identity.deviceId}.${aliasDomain}/v1/agent`);
  /** @type {Array<ReturnType<typeof setInterval>>} */
  const timers = [];
  ws.onmessage = (event) => {
    const message = JSON.parse(String(event?.data));
    const body = message.body;
    if (message.type === 'AUTH_CHALLENGE') {
      session.id = message.session_id;
      send('AUTH', { nonce: body.nonce, agent_version: 'k6-0.1.0', last_command_seq: 0 }, () => Date.now());
    } else if (message.type === 'AUTH_ACK') {
      authMs.add(Date.now() - opened);
      authOk.add(true);
      session.offsetMs = body.clock_offset_ms;
      const started = Date.now();
      timers.push(setInterval(() => send('HEARTBEAT', { uptime_ms: Date.now() - started, queue_depth: 0 }, gatewayNow), heartbeatMs));
      timers.push(setInterval(() => send('TELEMETRY', {
        sampled_at: gatewayNow(), metrics: { cpu_pct: 10, mem_pct: 40, disk_pct: 50, net_rx_bytes_per_sec: 1024, net_tx_bytes_per_sec: 512, process_count: 100 },
      }, gatewayNow), telemetryMs));
    } else if (message.type === 'AUTH_ERROR') {
      authOk.add(false);
      ws.close();
    } else if (message.type === 'COMMAND_DELIVERY') {
      const command = body.command;
      for (const stage of ['received', 'executing']) send('COMMAND_ACK', { command_id: command.id, device_seq: command.device_seq, stage }, gatewayNow);
      send('COMMAND_RESULT', { command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: {}, finished_at: gatewayNow() }, gatewayNow);
      if (answeredIds.has(command.id)) {
        commandsRedelivered.add(1, { attempt: String(body.attempt) });
      } else {
        if (answeredIds.size >= answeredIdsMax) answeredIds.clear();
        answeredIds.add(command.id);
        commandsAnswered.add(1);
      }
    } else if (message.type === 'ERROR') {
      framesRefused.add(1, { code: String(body.code) });
    }
  };
  ws.onclose = () => { for (const timer of timers) clearInterval(timer); };
  setTimeout(() => ws.close(), sessionS * 1000);
}
