import { loadavg } from 'node:os';
import { benchReport, type BenchReport, type BenchRow } from './output.js';
import type { ServerMemory } from './connections-messages.js';
import type { BareClients, ServerChild } from './connections-processes.js';
import {
  agentsPerProcessDefault, bareProcesses, forkBenchProcesses, planAgents, standardProfile, startAgents, startScaleOut, type ScaleOut,
} from './connections-setup.js';
import { sleep } from './wall-time.js';

/**
 * `sdc bench connections` (issue 15): N agents, each authenticated with mutual TLS and AUTH on
 * the standard profile, held by G real gateway processes on one Redis, and in the same run the
 * baseline: a bare mutual-TLS `ws` server holding the same number of idle connections as one
 * gateway holds. Each server's memory is read in its own process after a full garbage
 * collection, before the connections and after they were held for `holdMs`; the figure is the
 * growth per connection, and the answer the difference between a gateway and the bare server.
 */

export interface ConnectionsBenchOptions {
  readonly agents: number;
  readonly gateways: number;
  readonly redisUrl: string;
  readonly mysqlUrl?: string;
  readonly dataDir?: string;
  readonly rampPerSecond?: number;
  readonly agentsPerProcess?: number;
  /** How long the connections are held (heartbeats, telemetry) before the memory is read. */
  readonly holdMs: number;
  /** Skip the bare-server baseline (a run that only shows how many agents G gateways hold). */
  readonly baseline?: boolean;
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
}

export interface ConnectionsDetails {
  /** Mean over the gateways of (gateway RSS per connection) minus the bare server's, KiB. */
  readonly rss_difference_kib_per_connection: number | null;
  readonly goal_difference_kib: number;
  readonly goal_met: boolean | null;
  readonly all_authenticated: boolean;
  /** Agents with a session at the end of the hold. */
  readonly held: number;
  readonly connect_ms: number;
  readonly baseline_connect_ms: number | null;
  readonly agent_processes: number;
  readonly fleet_issued_now: number;
  readonly fleet_issue_ms: number;
  readonly load_average_start: readonly number[];
  readonly load_average_end: readonly number[];
  readonly violations: readonly string[];
  readonly notes: readonly string[];
}

const goalDifferenceKib = 4;

/**
 * The gateway's RSS per connection minus the bare server's, or null when either fell between its
 * idle and loaded readings (a GC or the allocator returning pages outweighed a small fleet): that
 * is no figure per connection, and the goal is then not judged rather than "met".
 */
export function rssDifferencePerConnectionKib(gatewayKib: number, bareKib: number): number | null {
  if (!(gatewayKib > 0) || !(bareKib > 0)) return null;
  return gatewayKib - bareKib;
}
const rampPerSecondDefault = 200;
const kib = 1024;
const mib = 1024 * 1024;

function memoryRow(server: string, role: 'gateway' | 'bare', idle: ServerMemory, loaded: ServerMemory, held: number): BenchRow {
  const per = (after: number, before: number) => (held === 0 ? 0 : (after - before) / held / kib);
  return {
    server, role, connections: held,
    rss_idle_mib: idle.rssBytes / mib, rss_loaded_mib: loaded.rssBytes / mib,
    rss_per_connection_kib: per(loaded.rssBytes, idle.rssBytes),
    // The same growth without V8's young generation, which one process shrinks when quiet and the other keeps (connections-messages.ts).
    rss_without_young_generation_per_connection_kib: per(loaded.rssBytes - loaded.youngGenerationBytes, idle.rssBytes - idle.youngGenerationBytes),
    heap_per_connection_kib: per(loaded.heapUsedBytes, idle.heapUsedBytes),
    external_per_connection_kib: per(loaded.externalBytes, idle.externalBytes),
  };
}

export const connectionsUnits = {
  connections: 'connections', rss_idle_mib: 'MiB', rss_loaded_mib: 'MiB', rss_per_connection_kib: 'KiB', rss_without_young_generation_per_connection_kib: 'KiB',
  heap_per_connection_kib: 'KiB',
  external_per_connection_kib: 'KiB',
} as const;

export async function runConnectionsBench(options: ConnectionsBenchOptions): Promise<BenchReport<ConnectionsDetails>> {
  const deadlineMs = Date.now() + options.timeoutMs;
  const rampPerSecond = options.rampPerSecond ?? rampPerSecondDefault;
  const agentsPerProcess = options.agentsPerProcess ?? agentsPerProcessDefault;
  const loadStart = loadavg();
  const notes: string[] = [];
  // The bare server holds as many connections as the busiest gateway: about agents / gateways.
  const processes = forkBenchProcesses({
    gateways: options.gateways, agents: options.agents, agentsPerProcess,
    ...(options.baseline === false ? {} : { bareConnections: Math.ceil(options.agents / options.gateways) }),
  });
  let scale: ScaleOut | undefined;
  try {
    scale = await startScaleOut({
      agents: options.agents, gateways: processes.gateways, redisUrl: options.redisUrl, rampPerSecond, agentsPerProcess, progress: options.progress,
      ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}), ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    });
    const rows: BenchRow[] = [];
    const idle = await Promise.all(scale.gateways.map((g) => g.memory()));
    const started = await startAgents({
      agents: processes.agents, specs: planAgents(scale.devices, scale.gateways.map((g) => g.url), rampPerSecond), deadlineMs, progress: options.progress,
    });
    const { agents } = processes;
    if (!started.allConnected) notes.push(`only ${agents.totals().connected}/${options.agents} agents authenticated before the timeout`);
    options.progress(`holding ${agents.totals().connected} sessions for ${options.holdMs} ms`);
    await sleep(Math.min(options.holdMs, Math.max(0, deadlineMs - Date.now())));
    const held = agents.totals().connected;
    const loaded = await Promise.all(scale.gateways.map((g) => g.memory()));
    scale.gateways.forEach((gateway, i) => rows.push(memoryRow(gateway.name, 'gateway', idle[i]!, loaded[i]!, loaded[i]!.connections - idle[i]!.connections)));
    const violations = [...agents.violations];
    await agents.stop();
    await Promise.all(scale.gateways.map((gateway) => gateway.close()));

    let baselineConnectMs: number | null = null;
    if (processes.bare !== undefined) {
      // As many idle connections as the busiest gateway held, with the same certificates and TLS settings.
      const count = Math.max(...loaded.map((m, i) => m.connections - idle[i]!.connections), 1);
      const baseline = await bareBaseline({
        scale, ...processes.bare, count, rampPerSecond, agentsPerProcess,
        holdMs: Math.min(options.holdMs, 10_000), deadlineMs, progress: options.progress,
      });
      rows.push(baseline.row);
      baselineConnectMs = baseline.connectMs;
      if (baseline.row.connections !== count) notes.push(`the bare server held ${String(baseline.row.connections)} of ${count} connections`);
    }
    const gatewayRows = rows.filter((r) => r.role === 'gateway');
    const bare = rows.find((r) => r.role === 'bare');
    const meanGateway = gatewayRows.reduce((s, r) => s + Number(r.rss_per_connection_kib), 0) / Math.max(1, gatewayRows.length);
    const difference = bare === undefined ? null : rssDifferencePerConnectionKib(meanGateway, Number(bare.rss_per_connection_kib));
    if (bare !== undefined && difference === null) notes.push('RSS fell between the idle and the loaded reading (gateway or bare server): too few connections to measure memory per connection; goal not judged');
    return benchReport<ConnectionsDetails>({
      benchmark: 'connections',
      parameters: {
        agents: options.agents, gateways: options.gateways, heartbeat_interval_ms: standardProfile.heartbeatIntervalMs,
        telemetry_interval_ms: standardProfile.telemetryIntervalMs, ramp_per_s: rampPerSecond, hold_ms: options.holdMs, agents_per_process: agentsPerProcess,
        sql: options.mysqlUrl ? 'mysql' : 'sql.js', bus_and_kv: 'redis',
      },
      results: rows, units: connectionsUnits,
      details: {
        rss_difference_kib_per_connection: difference === null ? null : Math.round(difference * 1000) / 1000, goal_difference_kib: goalDifferenceKib,
        goal_met: difference === null ? null : difference <= goalDifferenceKib, all_authenticated: started.allConnected, held,
        connect_ms: started.connectMs, baseline_connect_ms: baselineConnectMs, agent_processes: agents.processes,
        fleet_issued_now: scale.issuedNow, fleet_issue_ms: scale.issueMs, load_average_start: loadStart, load_average_end: loadavg(), violations, notes,
      },
    });
  } finally {
    await processes.stop();
    await scale?.close();
  }
}

/** Step: the bare server holding `count` idle connections opened at the agents' ramp; its memory before and after. */
async function bareBaseline(options: {
  scale: ScaleOut; server: ServerChild; clients: BareClients; count: number; rampPerSecond: number; agentsPerProcess: number; holdMs: number; deadlineMs: number;
  progress: (line: string) => void;
}): Promise<{ row: BenchRow; connectMs: number }> {
  const { scale, server, clients } = options;
  await server.begin({
    type: 'start', dataDir: scale.dataDir, redisUrl: '', keyPrefix: '', gatewayId: 'bare', heartbeatIntervalMs: 0, tls: scale.bench.materials.serverTls,
  }, 60_000);
  const dirs = scale.devices.slice(0, options.count).map((d) => d.dir);
  clients.grow(bareProcesses(dirs.length, options.agentsPerProcess));
  clients.load(dirs);
  try {
    const idle = await server.memory();
    options.progress(`baseline: ${dirs.length} bare mutual-TLS connections to ${server.url}`);
    const startedMs = Date.now();
    await clients.open(server.url, scale.bench.materials.rootCaPem, Math.floor((dirs.length * 1000) / options.rampPerSecond), Math.max(1_000, options.deadlineMs - Date.now()));
    const connectMs = Date.now() - startedMs;
    await sleep(options.holdMs);
    const loaded = await server.memory();
    return { row: memoryRow('bare-ws', 'bare', idle, loaded, loaded.connections - idle.connections), connectMs };
  } finally {
    await clients.close();
    await server.close();
  }
}
