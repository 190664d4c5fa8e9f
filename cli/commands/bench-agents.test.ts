import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { main } from '../main.js';
import { agentScenario, apiScenario, loadScenarioFile } from '../../bench/harness/scenario.js';
import { runAgentScenario } from '../../bench/harness/agent-scenario.js';
import { benchReportErrors } from '../../bench/schemas.js';
import { startBenchDeployment } from '../../bench/roundtrip-deployment.js';
import { enrollAgents } from '../../bench/roundtrip-fleet.js';
import { sleep } from '../../bench/wall-time.js';
import { withAgentOverrides } from './bench-agents.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

interface AgentsReport {
  benchmark: string;
  parameters: Record<string, unknown>;
  results: Array<Record<string, number | string>>;
  details: {
    thresholds: Array<{ metric: string; threshold: string; crossed: boolean }>; iterations: number; interrupted_iterations: number;
    frames_refused_by_code: Record<string, number>; not_authenticated_by_reason: Record<string, number>; commands: { created: number } | null;
  };
}

const row = (report: AgentsReport, metric: string) => report.results.find((r) => r['metric'] === metric)!;

/**
 * The definition's thresholds with every latency bound (p(N)<ms) turned into one any run holds
 * (p(N)>=0): still evaluated and reported, never crossed by a busy machine. Tests assert what the
 * run did, not how fast (a smoke run's ws_connecting p95 crossed 1000 ms at load 20).
 */
function withoutTimingBounds(thresholds: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(thresholds).map(([metric, list]) => [metric, list.map((t) => t.replace(/^(p\(\d+(?:\.\d+)?\))<\d+(?:\.\d+)?$/, '$1>=0'))]));
}

test('the shared scenario file: every agent scenario the k6 script can run, the harness can run too; each kind refuses the other', async () => {
  const file = await loadScenarioFile();
  const agentNames = Object.entries(file.scenarios).filter(([, raw]) => (raw as { kind: string }).kind === 'agent').map(([name]) => name);
  assert.ok(agentNames.includes('agent-sessions'));
  for (const name of agentNames) assert.equal(agentScenario(file.scenarios, name).executor, 'ramping-vus');
  assert.throws(() => agentScenario(file.scenarios, 'api-smoke'), /not an agent scenario; known: agent-sessions/);
  assert.throws(() => apiScenario(file.scenarios, 'agent-sessions'), /not an API scenario; known: api-commands, api-smoke \(an agent scenario: sdc bench agents runs it\)/);
  assert.throws(() => agentScenario({ x: { kind: 'agent', executor: 'ramping-vus', stages: [{ duration_s: 1, target_vus: 1.5 }], session_s: 1, heartbeat_interval_ms: 100, telemetry_interval_ms: 100 } }, 'x'), /whole number/);
  assert.throws(() => agentScenario({ x: { kind: 'agent', executor: 'ramping-vus', stages: [{ duration_s: 1, target_vus: 1 }], session_s: 1, heartbeat_interval_ms: 1, telemetry_interval_ms: 100 } }, 'x'), /at least 10/);
});

test('sdc bench agents overrides: --vus scales the targets to a new peak, --duration the stage times to a new total', async () => {
  const file = await loadScenarioFile();
  const scenario = agentScenario(file.scenarios, 'agent-sessions');
  const args = { values: { vus: '10', duration: '33s', session: '5s', heartbeat: '1s' }, positionals: [] };
  const changed = withAgentOverrides(args as unknown as Parameters<typeof withAgentOverrides>[0], scenario);
  assert.deepEqual(changed.stages, [{ duration_s: 6, target_vus: 10 }, { duration_s: 24, target_vus: 10 }, { duration_s: 3, target_vus: 0 }]);
  assert.equal(changed.session_s, 5);
  assert.equal(changed.heartbeat_interval_ms, 1000);
  assert.equal(changed.telemetry_interval_ms, scenario.telemetry_interval_ms);
  // Each VU is a device: fewer devices than the peak is refused before anything connects.
  await assert.rejects(runAgentScenario(changed, [], { gracefulRampDownMs: 0, gracefulStopMs: 0, connectTimeoutMs: 1_000 }), /ramps to 10 VUs and each needs its own device; 0 given/);
});

test('sdc bench agents: a tiny ramping-vus run in process, thresholds from the definition, exit 99 when one is crossed, every file written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-agents-test-'));
  try {
    // The smoke scenario's own thresholds with their timing bounds relaxed, plus one no run can hold: the run must end in 99 with every figure written.
    const file = await loadScenarioFile();
    const smoke = file.scenarios['agent-smoke'] as { thresholds: Record<string, string[]> };
    const tiny = {
      ...smoke, stages: [{ duration_s: 0.5, target_vus: 2 }, { duration_s: 2.5, target_vus: 2 }, { duration_s: 0.5, target_vus: 0 }],
      session_s: 2, heartbeat_interval_ms: 300, telemetry_interval_ms: 300, thresholds: { ...withoutTimingBounds(smoke.thresholds), sdc_auth_ms: ['min<0'] },
    };
    await writeFile(join(dir, 'scenarios.json'), JSON.stringify({ scenarios: { tiny } }));
    const run = await sdc(['bench', 'agents', '--scenarios', join(dir, 'scenarios.json'), '--scenario', 'tiny', '--command-rate', '5', '--json', '--out', join(dir, 'out')]);
    assert.equal(run.code, 99, run.stderr);
    const report = JSON.parse(run.stdout) as AgentsReport;
    assert.equal(report.benchmark, 'agents');
    assert.deepEqual(benchReportErrors(report), []);
    assert.deepEqual(report.details.thresholds.filter((t) => t.crossed).map((t) => `${t.metric} ${t.threshold}`), ['sdc_auth_ms min<0']);
    assert.match(run.stderr, /^x sdc_auth_ms min<0/m);
    assert.match(run.stderr, /^ok sdc_frames_refused count<1/m);
    // Every session authenticated, none refused a frame; each VU looped at least one whole session.
    assert.equal(row(report, 'sdc_auth_ok')['rate'], 1);
    assert.equal(row(report, 'sdc_frames_refused')['total'], 0);
    assert.ok(report.details.iterations >= 2, JSON.stringify(report.details));
    assert.equal(row(report, 'iterations')['total'], report.details.iterations);
    assert.equal(row(report, 'ws_sessions')['total'], Number(row(report, 'sdc_auth_ms')['samples']));
    assert.equal(row(report, 'vus')['max'], 2);
    assert.equal(row(report, 'vus_max')['last'], 2);
    // Heartbeats and telemetry every 300 ms over 2 s sessions: many frames each way, and the commands sent through the API answered.
    assert.ok(Number(row(report, 'ws_msgs_sent')['total']) > 4 * report.details.iterations);
    assert.ok(report.details.commands !== null && report.details.commands.created > 0);
    assert.ok(Number(row(report, 'sdc_commands_answered')['total']) > 0, JSON.stringify(report.details));
    assert.deepEqual((await readdir(join(dir, 'out'))).sort(), ['agents-cdf.svg', 'agents-percentiles.csv', 'agents-samples.csv', 'agents.csv', 'agents.json', 'agents.md', 'agents.svg']);
    assert.match(await readFile(join(dir, 'out', 'agents.md'), 'utf8'), /\| sdc_auth_ms \| min<0 \| [\d.]+ \| yes \|/);
    assert.match(await readFile(join(dir, 'out', 'agents-percentiles.csv'), 'utf8'), /^ws_connecting,100,[\d.]+$/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sdc bench agents --agents-file: the devices of a running deployment (agents.json as agent.js reads it); the gateway takes their signed answers; exit 0 when every threshold holds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-agents-remote-'));
  const bench = await startBenchDeployment({ dataDir: dir, logger: pino({ level: 'silent' }) });
  try {
    const deviceIds = [`remote-${bench.runTag}-0`];
    const { identities } = await enrollAgents({ api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir: dir, deviceIds, concurrency: 1, deadlineMs: Date.now() + 60_000, progress: () => undefined });
    await writeFile(join(dir, 'agents.json'), JSON.stringify({ agents: identities.map((i) => ({ device_id: i.deviceId, dir: i.paths.dir })) }));
    const smoke = (await loadScenarioFile()).scenarios['agent-smoke'] as { thresholds: Record<string, string[]> };
    await writeFile(join(dir, 'scenarios.json'), JSON.stringify({ scenarios: { one: { ...smoke, thresholds: withoutTimingBounds(smoke.thresholds), stages: [{ duration_s: 0, target_vus: 1 }, { duration_s: 3, target_vus: 1 }], session_s: 30 } } }));
    // A command queued before the run: delivered at the VU's AUTH, answered with both acks and a device-signed result.
    const created = await bench.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceIds[0], opcode: 'EXEC_PING_KERNEL', args: {} }, { 'idempotency-key': `agents-${bench.runTag}` });
    const gateway = new URL(bench.deployment.gatewayUrl).host;
    const run = await sdc(['bench', 'agents', '--scenarios', join(dir, 'scenarios.json'), '--scenario', 'one', '--agents-file', join(dir, 'agents.json'), '--gateway', gateway, '--graceful-stop', '500ms', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as AgentsReport;
    assert.deepEqual(benchReportErrors(report), []);
    assert.equal(report.parameters['target'], 'remote');
    assert.ok(report.details.thresholds.length > 0 && report.details.thresholds.every((t) => !t.crossed));
    // The 30 s session outlives the 3 s stage and the 0.5 s gracefulStop: interrupted, as k6 interrupts it.
    assert.deepEqual([report.details.iterations, report.details.interrupted_iterations], [0, 1]);
    assert.equal(row(report, 'sdc_commands_answered')['total'], 1);
    let command = { state: '', history: [] as Array<{ state: string }> };
    for (let i = 0; i < 100 && command.state !== 'succeeded'; i++) {
      command = await bench.api('GET', `/v1/commands/${created.id}`);
      if (command.state !== 'succeeded') await sleep(100);
    }
    assert.deepEqual(command.history.map((h) => h.state), ['queued', 'sent', 'ack_received', 'executing', 'succeeded']);
    assert.equal((await sdc(['bench', 'agents', '--agents-file', join(dir, 'agents.json'), '--command-rate', '1'])).code, 2);
  } finally {
    await bench.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('sdc bench agents: usage errors before anything starts', async () => {
  // A threshold on a metric the harness does not record, or of the wrong kind: refused before the deployment starts, not after the run.
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-agents-usage-'));
  try {
    const smoke = (await loadScenarioFile()).scenarios['agent-smoke'] as object;
    for (const thresholds of [{ checks: ['rate>0.9'] }, { sdc_auth_ok: ['p(95)<1'] }]) {
      await writeFile(join(dir, 'scenarios.json'), JSON.stringify({ scenarios: { bad: { ...smoke, thresholds } } }));
      const run = await sdc(['bench', 'agents', '--scenarios', join(dir, 'scenarios.json'), '--scenario', 'bad']);
      assert.equal(run.code, 2, run.stderr);
      assert.doesNotMatch(run.stderr, /enrolled/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal((await sdc(['bench', 'agents', '--scenario', 'api-smoke'])).code, 2);
  assert.equal((await sdc(['bench', 'agents', '--scenario', 'agent-smoke', '--vus', '0'])).code, 2);
  assert.equal((await sdc(['bench', 'agents', '--scenario', 'agent-smoke', '--gateway', '127.0.0.1:1'])).code, 2);
  assert.equal((await sdc(['bench', 'agents', '--scenario', 'agent-smoke', '--agents-file', '/nonexistent/agents.json'])).code, 2);
});
