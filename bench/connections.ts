import { loadavg } from 'node:os';
import { benchReport, type BenchReport, type BenchRow } from './output.js';
import type { ServerMemory } from './connections-messages.js';
import type { AgentChildren, BareClients, ServerChild } from './connections-processes.js';
import {
  cpuColumns, cpuRows, cpuSummary, cpuUnits, cpuWindowOf, noCpuColumns, ownCpu, redisCpuOf, type RoleCpu,
} from './connections-cpu.js';
import type { CpuReading } from './connections-messages.js';
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
 *
 * A second baseline row follows from the same bare server: after its idle reading, every bare
 * client sends as many messages per connection as the busiest gateway received per session over
 * its life (echoed), and the server is read again. Why: a Node TLS server's connections hold
 * more resident memory once they have carried traffic (8-17 KiB each after a few dozen small
 * messages, V8's heap unchanged; scripts/measure-tls-traffic-rss.mjs), which idle connections
 * never show, so the idle baseline alone cannot say how much of the gap is the gateway's own.
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
  /** The same against the bare server after its clients sent the gateways' traffic (the `bare-traffic` row), KiB. */
  readonly rss_difference_same_traffic_kib_per_connection: number | null;
  /** Messages each bare connection sent (and had echoed) for that row: the busiest gateway's frames received per session over its life. */
  readonly bare_traffic_messages_per_connection: number | null;
  readonly bare_traffic_message_bytes: number | null;
  /** Messages the bare clients sent in all for that row (each echoed by the bare server). */
  readonly bare_traffic_sent: number | null;
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
  /**
   * The CPU window (connections-cpu.ts): it starts `cpu_lead_in_ms` into the hold and lasts
   * `cpu_window_ms` (wall time between the readings); the rows carry each role's CPU in it.
   */
  readonly cpu_lead_in_ms: number;
  readonly cpu_window_ms: number;
  readonly frames_received_per_s: number | null;
  /** All gateways' CPU over all the frames they received in the window. */
  readonly gateways_cpu_us_per_frame_received: number | null;
  /** Gateways, agent processes and the bench's control plane together (Redis left out: its figure is server-wide). */
  readonly processes_cpu_us_per_frame_received: number | null;
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

/**
 * The bare clients' message size for the baseline with traffic: the order of the agents' frames
 * (MAC'd heartbeats and telemetry); the gateway counts its messages, not their bytes.
 */
const bareTrafficMessageBytes = 400;
/** Between two rounds of messages over all bare connections. */
const bareTrafficIntervalMs = 200;

function memoryRow(server: string, role: 'gateway' | 'bare' | 'bare-traffic', idle: ServerMemory, loaded: ServerMemory, held: number, cpu: BenchRow = noCpuColumns): BenchRow {
  const per = (after: number, before: number) => (held === 0 ? 0 : (after - before) / held / kib);
  return {
    server, role, connections: held,
    rss_idle_mib: idle.rssBytes / mib, rss_loaded_mib: loaded.rssBytes / mib,
    rss_per_connection_kib: per(loaded.rssBytes, idle.rssBytes),
    // The same growth without V8's young generation, which one process shrinks when quiet and the other keeps (connections-messages.ts).
    rss_without_young_generation_per_connection_kib: per(loaded.rssBytes - loaded.youngGenerationBytes, idle.rssBytes - idle.youngGenerationBytes),
    heap_per_connection_kib: per(loaded.heapUsedBytes, idle.heapUsedBytes),
    external_per_connection_kib: per(loaded.externalBytes, idle.externalBytes),
    ...cpu,
  };
}

export const connectionsUnits = {
  connections: 'connections', rss_idle_mib: 'MiB', rss_loaded_mib: 'MiB', rss_per_connection_kib: 'KiB', rss_without_young_generation_per_connection_kib: 'KiB',
  heap_per_connection_kib: 'KiB',
  external_per_connection_kib: 'KiB',
  ...cpuUnits,
} as const;

/** Every role's CPU reading at one moment, read in parallel: [gateways..., agents, control plane, redis if it answered]. */
async function readCpu(gateways: readonly ServerChild[], agents: AgentChildren, redisCpu: () => Promise<CpuReading | undefined>): Promise<{ readings: Array<CpuReading | undefined>; atMs: number }> {
  const readings = await Promise.all([...gateways.map((g) => g.cpu()), agents.cpu(), Promise.resolve(ownCpu()), redisCpu()]);
  return { readings, atMs: performance.now() };
}

/** Redis's INFO cpu through a client of its own (not the stores' clients, whose traffic is measured), or undefined. */
async function redisCpuReader(redisUrl: string): Promise<{ read: () => Promise<CpuReading | undefined>; close: () => void }> {
  const { Redis } = await import('ioredis');
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 2_000 });
  await client.connect().catch(() => undefined);
  return {
    read: async () => redisCpuOf(await client.info('cpu').catch(() => '')),
    close: () => client.disconnect(),
  };
}

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
    const holdMs = Math.min(options.holdMs, Math.max(0, deadlineMs - Date.now()));
    const { leadInMs, windowMs: plannedWindowMs } = cpuWindowOf(holdMs);
    await sleep(leadInMs);
    const redis = await redisCpuReader(options.redisUrl);
    let cpuStart: Awaited<ReturnType<typeof readCpu>>;
    let cpuEnd: Awaited<ReturnType<typeof readCpu>>;
    try {
      cpuStart = await readCpu(scale.gateways, agents, redis.read);
      options.progress(`CPU window: ${plannedWindowMs} ms, from ${leadInMs} ms into the hold`);
      await sleep(plannedWindowMs);
      cpuEnd = await readCpu(scale.gateways, agents, redis.read);
    } finally {
      redis.close();
    }
    const windowMs = Math.round(cpuEnd.atMs - cpuStart.atMs);
    const gatewayCount = scale.gateways.length;
    const held = agents.totals().connected;
    const roles: RoleCpu[] = [
      ...scale.gateways.map((gateway, i): RoleCpu => ({ server: gateway.name, role: 'gateway', before: cpuStart.readings[i]!, after: cpuEnd.readings[i]!, connections: null })),
      { server: `agent-processes-${agents.processes}`, role: 'agents', before: cpuStart.readings[gatewayCount]!, after: cpuEnd.readings[gatewayCount]!, connections: held },
      { server: 'bench-control-plane', role: 'control-plane', before: cpuStart.readings[gatewayCount + 1]!, after: cpuEnd.readings[gatewayCount + 1]!, connections: null },
    ];
    const redisStart = cpuStart.readings[gatewayCount + 2];
    const redisEnd = cpuEnd.readings[gatewayCount + 2];
    if (redisStart !== undefined && redisEnd !== undefined) roles.push({ server: 'redis', role: 'redis', before: redisStart, after: redisEnd, connections: null });
    else notes.push('Redis did not answer INFO cpu: no redis row');
    const loaded = await Promise.all(scale.gateways.map((g) => g.memory()));
    scale.gateways.forEach((gateway, i) => {
      const cpu = cpuColumns(roles[i]!.before, roles[i]!.after, windowMs, Math.max(0, roles[i]!.after.framesReceived - roles[i]!.before.framesReceived));
      rows.push(memoryRow(gateway.name, 'gateway', idle[i]!, loaded[i]!, loaded[i]!.connections - idle[i]!.connections, cpu));
    });
    const violations = [...agents.violations];
    await agents.stop();
    await Promise.all(scale.gateways.map((gateway) => gateway.close()));

    let baselineConnectMs: number | null = null;
    let trafficMessages: number | null = null;
    let trafficSent: number | null = null;
    if (processes.bare !== undefined) {
      // As many idle connections as the busiest gateway held, with the same certificates and TLS settings.
      const perGateway = loaded.map((m, i) => m.connections - idle[i]!.connections);
      const count = Math.max(...perGateway, 1);
      // Frames per session over each gateway's life (GatewayServer.received counts from its start).
      trafficMessages = Math.max(0, ...perGateway.map((n, i) => (n > 0 ? Math.round(cpuEnd.readings[i]!.framesReceived / n) : 0)));
      const baseline = await bareBaseline({
        scale, ...processes.bare, count, rampPerSecond, agentsPerProcess, trafficMessages,
        holdMs: Math.min(options.holdMs, 10_000), deadlineMs, progress: options.progress,
      });
      rows.push(...baseline.rows);
      trafficSent = baseline.trafficSent;
      baselineConnectMs = baseline.connectMs;
      if (baseline.rows[0]!.connections !== count) notes.push(`the bare server held ${String(baseline.rows[0]!.connections)} of ${count} connections`);
    }
    // After the memory rows (the bare server's is the baseline row, second with one gateway): the other roles' CPU.
    rows.push(...cpuRows(roles, windowMs));
    const gatewayRows = rows.filter((r) => r.role === 'gateway');
    const bare = rows.find((r) => r.role === 'bare');
    const bareTraffic = rows.find((r) => r.role === 'bare-traffic');
    const meanGateway = gatewayRows.reduce((s, r) => s + Number(r.rss_per_connection_kib), 0) / Math.max(1, gatewayRows.length);
    const difference = bare === undefined ? null : rssDifferencePerConnectionKib(meanGateway, Number(bare.rss_per_connection_kib));
    const trafficDifference = bareTraffic === undefined ? null : rssDifferencePerConnectionKib(meanGateway, Number(bareTraffic.rss_per_connection_kib));
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
        rss_difference_kib_per_connection: difference === null ? null : Math.round(difference * 1000) / 1000,
        rss_difference_same_traffic_kib_per_connection: trafficDifference === null ? null : Math.round(trafficDifference * 1000) / 1000,
        bare_traffic_messages_per_connection: bareTraffic === undefined ? null : trafficMessages,
        bare_traffic_message_bytes: bareTraffic === undefined ? null : bareTrafficMessageBytes,
        bare_traffic_sent: bareTraffic === undefined ? null : trafficSent,
        // The goal is stated against idle connections (issue 15), so it is judged against the idle row.
        goal_difference_kib: goalDifferenceKib,
        goal_met: difference === null ? null : difference <= goalDifferenceKib, all_authenticated: started.allConnected, held,
        connect_ms: started.connectMs, baseline_connect_ms: baselineConnectMs, agent_processes: agents.processes,
        fleet_issued_now: scale.issuedNow, fleet_issue_ms: scale.issueMs, cpu_lead_in_ms: leadInMs, cpu_window_ms: windowMs, ...cpuSummary(roles, windowMs),
        load_average_start: loadStart, load_average_end: loadavg(), violations, notes,
      },
    });
  } finally {
    await processes.stop();
    await scale?.close();
  }
}

/**
 * Step: the bare server holding `count` idle connections opened at the agents' ramp; its memory
 * before and after (row `bare`), then, when `trafficMessages` > 0, after every connection sent
 * that many messages (row `bare-traffic`, growth from the same empty reading).
 */
async function bareBaseline(options: {
  scale: ScaleOut; server: ServerChild; clients: BareClients; count: number; rampPerSecond: number; agentsPerProcess: number; holdMs: number; deadlineMs: number;
  trafficMessages: number; progress: (line: string) => void;
}): Promise<{ rows: BenchRow[]; connectMs: number; trafficSent: number | null }> {
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
    const rows = [memoryRow('bare-ws', 'bare', idle, loaded, loaded.connections - idle.connections)];
    let trafficSent: number | null = null;
    if (options.trafficMessages > 0) {
      options.progress(`baseline with traffic: ${options.trafficMessages} messages of ${bareTrafficMessageBytes} bytes on each bare connection, echoed`);
      trafficSent = await clients.traffic(options.trafficMessages, bareTrafficMessageBytes, bareTrafficIntervalMs, Math.max(1_000, options.deadlineMs - Date.now()));
      // The last round's echoes read before the reading.
      await sleep(Math.min(options.holdMs, 2_000));
      const afterTraffic = await server.memory();
      rows.push(memoryRow('bare-ws-traffic', 'bare-traffic', idle, afterTraffic, afterTraffic.connections - idle.connections));
    }
    return { rows, connectMs, trafficSent };
  } finally {
    await clients.close();
    await server.close();
  }
}
