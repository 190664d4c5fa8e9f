import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { systemClock } from '../../runtime/system.js';
import { startAgentProcesses } from '../roundtrip-agent-processes.js';
import { startBenchDeployment } from '../roundtrip-deployment.js';
import { enrollAgents, waitForOnline } from '../roundtrip-fleet.js';

/**
 * k6 is not installed here, so api.js runs in Node with k6's modules shimmed (node-check/: k6/http
 * synchronous through a child process per request, trusting only our root CA as SSL_CERT_FILE
 * makes k6 do) against a real deployment with a real agent. The script runs in its own process:
 * its synchronous requests and sleeps would otherwise block the deployment they wait for.
 */
interface Recorded {
  options: { scenarios: Record<string, { executor: string; rate: number; duration: string }>; thresholds: Record<string, string[]> };
  shim: {
    requests: Array<{ method: string; url: string; status: number; headers: Record<string, string> }>;
    checks: Array<{ name: string; ok: boolean }>;
    metrics: Record<string, Array<{ value: number }>>;
  };
}

const nodeCheck = fileURLToPath(new URL('./node-check/', import.meta.url));

test('the k6 API script, run in Node against a real deployment: login, commands with Idempotency-Keys, polled to succeeded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-k6-api-'));
  const bench = await startBenchDeployment({ dataDir: dir, logger: pino({ level: 'silent' }) });
  let stopAgents = async () => undefined as void;
  try {
    const deadlineMs = systemClock.nowMs() + 60_000;
    const deviceId = `k6api-${bench.runTag}`;
    const { identities } = await enrollAgents({ api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir: dir, deviceIds: [deviceId], concurrency: 1, deadlineMs, progress: () => undefined });
    stopAgents = (await startAgentProcesses({ identities, batchSize: 1, deadlineMs, verbose: false, progress: () => undefined })).stop;
    assert.equal(await waitForOnline(bench.api, new Set([deviceId]), deadlineMs), 1);
    await bench.deployment.controlPlane!.auth.users.add({ name: 'k6-operator', role: 'operator', password: 'k6 operator password', nowMs: systemClock.nowMs() });
    await writeFile(join(dir, 'ca.pem'), bench.caPem);

    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', join(nodeCheck, 'register.mjs'), join(nodeCheck, 'run-api.mjs')], {
        env: {
          PATH: process.env.PATH ?? '', SDC_CA_FILE: join(dir, 'ca.pem'), SDC_API_URL: bench.apiUrl, SDC_USER: 'k6-operator', SDC_PASSWORD: 'k6 operator password',
          SDC_DEVICES: deviceId, SDC_SCENARIO: 'api-smoke', SDC_RUN_TAG: bench.runTag, SDC_ITERATIONS: '3',
        },
        timeout: 120_000, maxBuffer: 16 * 1024 * 1024,
      }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
    const { options, shim } = JSON.parse(output) as Recorded;
    // The options k6 would run: the shared definition's executor, rate and thresholds.
    assert.deepEqual(Object.keys(options.scenarios), ['api-smoke']);
    assert.equal(options.scenarios['api-smoke']!.executor, 'constant-arrival-rate');
    assert.deepEqual(options.thresholds['sdc_command_succeeded'], ['rate>=1']);
    // login, then per iteration one create with its own key and polls until terminal.
    assert.equal(shim.requests[0]!.url, `${bench.apiUrl}/v1/auth/login`);
    const creates = shim.requests.filter((r) => r.method === 'POST' && r.url.endsWith('/v1/commands'));
    assert.deepEqual(creates.map((r) => r.status), [201, 201, 201]);
    assert.deepEqual(creates.map((r) => r.headers['idempotency-key']), [0, 1, 2].map((i) => `${bench.runTag}-1-${i}`));
    assert.ok(shim.requests.some((r) => r.method === 'GET' && r.status === 200));
    assert.deepEqual(shim.checks.map((c) => c.ok), [true, true, true]);
    assert.deepEqual(shim.metrics['sdc_command_succeeded']!.map((s) => s.value), [1, 1, 1]);
    assert.equal(shim.metrics['sdc_command_terminal_ms']!.length, 3);
  } finally {
    await stopAgents();
    await bench.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
