import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceModuleArgv } from '../../runtime/fork-module.js';

/**
 * CI's k6 step (ci-target.ts) with k6 replaced by node-check/fake-k6.mjs (SDC_K6_BIN): the
 * stand-in runs api.js and agent.js in Node with k6's modules shimmed against the deployment
 * ci-target started, with the arguments and environment ci-target gave it, and logs each run.
 * So the prepared agent directories are shown to work (each VU connects over mutual TLS with one
 * and authenticates), the queued commands to reach those devices, and k6's exit status to be
 * ci-target's. What this does not check is k6 itself (bench/k6/README.md).
 */
interface FakeK6Record {
  argv: string[];
  vars: Record<string, string>;
  name: string;
  ssl_cert_file: string | null;
  password_in_env: boolean;
  skipped?: boolean;
  status: number;
  commands_succeeded?: number;
  agents?: Array<{ device_id: string; dir: string; files: Record<string, boolean> }>;
  vus?: Array<{ vu: number; auth_ok: number[]; frames_refused: number; commands_answered: number; errors: string[]; closed: number }>;
}

const ciTarget = fileURLToPath(new URL('./ci-target.ts', import.meta.url));
const fakeK6 = fileURLToPath(new URL('./node-check/fake-k6.mjs', import.meta.url));
const runLimitMs = 600_000;

async function runCiTarget(env: Record<string, string>): Promise<{ code: number; stderr: string; runs: FakeK6Record[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-ci-k6-'));
  try {
    const log = join(dir, 'fake-k6.jsonl');
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, sourceModuleArgv(ciTarget), {
        env: { ...process.env, SDC_K6_BIN: fakeK6, SDC_FAKE_K6_LOG: log, ...env }, timeout: runLimitMs, maxBuffer: 16 * 1024 * 1024,
      }, (error, _stdout, stderrText) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr: stderrText }));
    });
    const text = await readFile(log, 'utf8').catch(() => '');
    return { code, stderr, runs: text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as FakeK6Record) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('ci-target runs api.js (api-smoke) and then agent.js (agent-smoke) on prepared devices that authenticate and answer their queued commands; exits 0', async () => {
  const { code, stderr, runs } = await runCiTarget({});
  assert.equal(code, 0, stderr);
  assert.deepEqual(runs.map((r) => r.name), ['api.js', 'agent.js'], stderr);
  const [api, agent] = runs as [FakeK6Record, FakeK6Record];

  // api.js: the operator's password only in the environment, the CA as SSL_CERT_FILE; one command succeeded.
  assert.equal(api.vars['SDC_SCENARIO'], 'api-smoke');
  assert.equal(api.password_in_env, true);
  assert.ok(!api.argv.some((a) => a.startsWith('SDC_PASSWORD')));
  assert.equal(basename(api.ssl_cert_file ?? ''), 'ca.pem');
  assert.equal(api.commands_succeeded, 1);
  assert.equal(api.status, 0);

  // agent.js: agents.json lists two devices that are not api.js's (those have a session already),
  // each with the enrolled files k6 opens.
  assert.equal(agent.vars['SDC_SCENARIO'], 'agent-smoke');
  assert.match(agent.vars['SDC_GATEWAY_ADDR'] ?? '', /^127\.0\.0\.1:\d+$/);
  const apiDevices = (api.vars['SDC_DEVICES'] ?? '').split(',');
  assert.equal(agent.agents?.length, 2);
  for (const device of agent.agents ?? []) {
    assert.ok(!apiDevices.includes(device.device_id), device.device_id);
    assert.deepEqual(device.files, { 'device.key': true, 'device.pem': true, 'chain.pem': true });
  }
  // Each VU, a process of its own, authenticated with its device's certificate and key, had no
  // frame refused, and answered the one command ci-target had queued for that device.
  assert.deepEqual(agent.vus?.map((v) => ({ vu: v.vu, auth_ok: v.auth_ok, frames_refused: v.frames_refused, commands_answered: v.commands_answered, errors: v.errors })), [
    { vu: 1, auth_ok: [1], frames_refused: 0, commands_answered: 1, errors: [] },
    { vu: 2, auth_ok: [1], frames_refused: 0, commands_answered: 1, errors: [] },
  ]);
  assert.equal(agent.status, 0);
  assert.match(stderr, /commands sent to the k6 devices: 2 of 2 succeeded/);
});

test("ci-target exits with k6's status: agent.js exiting 99 (a crossed threshold) makes the step exit 99", async () => {
  const { code, stderr, runs } = await runCiTarget({ SDC_FAKE_K6_SKIP: 'api.js,agent.js', SDC_FAKE_K6_EXIT: 'agent.js=99' });
  assert.equal(code, 99, stderr);
  assert.deepEqual(runs.map((r) => [r.name, r.status]), [['api.js', 0], ['agent.js', 99]]);
});

test('ci-target fails (exit 1) when both k6 runs exit 0 but the commands queued for the k6 devices never succeeded', async () => {
  // Nothing answers the commands: the stand-in runs neither script.
  const { code, stderr, runs } = await runCiTarget({ SDC_FAKE_K6_SKIP: 'api.js,agent.js', SDC_K6_COMMAND_SETTLE_MS: '500' });
  assert.equal(code, 1, stderr);
  assert.deepEqual(runs.map((r) => [r.name, r.status, r.skipped]), [['api.js', 0, true], ['agent.js', 0, true]]);
  assert.match(stderr, /commands sent to the k6 devices: 0 of 2 succeeded \(queued, queued\)/);
});
