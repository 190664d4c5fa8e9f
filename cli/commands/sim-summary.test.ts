import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { commandStates } from '../../core/protocol/command-machine.js';
import { main } from '../main.js';
import { telemetryLine, type SimSummary } from './sim-report.js';

/**
 * The `sdc sim` summary (issue 9): the commit, the scenario as it ran, latency percentiles,
 * failures by code, and a final state that is the CSVs' last row; without a terminal, progress
 * lines every 10 % of virtual time that end at 100 %. Both tiers, on a small fleet.
 */
async function simOnce(tierArgs: string[]) {
  const out = await mkdtemp(join(tmpdir(), 'sdc-sim-summary-'));
  let stdout = '';
  let stderr = '';
  // 150 s of safety phase plus the 60 s liveness bound sample every 2 s; the run ends near 151 s,
  // between samples, so a stale last row would show (10 minutes cost 30-40 s of wall time under load).
  const code = await main(['sim', ...tierArgs, '--agents', '3', '--duration', '150s', '--seed', '7', '--out', out, '--json'], {
    stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {}, stderrIsTty: false,
  });
  const lastRow = async (file: string) => (await readFile(join(out, file), 'utf8')).trimEnd().split('\n').at(-1)!.split(',').map(Number);
  const files = {
    summary: JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimSummary,
    online: await lastRow('online-agents.csv'),
    commands: await lastRow('commands-by-state.csv'),
  };
  await rm(out, { recursive: true, force: true });
  return { code, stderr, summary: JSON.parse(stdout) as SimSummary, files };
}

for (const tier of ['full', 'model'] as const) {
  test(`sdc sim --tier ${tier}: the summary carries the commit, the resolved scenario, percentiles and failures, and agrees with the CSVs' last rows`, async () => {
    const { code, stderr, summary, files } = await simOnce(['--tier', tier]);
    assert.equal(code, 0, stderr);
    assert.deepEqual(files.summary, summary, 'summary.json is the --json summary');
    assert.match(summary.gitCommit ?? '', /^[0-9a-f]{40}$/);
    assert.equal(summary.tier, tier);
    assert.equal(summary.crypto, tier === 'full' ? 'real' : null);
    // The smoke scenario with --agents and --duration applied, everything else from its file.
    assert.equal(summary.resolvedScenario.name, 'smoke');
    assert.equal(summary.resolvedScenario.agents, 3);
    assert.equal(summary.resolvedScenario.safetyMs, 150_000);
    assert.equal(summary.resolvedScenario.livenessBoundMs, summary.livenessBoundMs);
    assert.equal(summary.resolvedScenario.commands.perMinute, 40);

    const { count, p50Ms, p90Ms, p99Ms, maxMs } = summary.latencyMs;
    assert.equal(count, summary.latencyHistogram.reduce((n, b) => n + b.count, 0));
    assert.ok(count > 0, 'commands came back');
    assert.ok(p50Ms! <= p90Ms! && p90Ms! <= p99Ms! && p99Ms! <= maxMs!, JSON.stringify(summary.latencyMs));

    assert.ok(!('succeeded' in summary.failuresByCode));
    const outcomes = Object.values(summary.outcomesByCode).reduce((a, b) => a + b, 0);
    const failedOutcomes = Object.entries(summary.failuresByCode).filter(([key]) => !key.startsWith('refused:')).reduce((n, [, v]) => n + v, 0);
    assert.equal(failedOutcomes, outcomes - (summary.outcomesByCode.succeeded ?? 0));

    // The last CSV rows are the final sample, taken when the run ended, and the summary's totals.
    // The run samples every 2 s and ends between samples (asserted below), so a stale last row would show.
    assert.notEqual(summary.virtualMs % 2_000, 0, `the run ended between samples (t=${summary.virtualMs} ms)`);
    assert.deepEqual(files.online, [summary.virtualMs, summary.final.online_agents]);
    assert.deepEqual(files.commands, [summary.virtualMs, ...commandStates.map((state) => summary.commandsByState[state])]);
    assert.deepEqual(summary.final.commands, summary.commandsByState);
    assert.equal(summary.final.online_agents, 3, 'converged: every agent online');
    const total = commandStates.reduce((n, state) => n + summary.commandsByState[state], 0);
    assert.equal(total, summary.counts.commands_accepted);

    // Not a terminal: a line per 10 % of virtual time, from 0 to 100 %, never a bar.
    const pcts = [...stderr.matchAll(/^sim: (\d+)% /gm)].map((m) => Number(m[1]));
    assert.equal(pcts[0], 0);
    assert.equal(pcts.at(-1), 100);
    assert.ok(pcts.every((p, i) => p % 10 === 0 && (i === 0 || p > pcts[i - 1]!)), pcts.join(' '));
    assert.doesNotMatch(stderr, /\r/);
  });
}

test('sdc sim text summary names the commit, the percentiles, the failures and the final state', async () => {
  let stdout = '';
  const code = await main(['sim', '--tier', 'model', '--agents', '3', '--duration', '10s', '--seed', '3'], {
    stdout: (t) => { stdout += t; }, stderr: () => undefined, readStdin: async () => '', env: {},
  });
  assert.equal(code, 0);
  assert.match(stdout, /^sdc sim at commit [0-9a-f]{40}, model tier$/m);
  assert.match(stdout, /^resolved scenario: \{"name":"smoke",.*"agents":3,.*"safetyMs":10000/m);
  assert.match(stdout, /^round trip \(creation to device result\) of \d+: p50 \d+ ms, p90 \d+ ms, p99 \d+ ms, max \d+ ms$/m);
  assert.match(stdout, /^failures by code: /m);
  assert.match(stdout, /^at the end \(t=\d+ ms, the CSVs' last row\): 3\/3 agents online; commands /m);
  assert.match(stdout, /^telemetry: \d+ frames \(0 batches\), \d+ samples sent, \d+ stored, 0 buffered at the end, 0 dropped$/m);
});

test('sdc sim text summary: the full tier\'s telemetry line has frames, batches, samples, stored, buffered, dropped, lost in crashes and the storage delay', async () => {
  let stdout = '';
  const code = await main(['sim', '--agents', '3', '--duration', '10s', '--seed', '3'], {
    stdout: (t) => { stdout += t; }, stderr: () => undefined, readStdin: async () => '', env: {},
  });
  assert.equal(code, 0);
  assert.match(stdout, /^telemetry: \d+ frames \(0 batches\), \d+ samples sent, \d+ stored, 0 buffered at the end, 0 dropped, 0 lost in crashes; storage delay p50 \d+ ms, p90 \d+ ms, p99 \d+ ms, max \d+ ms$/m);
});

test('telemetryLine: each count in its place; the model\'s telemetry_buffer_dropped as dropped; lost in crashes and the delay only where counted', () => {
  const full = {
    telemetry_frames_sent: 7_099, telemetry_batch_frames_sent: 7_000, telemetry_samples_sent: 112_099, telemetry_stored: 112_090,
    telemetry_samples_buffered_end: 8_106, telemetry_samples_dropped: 3, telemetry_samples_lost_in_crashes: 2,
  };
  const delay = { count: 112_090, p50Ms: 35_327, p90Ms: 70_655, p99Ms: 75_001, maxMs: 75_002 };
  assert.equal(telemetryLine(full, delay),
    'telemetry: 7,099 frames (7,000 batches), 112,099 samples sent, 112,090 stored, 8,106 buffered at the end, 3 dropped, 2 lost in crashes; storage delay p50 35327 ms, p90 70655 ms, p99 75001 ms, max 75002 ms');
  const { telemetry_samples_dropped: _d, telemetry_samples_lost_in_crashes: _c, ...model } = full;
  assert.equal(telemetryLine({ ...model, telemetry_buffer_dropped: 5 }),
    'telemetry: 7,099 frames (7,000 batches), 112,099 samples sent, 112,090 stored, 8,106 buffered at the end, 5 dropped');
  assert.equal(telemetryLine({}, { count: 0, p50Ms: null, p90Ms: null, p99Ms: null, maxMs: null }), 'telemetry: - frames (- batches), - samples sent, - stored, - buffered at the end, - dropped');
});
