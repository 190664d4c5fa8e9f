import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { SdcError } from '../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { attachLatencySamples, benchReport, type BenchReport, type BenchRow } from './output.js';
import type { AgentChildren, BareClients, ServerChild } from './connections-processes.js';
import {
  agentsPerProcessDefault, bareProcesses, forkBenchProcesses, planAgents, standardProfile, startAgents, startScaleOut, type ScaleOut,
} from './connections-setup.js';
import type { CommandRecord } from './roundtrip-deployment.js';
import { latencyHistogramPrecision } from './stats.js';
import { hdrLatencyTableSummary } from './latency-hdr.js';
import { sleep } from './wall-time.js';

/**
 * `sdc bench reconnect` (issue 15): G gateway processes (three unless --gateways) on one Redis hold the fleet; one is
 * killed with SIGKILL (no close frames, no goodbye to Redis) while it holds a third of it. Its
 * agents notice the closed socket, wait their jittered backoff (agent/ws-transport.ts: uniform in
 * [0, 500 ms] after a session that was ready) and go to the next gateway in their list. The figure
 * is, per agent that lost its session, the time from the kill until it was authenticated again,
 * with its distribution; the baseline in the same run is the same number of bare mutual-TLS
 * clients opening at once, with the same jitter, against one bare `ws` server. Commands sent
 * through the API to the killed gateway's agents just before and after the kill must each end
 * `succeeded` and run on the device exactly once.
 */

export interface ReconnectBenchOptions {
  readonly agents: number;
  /** Gateway processes, at least 2 (one is killed); default reconnectGatewaysDefault. */
  readonly gateways?: number;
  readonly redisUrl: string;
  readonly mysqlUrl?: string;
  readonly dataDir?: string;
  readonly rampPerSecond?: number;
  readonly agentsPerProcess?: number;
  readonly commands: number;
  /**
   * `shared` (default, as deployed): every gateway derives its TLS ticket keys from the data
   * directory, so the killed gateway's agents resume their TLS sessions on the others. `split`:
   * the storm with and without resumption in one run: the killed gateway shares its ticket keys
   * with the second gateway only, every other gateway has its own, and the killed gateway's agents
   * are spread evenly over the survivors (planAgents), so half of them (at three gateways) resume
   * and the rest do full handshakes, at the same moment on the same machine.
   */
  readonly ticketKeys?: TicketKeysMode;
  /**
   * The gateways' bound on TLS handshakes in flight per source address (default theirs, 64).
   * Every bench agent connects from 127.0.0.1, so the bound meant for one NAT applies to the whole
   * storm: beyond 64 at once the gateway drops the socket and the agent backs off, doubling.
   */
  readonly handshakesPerSourceMax?: number;
  /** The gateways' bound on TLS handshakes running at once (default theirs, handshakeLimitsDefault); sockets beyond it wait their turn. */
  readonly handshakesInFlightMax?: number;
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
}

export type TicketKeysMode = 'shared' | 'split';

export interface ReconnectDetails {
  readonly ok: boolean;
  readonly killed_gateway: string;
  /** Agents whose session closed after the kill. */
  readonly disconnected: number;
  /** Of those, not authenticated again before the timeout. */
  readonly not_back: number;
  readonly all_back_within_ms: number | null;
  readonly goal_all_back_ms: number;
  readonly commands_accepted: number;
  readonly commands_by_state: Readonly<Record<string, number>>;
  /** Commands the devices' kernels ran more than once, and accepted commands that did not end succeeded. */
  readonly executed_twice: number;
  readonly not_succeeded: number;
  readonly refused_by_code: Readonly<Record<string, number>>;
  readonly connect_ms: number;
  readonly ticket_keys: TicketKeysMode;
  /** Per surviving gateway, its TLS handshakes from just before the kill until every agent was back. */
  readonly storm_tls_handshakes: Readonly<Record<string, { readonly full: number; readonly resumed: number; readonly dropped: Readonly<Record<string, number>> }>>;
  readonly handshakes_per_source_max: number | null;
  readonly handshakes_in_flight_max: number | null;
  readonly load_average_start: readonly number[];
  readonly load_average_end: readonly number[];
  readonly violations: readonly string[];
  readonly notes: readonly string[];
}

/** The issue's storm: one of three gateways killed. */
export const reconnectGatewaysDefault = 3;
const jitterMs = 500;
const goalAllBackMs = 15_000;
const commandPollMs = 250;
const commandSettleMs = 120_000;
const returnsPollMs = 500;

/** A table row: the HdrHistogram percentiles of the samples (bench/latency-hdr.ts; the samples stay exact in reconnect-samples.csv). */
export function distributionRow(what: string, count: number, samples: readonly number[]): BenchRow {
  const s = hdrLatencyTableSummary(samples);
  return { what, count, p50_ms: s.p50, p90_ms: s.p90, p99_ms: s.p99, max_ms: s.max };
}

export const reconnectUnits = { count: 'connections', p50_ms: 'ms', p90_ms: 'ms', p99_ms: 'ms', max_ms: 'ms' } as const;

export async function runReconnectBench(options: ReconnectBenchOptions): Promise<BenchReport<ReconnectDetails>> {
  const deadlineMs = Date.now() + options.timeoutMs;
  const rampPerSecond = options.rampPerSecond ?? 200;
  const agentsPerProcess = options.agentsPerProcess ?? agentsPerProcessDefault;
  const loadStart = loadavg();
  const notes: string[] = [];
  // The bare storm has as many clients as the killed gateway's agents: a third of the fleet.
  const gatewayCount = options.gateways ?? reconnectGatewaysDefault;
  if (!Number.isInteger(gatewayCount) || gatewayCount < 2) throw new SdcError('BENCH_FAILED', `the storm needs at least 2 gateways (one is killed), not ${gatewayCount}`);
  const ticketKeys = options.ticketKeys ?? 'shared';
  if (ticketKeys === 'split' && gatewayCount < 3) throw new SdcError('BENCH_FAILED', 'split ticket keys need at least 3 gateways (one killed, one sharing its keys, one not)');
  const processes = forkBenchProcesses({ gateways: gatewayCount, agents: options.agents, agentsPerProcess, bareConnections: Math.ceil(options.agents / gatewayCount) });
  let scale: ScaleOut | undefined;
  try {
    scale = await startScaleOut({
      agents: options.agents, gateways: processes.gateways, redisUrl: options.redisUrl, rampPerSecond, agentsPerProcess, progress: options.progress,
      ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}), ...(options.dataDir ? { dataDir: options.dataDir } : {}),
      // Split: gateways 0 (killed) and 1 keep the data directory's secret, each other one gets its own.
      ...(ticketKeys === 'split' ? { ticketSecretHex: (i: number) => (i <= 1 ? undefined : randomBytes(32).toString('hex')) } : {}),
      ...(options.handshakesPerSourceMax === undefined ? {} : { pendingHandshakesPerSourceMax: options.handshakesPerSourceMax }),
      ...(options.handshakesInFlightMax === undefined ? {} : { handshakesInFlightMax: options.handshakesInFlightMax }),
    });
    const specs = planAgents(scale.devices, scale.gateways.map((g) => g.url), rampPerSecond);
    const { agents } = processes;
    const started = await startAgents({ agents, specs, deadlineMs, progress: options.progress });
    if (!started.allConnected) throw new SdcError('BENCH_FAILED', `only ${agents.totals().connected}/${options.agents} agents authenticated before the timeout`);
    // Agent i starts on gateway i mod G: the killed gateway's agents are those with i mod G = 0.
    const victim = scale.gateways[0]!;
    const victimDevices = specs.filter((_, i) => i % gatewayCount === 0).map((s) => s.deviceId);
    const commands = new CommandSender(scale.bench.api, scale.bench.runTag);
    const before = Math.floor(options.commands / 2);
    const target = (i: number) => victimDevices[i % victimDevices.length]!;
    await Promise.all(Array.from({ length: before }, (_, i) => commands.send(target(i), i)));
    const survivors = scale.gateways.slice(1);
    const handshakesBefore = await Promise.all(survivors.map((g) => g.tlsHandshakes()));
    options.progress(`${commands.accepted.length} commands accepted; killing ${victim.name} (pid ${victim.pid}) with SIGKILL`);
    const killedMs = Date.now();
    victim.kill();
    // The rest during the storm, to devices that are reconnecting.
    const during = Promise.all(Array.from({ length: options.commands - before }, (_, i) => commands.send(target(before + i), before + i)));
    const returns = await waitAllBack(agents, killedMs, victimDevices.length, Math.min(deadlineMs, killedMs + 10 * goalAllBackMs));
    const allBack = returns.closed >= victimDevices.length && returns.notBack === 0;
    const backMs = Date.now() - killedMs;
    const handshakesAfter = await Promise.all(survivors.map((g) => g.tlsHandshakes()));
    const stormHandshakes = Object.fromEntries(survivors.map((g, i) => {
      const [before, after] = [handshakesBefore[i]!, handshakesAfter[i]!];
      const dropped = Object.fromEntries(Object.entries(after.dropped).map(([code, n]) => [code, n - (before.dropped[code] ?? 0)]));
      return [g.name, { full: after.full - before.full, resumed: after.resumed - before.resumed, dropped }];
    }));
    await during;
    options.progress(`${returns.afterMs.length}/${returns.closed} agents back (${allBack ? `all within ${backMs} ms` : 'not all'})`);
    const settled = await commands.settle(Math.min(deadlineMs, Date.now() + commandSettleMs));
    const executions = await agents.executions();
    const executedTwice = commands.accepted.filter((id) => (executions.get(id) ?? 0) > 1).length;
    const notSucceeded = settled.filter((r) => r.state !== 'succeeded').length;
    const violations = [...agents.violations];
    await agents.stop();
    await Promise.all(scale.gateways.slice(1).map((gateway) => gateway.close()));

    const baselineMs = await bareStorm({ scale, ...processes.bare!, dirs: scale.devices.filter((_, i) => i % gatewayCount === 0).slice(0, returns.closed).map((d) => d.dir), agentsPerProcess, deadlineMs });
    // Each row's samples also go to reconnect-percentiles.csv (attachLatencySamples below), the report's latency CDF.
    const distributions: Array<readonly [string, readonly number[]]> = [
      ['agents_reauthenticated_after_kill', returns.afterMs],
      ...(ticketKeys === 'split' ? splitDistributions(specs.filter((_, i) => i % gatewayCount === 0), scale.gateways[1]!.url, returns.byDevice) : []),
      ['bare_tls_rehandshake', baselineMs],
    ];
    const rows = distributions.map(([what, samples]) => distributionRow(what, samples.length, samples));
    const byState: Record<string, number> = {};
    for (const record of settled) byState[record.state] = (byState[record.state] ?? 0) + 1;
    const allBackWithinMs = allBack && returns.notBack === 0 ? Math.max(0, ...returns.afterMs) : null;
    if (returns.closed < victimDevices.length) notes.push(`${victimDevices.length - returns.closed} of the killed gateway's agents did not see their session close`);
    const ok = allBackWithinMs !== null && executedTwice === 0 && notSucceeded === 0 && violations.length === 0;
    const report = benchReport<ReconnectDetails>({
      benchmark: 'reconnect',
      parameters: {
        agents: options.agents, gateways: gatewayCount, heartbeat_interval_ms: standardProfile.heartbeatIntervalMs, telemetry_interval_ms: standardProfile.telemetryIntervalMs,
        ramp_per_s: rampPerSecond, agents_per_process: agentsPerProcess, commands: options.commands, backoff_after_ready_ms: jitterMs, ticket_keys: ticketKeys,
        sql: options.mysqlUrl ? 'mysql' : 'sql.js', bus_and_kv: 'redis',
      },
      results: rows, units: reconnectUnits, latencyHistogram: latencyHistogramPrecision,
      details: {
        ok, killed_gateway: victim.name, disconnected: returns.closed, not_back: returns.notBack, all_back_within_ms: allBackWithinMs, goal_all_back_ms: goalAllBackMs,
        commands_accepted: commands.accepted.length, commands_by_state: byState, executed_twice: executedTwice, not_succeeded: notSucceeded,
        refused_by_code: commands.refusedByCode, connect_ms: started.connectMs, ticket_keys: ticketKeys, storm_tls_handshakes: stormHandshakes,
        handshakes_per_source_max: options.handshakesPerSourceMax ?? null, handshakes_in_flight_max: options.handshakesInFlightMax ?? null, load_average_start: loadStart, load_average_end: loadavg(), violations,
        notes: [...notes, `wall ms from the kill until the bench saw every one back: ${backMs} (it asks the agent processes every ${returnsPollMs} ms)`],
      },
    });
    attachLatencySamples(report, Object.fromEntries(distributions));
    return report;
  } finally {
    await processes.stop();
    await scale?.close();
  }
}

/**
 * The split storm's two halves: the killed gateway's agents whose next gateway shares its ticket
 * keys (they can resume), and those whose next gateway does not (full handshakes).
 */
function splitDistributions(victims: ReadonlyArray<{ deviceId: string; gatewayUrls?: readonly string[] }>, sharingUrl: string, byDevice: ReadonlyMap<string, number>): Array<readonly [string, readonly number[]]> {
  const sharing: number[] = [];
  const other: number[] = [];
  for (const victim of victims) {
    const ms = byDevice.get(victim.deviceId);
    if (ms !== undefined) (victim.gatewayUrls?.[1] === sharingUrl ? sharing : other).push(ms);
  }
  return [['to_gateway_sharing_ticket_keys', sharing], ['to_gateway_with_other_ticket_keys', other]];
}

/**
 * Polls the agent processes until at least `expected` sessions closed after `sinceMs` and every
 * one of them is authenticated again, or the deadline passes; the last answer.
 */
async function waitAllBack(agents: AgentChildren, sinceMs: number, expected: number, deadlineMs: number): ReturnType<AgentChildren['returns']> {
  for (;;) {
    agents.assertHealthy();
    const returns = await agents.returns(sinceMs);
    if ((returns.closed >= expected && returns.notBack === 0) || Date.now() >= deadlineMs) return returns;
    await sleep(returnsPollMs);
  }
}

/** Commands through the API; refusals counted by code (a refusal is an answer, not a loss). */
class CommandSender {
  readonly accepted: string[] = [];
  readonly refusedByCode: Record<string, number> = {};

  constructor(private readonly api: Awaited<ReturnType<typeof startScaleOut>>['bench']['api'], private readonly runTag: string) {}

  async send(deviceId: string, index: number): Promise<void> {
    try {
      const command = await this.api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} },
        { 'idempotency-key': `reconnect-${this.runTag}-${index}` });
      this.accepted.push(command.id);
    } catch (error) {
      const code = SdcError.is(error) ? String(error.details?.serverCode ?? error.code) : 'UNKNOWN';
      this.refusedByCode[code] = (this.refusedByCode[code] ?? 0) + 1;
    }
  }

  /** Polls every accepted command until each is in a terminal state or the deadline passes; the records as last read. */
  async settle(deadlineMs: number): Promise<CommandRecord[]> {
    for (;;) {
      const records = await Promise.all(this.accepted.map((id) => this.api<CommandRecord>('GET', `/v1/commands/${id}`)));
      const open = records.filter((r) => !commandTerminalStates.includes(r.state as CommandState));
      if (open.length === 0 || Date.now() >= deadlineMs) return records;
      await sleep(commandPollMs);
    }
  }
}

/** Step: the same number of bare mutual-TLS clients opening at once (start jitter as the agents'), against one bare server. */
async function bareStorm(options: {
  scale: ScaleOut; server: ServerChild; clients: BareClients; dirs: string[]; agentsPerProcess: number; deadlineMs: number;
}): Promise<number[]> {
  const { scale, server, clients } = options;
  await server.begin({
    type: 'start', dataDir: scale.dataDir, redisUrl: '', keyPrefix: '', gatewayId: 'bare', heartbeatIntervalMs: 0, tls: scale.bench.materials.serverTls,
  }, 60_000);
  clients.grow(bareProcesses(options.dirs.length, options.agentsPerProcess));
  clients.load(options.dirs);
  try {
    return await clients.open(server.url, scale.bench.materials.rootCaPem, jitterMs, Math.max(1_000, options.deadlineMs - Date.now()));
  } finally {
    await clients.close();
    await server.close();
  }
}
