import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { roundtripBenchCommand } from './bench-roundtrip.js';
import type { CliIo } from '../command.js';
import { parseCommandArgs } from '../command.js';
import type { RoundtripSummary } from '../../bench/roundtrip.js';
import type { BenchReport } from '../../bench/output.js';
import { benchReportErrors } from '../../bench/schemas.js';
import { parseMetricsSeriesJsonl } from '../../bench/metrics-series.js';
import { assertStatesLatencyHistogram, samplesCsvSummaries } from '../../bench/latency-table-test-support.js';

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: {} };
}

const latencyKeys = ['count', 'max', 'mean', 'p50', 'p90', 'p99'];

// Behaviour only: the counts and the shape of the result and the files, never the figures.
test('bench roundtrip runs end to end with 3 agents and writes the report files', async () => {
  const out = await mkdtemp(join(tmpdir(), 'sdc-bench-rt-'));
  try {
    const io = captureIo();
    // The load average moves on every read here, as it can on a busy machine between two reads:
    // roundtrip.json must still be the report --json printed (one build, not two).
    const realLoadavg = os.loadavg;
    let loadReads = 0;
    os.loadavg = () => [++loadReads, 1, 1];
    syncBuiltinESMExports();
    const code = await roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '3', '--commands', '2', '--json', '--out', out]), io)
      .finally(() => { os.loadavg = realLoadavg; syncBuiltinESMExports(); });
    const report = JSON.parse(io.out.join('')) as BenchReport<RoundtripSummary>;
    assert.equal(code, 0, io.err.join(''));
    assert.equal(report.benchmark, 'roundtrip');
    assert.deepEqual(benchReportErrors(report), []);
    assert.deepEqual(report.results.map((row) => [row.measure, row.samples]), [
      ['baseline_echo', 6], ['command_server', 6],
      // The server time split by step of each command's history, every command through the four of a success.
      ['server_step_queued_to_sent', 6], ['server_step_sent_to_ack_received', 6], ['server_step_ack_received_to_executing', 6], ['server_step_executing_to_succeeded', 6],
      ['command_client', 6], ['api_post', 6], ['live_lag', 6],
    ]);
    const summary = report.details!;
    assert.deepEqual(summary.agents, { requested: 3, enrolled: 3, online: 3 });
    assert.equal(summary.commands_per_agent, 2);
    assert.deepEqual(summary.real.commands, { total: 6, succeeded: 6, refused: 0, not_sent: 0, refused_by_code: {}, warmup_refused_by_code: {}, not_terminal: 0, by_state: { succeeded: 6 } });
    assert.equal(summary.baseline.samples, 6);
    for (const latency of [summary.baseline.latency_ms, summary.real.server_ms, summary.real.client_ms, summary.real.api_post_ms]) {
      assert.deepEqual(Object.keys(latency).sort(), latencyKeys);
      assert.equal(latency.count, 6);
      assert.ok(latency.p50 <= latency.p90 && latency.p90 <= latency.p99 && latency.p99 <= latency.max);
    }
    // The live lag counts the measured commands only (it once counted the warm-up round too: 9),
    // and it is the tail of the client time of the same commands (wall-clock ms: within 1 ms).
    assert.equal(summary.real.live_lag_ms.count, 6);
    assert.ok(summary.real.live_lag_ms.max <= summary.real.client_ms.max + 1, `lag ${summary.real.live_lag_ms.max} > client ${summary.real.client_ms.max}`);
    assert.deepEqual(Object.keys(summary.ratios.server).sort(), ['max', 'p50', 'p90', 'p99']);
    assert.equal(summary.ok, true);
    assert.equal(summary.environment.stores.sql, 'sql.js');
    assert.ok(summary.environment.open_files_peak === null || summary.environment.open_files_peak > 6);
    const load = summary.commands_phase_load;
    assert.ok(load.event_loop_utilization > 0 && load.event_loop_utilization <= 1, `utilization ${load.event_loop_utilization}`);
    assert.ok(load.event_loop_delay_ms.p50 <= load.event_loop_delay_ms.p99 && load.event_loop_delay_ms.p99 <= load.event_loop_delay_ms.max);
    assert.ok(load.cpu_per_wall > 0);

    assert.deepEqual((await readdir(out)).sort(), ['metrics-end.prom', 'metrics-series.jsonl', 'metrics-start.prom', 'roundtrip-histogram.csv', 'roundtrip-percentiles.csv', 'roundtrip-samples.csv', 'roundtrip.csv', 'roundtrip.json', 'roundtrip.md', 'roundtrip.svg']);
    // Two scrapes around the commands phase, each sample stamped with its time: the end one counts the commands, later than the start one.
    const stamp = (text: string) => Number(/^sdc_agents_online\{[^}]*\} \S+ (\d+)$/m.exec(text)?.[1]);
    const [start, end] = await Promise.all(['metrics-start.prom', 'metrics-end.prom'].map((name) => readFile(join(out, name), 'utf8')));
    assert.match(end!, /^sdc_command_latency_seconds_count\{.*\} [1-9]\d* \d+$/m);
    assert.ok(stamp(end!) > stamp(start!), `${stamp(start!)} then ${stamp(end!)}`);
    // The series over the commands phase: at least those two scrapes, in time order, the first and the last being them.
    const series = parseMetricsSeriesJsonl(await readFile(join(out, 'metrics-series.jsonl'), 'utf8'))!;
    assert.ok(series.entries.length >= 2, `${series.entries.length} scrapes`);
    assert.equal(series.header['interval_ms_requested'], 1_000);
    assert.deepEqual(series.entries.map((e) => e.atMs), [...series.entries.map((e) => e.atMs)].sort((a, b) => a - b));
    assert.equal(series.entries[0]!.atMs, stamp(start!));
    assert.equal(series.entries.at(-1)!.atMs, stamp(end!));
    assert.match(series.entries.at(-1)!.text!, /^sdc_command_latency_seconds_count\{.*\} [1-9]\d*$/m);
    const cdf = (await readFile(join(out, 'roundtrip-percentiles.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(cdf[0], 'measure,percentile,latency_ms');
    assert.equal(cdf.length, 1 + 3 * 12);
    // Every raw sample (issue 14: "CSV of raw samples and percentiles"): 6 per series, the largest each series's max.
    const raw = (await readFile(join(out, 'roundtrip-samples.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(raw[0], 'series,latency_ms');
    for (const measure of ['baseline_echo', 'command_server', 'command_client']) {
      const values = raw.slice(1).filter((line) => line.startsWith(`${measure},`)).map((line) => Number(line.split(',')[1]));
      assert.equal(values.length, 6, measure);
      assert.equal(Math.max(...values), report.results.find((r) => r.measure === measure)!.max_ms, measure);
    }
    // Issue 14: the table's percentiles are HdrHistogram's (the precision the JSON states) over those samples, not nearest-rank ones.
    assertStatesLatencyHistogram(report);
    const summaries = samplesCsvSummaries(raw.join('\n'));
    for (const measure of ['baseline_echo', 'command_server', 'command_client']) {
      const row = report.results.find((r) => r.measure === measure)!;
      const s = summaries.get(measure)!;
      assert.deepEqual([row.p50_ms, row.p90_ms, row.p99_ms], [s.p50, s.p90, s.p99], measure);
    }
    assert.deepEqual(JSON.parse(await readFile(join(out, 'roundtrip.json'), 'utf8')), report);
    const percentiles = (await readFile(join(out, 'roundtrip.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(percentiles[0], 'measure,samples,p50_ms,p90_ms,p99_ms,max_ms,mean_ms');
    assert.equal(percentiles.length, 1 + 9, 'a row per measure: 5, and the server time\'s 4 steps');
    assert.ok(percentiles.every((line) => !line.startsWith(' ') && !line.includes(', ')), 'CSV cells are not padded');
    const histogram = (await readFile(join(out, 'roundtrip-histogram.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(histogram[0], 'le_ms,baseline_echo,command_server,command_client');
    assert.match(histogram.at(-1)!, /^\+Inf,/);
    const counted = histogram.slice(1).map((line) => line.split(',').slice(1).map(Number));
    assert.deepEqual([0, 1, 2].map((column) => counted.reduce((sum, row) => sum + row[column]!, 0)), [6, 6, 6]);
    const svg = await readFile(join(out, 'roundtrip.svg'), 'utf8');
    assert.equal(svg.match(/<rect class="bar"/g)?.length, 12);
    assert.match(await readFile(join(out, 'roundtrip.md'), 'utf8'), /^# Command round trip, 3 agents\n/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('bench roundtrip refuses a missing or out-of-range agent count before starting anything', async () => {
  for (const argv of [[], ['--agents', '0'], ['--agents', '3', '--commands', '0'], ['--agents', 'many']]) {
    await assert.rejects(roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, argv), captureIo()), (error: Error & { code?: string }) => error.code === 'CLI_USAGE');
  }
});

// The open loop end to end: the same counts, the rate in the summary and the headline.
test('bench roundtrip --rate runs the commands and the baseline on a schedule (open loop)', async () => {
  const io = captureIo();
  const code = await roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '2', '--commands', '2', '--rate', '20', '--json']), io);
  assert.equal(code, 0, io.err.join(''));
  const report = JSON.parse(io.out.join('')) as BenchReport<RoundtripSummary>;
  assert.deepEqual(benchReportErrors(report), []);
  const summary = report.details!;
  assert.equal(summary.rate_per_s, 20);
  assert.deepEqual(report.results.map((row) => [row.measure, row.samples]), [
      ['baseline_echo', 4], ['command_server', 4],
      // The server time split by step of each command's history, every command through the four of a success.
      ['server_step_queued_to_sent', 4], ['server_step_sent_to_ack_received', 4], ['server_step_ack_received_to_executing', 4], ['server_step_executing_to_succeeded', 4],
      ['command_client', 4], ['api_post', 4], ['live_lag', 4],
    ]);
  assert.equal(summary.real.commands.succeeded, 4);
  assert.equal(summary.ok, true);
});

test('bench roundtrip --rate refuses a rate that is not a positive number within the bound', async () => {
  for (const rate of ['0', '-5', 'fast', '20000']) {
    await assert.rejects(roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '1', '--rate', rate]), captureIo()),
      (error: unknown) => error instanceof Error && (error as { code?: string }).code === 'CLI_USAGE', rate);
  }
});

// The ladder end to end (issue 17): after the closed loop, the idle load and one open-loop step per
// rate with the same agents, in the summary and the table; the closed-loop figures are kept.
test('bench roundtrip --ladder runs open-loop steps after the commands phase and names the highest rate under the utilization bound', async () => {
  const io = captureIo();
  const code = await roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '2', '--commands', '1', '--ladder', '2,4', '--ladder-step', '1s', '--json']), io);
  assert.equal(code, 0, io.err.join(''));
  const report = JSON.parse(io.out.join('')) as BenchReport<RoundtripSummary>;
  assert.deepEqual(benchReportErrors(report), []);
  const summary = report.details!;
  assert.equal(summary.rate_per_s, null, 'the main phase is still the closed loop');
  assert.equal(summary.real.commands.succeeded, 2);
  const ladder = summary.open_loop_ladder!;
  assert.equal(ladder.elu_max, 0.5);
  assert.equal(ladder.step_ms, 1_000);
  assert.equal(typeof ladder.idle_load.event_loop_utilization, 'number');
  // A step is run unless the one before fell behind or reached the bound; whichever ran, each is whole.
  assert.equal(ladder.steps[0]!.rate_per_s, 2);
  assert.equal(ladder.steps.length + ladder.rates_not_run.length, 2);
  for (const step of ladder.steps) {
    assert.equal(step.commands.offered, step.rate_per_s);
    assert.equal(step.commands.created, step.commands.offered);
    assert.equal(step.server_ms.count, step.commands.succeeded);
  }
  const expected = ladder.steps.filter((s) => s.sustained && s.load.event_loop_utilization < 0.5).map((s) => s.rate_per_s);
  assert.equal(ladder.sustained_rate_below_elu_per_s, expected.length === 0 ? null : Math.max(...expected));
  // The main thread's own CPU per wall, where /proc has it (Linux), next to the utilization it bounds from below.
  if (ladder.idle_load.main_thread_cpu_per_wall !== undefined) assert.equal(ladder.idle_load.main_thread_cpu_per_wall >= 0, true);
  assert.equal('sustained_rate_below_main_thread_cpu_per_s' in ladder, true);
  const table = captureIo();
  assert.equal(await roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '1', '--commands', '1', '--ladder', '2', '--ladder-step', '1s']), table), 0, table.err.join(''));
  assert.match(table.out.join(''), /open-loop ladder \(1000 ms per step[\s\S]*idle \(no commands[\s\S]*2\/s: [\s\S]*highest rate sustained with event-loop utilization under 0\.5: /);
});

test('bench roundtrip --ladder refuses rates that are not ascending positive numbers', async () => {
  for (const ladder of ['', '10,5', '0,10', 'fast', '10,,20', '20000']) {
    await assert.rejects(roundtripBenchCommand.run(parseCommandArgs(roundtripBenchCommand, ['--agents', '1', '--ladder', ladder]), captureIo()),
      (error: unknown) => error instanceof Error && (error as { code?: string }).code === 'CLI_USAGE', ladder);
  }
});
