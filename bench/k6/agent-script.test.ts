import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { startBenchDeployment } from '../roundtrip-deployment.js';
import { enrollAgents } from '../roundtrip-fleet.js';
import { sleep } from '../wall-time.js';

/**
 * k6 is not installed here, so the agent script runs in Node with k6's modules shimmed
 * (node-check/: the ws package for k6/websockets, node:timers, a metrics recorder) and Node's own
 * WebCrypto for Ed25519, against a real gateway: the gateway must accept its AUTH, its signed
 * heartbeats and telemetry, and its answers to a delivered command. What this does not check is
 * k6 itself (its WebCrypto's Ed25519, its tlsAuth selection); see bench/k6/README.md.
 */
interface Shim { options: Record<string, unknown>; metrics: Record<string, Array<{ value: number; tags: Record<string, string> }>>; errors: string[]; closed: number }

const k6Dir = fileURLToPath(new URL('.', import.meta.url));
const waitLimitMs = 60_000;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + waitLimitMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

test('the k6 agent script, run in Node against a real gateway: AUTH, signed telemetry, a command answered and succeeded, no frame refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-k6-agent-'));
  const bench = await startBenchDeployment({ dataDir: dir, logger: pino({ level: 'silent' }) });
  try {
    const deviceId = `k6-${bench.runTag}`;
    const { identities } = await enrollAgents({ api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir: dir, deviceIds: [deviceId], concurrency: 1, deadlineMs: Date.now() + waitLimitMs, progress: () => undefined });
    await writeFile(join(dir, 'agents.json'), JSON.stringify({ agents: [{ device_id: deviceId, dir: identities[0]!.paths.dir }] }));

    const shim: Shim = { options: {}, metrics: {}, errors: [], closed: 0 };
    const globals = globalThis as unknown as Record<string, unknown>;
    globals['__k6shim'] = shim;
    globals['__ENV'] = {
      SDC_AGENTS: join(dir, 'agents.json'), SDC_GATEWAY_ADDR: new URL(bench.deployment.gatewayUrl).host,
      SDC_SESSION_S: '120', SDC_HEARTBEAT_MS: '300', SDC_TELEMETRY_MS: '300',
    };
    globals['__VU'] = 1;
    globals['__ITER'] = 0;
    // k6's init-context open(): relative to the script, as k6 resolves it.
    globals['open'] = (path: string) => readFileSync(isAbsolute(path) ? path : join(k6Dir, path), 'utf8');
    register(new URL('./node-check/hooks.mjs', import.meta.url));
    const script = (await import(new URL('./agent.js', import.meta.url).href)) as { options: Record<string, unknown>; agentSession: () => Promise<void> };
    shim.options = script.options;
    assert.deepEqual(Object.keys(script.options['hosts'] as object), [`${deviceId}.agents.sdc.invalid`]);
    await script.agentSession();

    await waitFor('the device online', async () => (await bench.api<{ online: boolean }>('GET', `/v1/devices/${deviceId}`)).online || undefined);
    assert.deepEqual(shim.metrics['sdc_auth_ok']?.map((s) => s.value), [1]);
    const created = await bench.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} }, { 'idempotency-key': `k6-${bench.runTag}` });
    const done = await waitFor('the command terminal', async () => {
      const command = await bench.api<{ state: string; history: Array<{ state: string }> }>('GET', `/v1/commands/${created.id}`);
      return ['queued', 'sent', 'ack_received', 'executing'].includes(command.state) ? undefined : command;
    });
    // The device-signed result was accepted; both acks came first.
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.history.map((h) => h.state), ['queued', 'sent', 'ack_received', 'executing', 'succeeded']);
    const telemetry = await waitFor('telemetry stored', async () => {
      const answer = await bench.api<{ items: unknown[] }>('GET', `/v1/devices/${deviceId}/telemetry?limit=5`);
      return answer.items.length > 0 ? answer.items : undefined;
    });
    assert.ok(telemetry.length > 0);
    assert.deepEqual(shim.metrics['sdc_frames_refused'], []);
    assert.deepEqual(shim.errors, []);
    // One command answered; a redelivery (at least once: an ACK late on a busy machine) is answered
    // again from the device's side but counted apart, and is always a later attempt.
    assert.equal(shim.metrics['sdc_commands_answered']?.length, 1);
    for (const sample of shim.metrics['sdc_commands_redelivered'] ?? []) assert.ok(Number(sample.tags['attempt']) > 1, `redelivery with attempt ${sample.tags['attempt']}`);
  } finally {
    // Closing the session ends the script's timers (its onclose), then the deployment goes.
    await bench.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
