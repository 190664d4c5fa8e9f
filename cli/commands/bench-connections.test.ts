import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionsBenchCommand, reconnectBenchCommand } from './bench-connections.js';
import { parseCommandArgs, type CliIo } from '../command.js';
import type { BenchReport } from '../../bench/output.js';
import type { ConnectionsDetails } from '../../bench/connections.js';
import type { ReconnectDetails } from '../../bench/reconnect.js';
import { benchReportErrors } from '../../bench/schemas.js';

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: {} };
}

const redisUrl = process.env['REDIS_URL'];
const skip = redisUrl ? false : 'needs REDIS_URL: gateway processes share one Redis';

// Tiny runs of the scale-out benches: behaviour and the report's shape, never a figure.
describe('sdc bench connections and reconnect, tiny', { skip }, () => {
  // One gateway here: the reconnect run below has two, and every gateway process costs seconds of CPU to start.
  it('connections: 3 agents on 1 gateway process, then the bare server with as many as the gateway held', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sdc-bench-conn-'));
    try {
      const io = captureIo();
      const code = await connectionsBenchCommand.run(parseCommandArgs(connectionsBenchCommand,
        ['--agents', '3', '--gateways', '1', '--hold', '3s', '--redis', redisUrl!, '--json', '--out', out]), io);
      assert.equal(code, 0, io.err.join(''));
      const report = JSON.parse(io.out.join('')) as BenchReport<ConnectionsDetails>;
      assert.equal(report.benchmark, 'connections');
      assert.deepEqual(benchReportErrors(report), []);
      // The servers' memory rows, then a CPU row per other process role (the agents' processes, this process, Redis).
      assert.deepEqual(report.results.map((r) => [r.server, r.role, r.connections]), [
        ['gw-bench-1', 'gateway', 3], ['bare-ws', 'bare', 3], ['bare-ws-traffic', 'bare-traffic', 3], ['agent-processes-1', 'agents', 3], ['bench-control-plane', 'control-plane', null], ['redis', 'redis', null],
      ]);
      for (const row of report.results.slice(0, 3)) for (const key of ['rss_per_connection_kib', 'heap_per_connection_kib', 'rss_idle_mib']) assert.equal(typeof row[key], 'number', key);
      const details = report.details!;
      // Issues 15 and 17: each role's CPU over the window of the hold (3 s: a second's lead-in, then the window),
      // and the frames the gateway received in it (none here: the first heartbeat is 30 s away), so no figure per frame.
      assert.equal(details.cpu_lead_in_ms, 1_000);
      assert.ok(details.cpu_window_ms >= 2_000, String(details.cpu_window_ms));
      for (const row of report.results.filter((r) => r.role !== 'bare' && r.role !== 'bare-traffic')) {
        assert.ok(typeof row['cpu_core'] === 'number' && row['cpu_core'] >= 0, JSON.stringify(row));
        assert.equal(Math.abs(Number(row['cpu_core']) - (Number(row['cpu_user_ms']) + Number(row['cpu_system_ms'])) / details.cpu_window_ms) <= 0.002, true, JSON.stringify(row));
        assert.equal(row['frames_received'], report.results[0]!['frames_received']);
        const perFrame = (Number(row['cpu_user_ms']) + Number(row['cpu_system_ms'])) * 1000 / Number(row['frames_received']);
        if (row['frames_received'] === 0) assert.equal(row['cpu_us_per_frame_received'], null);
        else assert.ok(Math.abs(Number(row['cpu_us_per_frame_received']) - perFrame) <= 1, JSON.stringify(row));
      }
      assert.ok(Number.isInteger(report.results[0]!['frames_received']), 'frames counted by the gateway');
      assert.equal(report.results[1]!['cpu_core'], null, 'the bare server is not in the window');
      // The baseline with traffic: each bare connection sent (and had echoed) as many messages as the
      // gateway received per session over its life (AUTH and what followed: at least one).
      const messages = details.bare_traffic_messages_per_connection;
      assert.ok(Number.isInteger(messages) && messages! >= 1, String(messages));
      assert.equal(details.bare_traffic_sent, messages! * 3);
      assert.equal(details.bare_traffic_message_bytes, 400);
      assert.equal(details.rss_difference_same_traffic_kib_per_connection === null || typeof details.rss_difference_same_traffic_kib_per_connection === 'number', true);
      assert.equal(typeof report.units['cpu_us_per_frame_received'], 'string');
      assert.equal(details.all_authenticated, true);
      assert.equal(details.held, 3);
      // Three connections are within the noise of RSS: a figure, or none with the goal not judged and a note saying why.
      if (details.rss_difference_kib_per_connection === null) {
        assert.equal(details.goal_met, null);
        assert.ok(details.notes.some((n) => n.includes('goal not judged')), details.notes.join('; '));
      } else {
        assert.equal(typeof details.goal_met, 'boolean');
      }
      assert.match(report.environment.store_versions?.['redis'] ?? '', /^\d+\.\d+/, 'the Redis version in the environment block');
      // Issue 14: memory per connection as a ratio to the bare server's, measured in the same run
      // (null where either figure is not positive: three connections are within RSS's noise).
      for (const row of report.results) for (const key of ['ratio_to_bare_rss_per_connection', 'ratio_to_bare_heap_per_connection']) assert.ok(key in row && (row[key] === null || typeof row[key] === 'number'), `${key} in ${JSON.stringify(row)}`);
      const bareHeap = report.results[1]!['heap_per_connection_kib'] as number;
      assert.equal(report.results[1]!['ratio_to_bare_heap_per_connection'], bareHeap > 0 ? 1 : null);
      assert.equal(details.fleet_issued_now, 3);
      assert.deepEqual(details.violations, []);
      assert.deepEqual(report.parameters.heartbeat_interval_ms, 30_000);
      assert.deepEqual(report.parameters.telemetry_interval_ms, 60_000);
      const written = await readdir(out);
      for (const name of ['connections.csv', 'connections.json']) assert.ok(written.includes(name), `${name} in ${written.join(', ')}`);
      assert.deepEqual(JSON.parse(await readFile(join(out, 'connections.json'), 'utf8')), report);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('reconnect: the killed gateway\'s agents come back on the other; commands around the kill end succeeded, each run once', async () => {
    const io = captureIo();
    const out = await mkdtemp(join(tmpdir(), 'sdc-bench-reconnect-'));
    try {
    const code = await reconnectBenchCommand.run(parseCommandArgs(reconnectBenchCommand, ['--agents', '4', '--gateways', '2', '--commands', '4', '--redis', redisUrl!, '--json', '--out', out]), io);
    assert.equal(code, 0, io.err.join(''));
    const report = JSON.parse(io.out.join('')) as BenchReport<ReconnectDetails>;
    assert.equal(report.benchmark, 'reconnect');
    assert.deepEqual(benchReportErrors(report), []);
    assert.deepEqual(report.results.map((r) => [r.what, r.count]), [['agents_reauthenticated_after_kill', 2], ['bare_tls_rehandshake', 2]]);
    assert.equal(report.parameters.gateways, 2);
    for (const row of report.results) assert.ok(Number(row.p50_ms) <= Number(row.p90_ms) && Number(row.p90_ms) <= Number(row.p99_ms) && Number(row.p99_ms) <= Number(row.max_ms));
    const details = report.details!;
    assert.equal(details.ok, true);
    assert.equal(details.disconnected, 2);
    assert.equal(details.not_back, 0);
    assert.deepEqual(details.commands_by_state, { succeeded: 4 });
    assert.equal(details.commands_accepted, 4);
    assert.equal(details.executed_twice, 0);
    assert.equal(details.not_succeeded, 0);
    // The re-authentication times and the baseline as a latency CDF (HdrHistogram, 3 significant
    // digits) for sdc report: 12 fixed percentiles per row, rising, ending at the row's max.
    const cdf = (await readFile(join(out, 'reconnect-percentiles.csv'), 'utf8')).trimEnd().split('\n');
    assert.equal(cdf[0], 'series,percentile,latency_ms');
    for (const row of report.results) {
      const points = cdf.slice(1).map((line) => line.split(',')).filter(([series]) => series === row.what).map(([, p, ms]) => [Number(p), Number(ms)] as const);
      assert.equal(points.length, 12, String(row.what));
      assert.deepEqual(points.map(([p]) => p), [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]);
      assert.ok(points.every(([, ms], i) => i === 0 || ms >= points[i - 1]![1]), `${row.what}: ${JSON.stringify(points)}`);
      assert.ok(Math.abs(points.at(-1)![1] - Number(row.max_ms)) <= Number(row.max_ms) * 0.001 + 0.001, `${row.what}: max ${row.max_ms}, p100 ${points.at(-1)![1]}`);
    }
    // Issue 14: the ratio to the same run's baseline (the bare re-handshakes), in the JSON and in --out's.
    const [agentsRow, bareRow] = report.results;
    assert.deepEqual([bareRow!['ratio_to_bare_p50'], bareRow!['ratio_to_bare_p99']], [1, 1]);
    assert.ok(Math.abs(Number(agentsRow!['ratio_to_bare_p50']) - Number(agentsRow!.p50_ms) / Number(bareRow!.p50_ms)) <= 0.002 * Math.max(1, Number(agentsRow!['ratio_to_bare_p50'])), JSON.stringify(report.results));
    assert.equal(typeof report.units['ratio_to_bare_p99'], 'string');
    assert.deepEqual(JSON.parse(await readFile(join(out, 'reconnect.json'), 'utf8')).results, report.results);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
