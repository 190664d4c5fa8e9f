import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { SdcError } from '../core/errors/index.js';
import type { WorkerAgentSpec } from '../sim/real/messages.js';
import { ensureBenchFleet, type BenchDevice } from './connections-fleet.js';
import { AgentChildren, BareClients, ServerChild } from './connections-processes.js';
import { startBenchDeployment, type BenchDeployment } from './roundtrip-deployment.js';
import { removeKeysWithPrefix } from '../server/stores/redis-prefix-cleanup.js';

/**
 * What `sdc bench connections` and `sdc bench reconnect` share: a control plane in this process
 * (Redis, and SQL embedded or MySQL), the bench fleet (connections-fleet.ts), G real gateway
 * processes on the one Redis, and the agents in child processes, each process well inside the
 * 20,000 open files one process may hold here.
 */

/** The standard profile (issue 15): heartbeat every 30 s, telemetry every 60 s. */
export const standardProfile = Object.freeze({ heartbeatIntervalMs: 30_000, telemetryIntervalMs: 60_000 });
/** Agents per agent process by default: a socket each, far below the open-files cap. */
export const agentsPerProcessDefault = 5_000;
export const agentsPerProcessMax = 15_000;
/** As the agents' driver does in production (agent/ws-transport.ts caps at 30 s); the simulator's workers use 8 s. */
export const agentBackoffMaxMs = 8_000;
const gatewayStartTimeoutMs = 120_000;
/** Agents per process in their handshake at once (connections-agent-worker.ts, the closed-loop ramp). */
export const startWindowPerProcess = 32;

/**
 * Every child process of a run, forked at its start: each spends seconds of CPU loading its
 * modules (more under tsx), and forked together they load while the control plane starts and
 * the fleet is issued, instead of one after the other. Nothing is started in them yet.
 */
export interface BenchProcesses {
  /** Not started; startScaleOut starts them. */
  readonly gateways: readonly ServerChild[];
  readonly agents: AgentChildren;
  /** The baseline's bare server, not started; absent in a run without a baseline. */
  readonly bare?: { readonly server: ServerChild; readonly clients: BareClients };
  /** Stops every child (each is killed if it has not exited within 30 s). */
  stop(): Promise<void>;
}

/** `bareConnections` undefined: no baseline, no bare processes. */
export function forkBenchProcesses(options: { gateways: number; agents: number; bareConnections?: number; agentsPerProcess: number }): BenchProcesses {
  const gateways = Array.from({ length: options.gateways }, (_, i) => ServerChild.fork('gateway', `gw-bench-${i + 1}`));
  const agents = new AgentChildren(Math.max(1, Math.ceil(options.agents / options.agentsPerProcess)));
  const bare = options.bareConnections === undefined
    ? undefined
    : { server: ServerChild.fork('bare', 'bare-ws'), clients: new BareClients(bareProcesses(options.bareConnections, options.agentsPerProcess)) };
  return {
    gateways, agents, ...(bare ? { bare } : {}),
    stop: async () => {
      await Promise.allSettled([agents.stop(), bare?.clients.close()]);
      await Promise.allSettled([...gateways, ...(bare ? [bare.server] : [])].map((server) => server.close()));
    },
  };
}

/** Bare client processes for `connections` connections. */
export function bareProcesses(connections: number, agentsPerProcess: number): number {
  return Math.max(1, Math.ceil(connections / agentsPerProcess));
}

export interface ScaleOutOptions {
  readonly agents: number;
  /** Forked gateway processes (forkBenchProcesses), started here; the caller stops them. */
  readonly gateways: readonly ServerChild[];
  readonly redisUrl: string;
  readonly mysqlUrl?: string;
  /** Kept (and its fleet reused by later runs) when given; else a temporary directory, removed. */
  readonly dataDir?: string;
  /** Agents' first connections start at this rate (a deterministic ramp). */
  readonly rampPerSecond: number;
  readonly agentsPerProcess: number;
  readonly progress: (line: string) => void;
  /** Gateway i's TLS ticket secret (hex), or undefined for the data directory's, which every gateway shares by default. */
  readonly ticketSecretHex?: (gatewayIndex: number) => string | undefined;
  /** Each gateway's bound on handshakes in flight per source address; default the gateway's own (64). */
  readonly pendingHandshakesPerSourceMax?: number;
  /** Each gateway's bound on TLS handshakes running at once; default the gateway's own. */
  readonly handshakesInFlightMax?: number;
}

export interface ScaleOut {
  readonly bench: BenchDeployment;
  readonly devices: readonly BenchDevice[];
  readonly issuedNow: number;
  readonly issueMs: number;
  readonly gateways: readonly ServerChild[];
  readonly dataDir: string;
  readonly keyPrefix: string;
  close(): Promise<void>;
}

/** One Redis key prefix per data directory: a kept directory's fleet keeps its keys. */
function keyPrefixOf(dataDir: string): string {
  return `sdc-bench-conn-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}:`;
}

/**
 * Steps: data directory, control plane, fleet, then the gateway processes started together.
 * Everything opened here is closed by `close` (or here on failure); the gateways are the caller's.
 */
export async function startScaleOut(options: ScaleOutOptions): Promise<ScaleOut> {
  const dataDir = options.dataDir ?? await mkdtemp(join(tmpdir(), 'sdc-bench-conn-'));
  const keyPrefix = keyPrefixOf(dataDir);
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
    // A temporary directory's fleet is gone with it: its Redis keys too (they were left behind, 390
    // on the shared Redis). A kept --dir keeps its keys, which the next run's fleet reuses.
    if (options.dataDir === undefined) {
      await rm(dataDir, { recursive: true, force: true });
      await removeKeysWithPrefix(options.redisUrl, keyPrefix).catch((error: unknown) => options.progress(`the run's Redis keys ${keyPrefix}* were not removed: ${(error as Error).message}`));
    }
  };
  try {
    const bench = await startBenchDeployment({
      dataDir, logger: pino({ level: process.env.SDC_LOG_LEVEL ?? 'silent' }), redisUrl: options.redisUrl, keyPrefix,
      ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
    });
    closers.push(() => bench.stop());
    const sql = bench.deployment.stores.sql;
    if (sql === undefined) throw new SdcError('BENCH_FAILED', 'the bench control plane has no SQL store');
    const fleet = await ensureBenchFleet({
      dataDir, count: options.agents, materials: bench.materials, sql, kv: bench.deployment.stores.kv, apiUrl: bench.apiUrl,
      gatewayUrl: bench.deployment.gatewayUrl, progress: options.progress,
    });
    await Promise.all(options.gateways.map(async (gateway, i) => {
      const ticketSecretHex = options.ticketSecretHex?.(i);
      await gateway.begin({
        type: 'start', dataDir, redisUrl: options.redisUrl, keyPrefix, gatewayId: gateway.name, heartbeatIntervalMs: standardProfile.heartbeatIntervalMs,
        tls: bench.materials.serverTls, ...(ticketSecretHex === undefined ? {} : { ticketSecretHex }),
        ...(options.pendingHandshakesPerSourceMax === undefined ? {} : { pendingHandshakesPerSourceMax: options.pendingHandshakesPerSourceMax }),
        ...(options.handshakesInFlightMax === undefined ? {} : { handshakesInFlightMax: options.handshakesInFlightMax }),
      }, gatewayStartTimeoutMs);
      options.progress(`gateway ${gateway.name} listening at ${gateway.url}`);
    }));
    return { bench, devices: fleet.devices, issuedNow: fleet.issuedNow, issueMs: fleet.issueMs, gateways: options.gateways, dataDir, keyPrefix, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The agents' plan: agent i tries gateway i mod G first, then the others (so a fleet spreads
 * evenly), and first connects at i / rampPerSecond s. The others come in an order that turns with
 * floor(i / G), so the agents of a gateway that dies spread evenly over the rest: with one order
 * for all, every one of them went to the same next gateway, which then held two thirds of a
 * three-gateway fleet (more than one process may hold here beyond 29,000 agents).
 */
export function planAgents(devices: readonly BenchDevice[], gatewayUrls: readonly string[], rampPerSecond: number): WorkerAgentSpec[] {
  return devices.map((device, i) => ({
    deviceId: device.deviceId, dir: device.dir, seed: i + 1, clockSkewMs: 0, startDelayMs: Math.floor((i * 1000) / rampPerSecond),
    gatewayUrls: gatewayOrder(i, gatewayUrls.length).map((g) => gatewayUrls[g]!),
  }));
}

/** Agent i's gateways by index: i mod G first, then the other G - 1 in turn, starting at the (floor(i / G) mod (G - 1))-th of them. */
export function gatewayOrder(agentIndex: number, gateways: number): number[] {
  const first = agentIndex % gateways;
  const others = Array.from({ length: gateways - 1 }, (_, k) => (first + 1 + k) % gateways);
  const turn = gateways > 1 ? Math.floor(agentIndex / gateways) % (gateways - 1) : 0;
  return [first, ...others.slice(turn), ...others.slice(0, turn)];
}

/** Step: the agents in the forked agent processes, until all have a session or the deadline passes. */
export async function startAgents(options: {
  agents: AgentChildren; specs: readonly WorkerAgentSpec[]; deadlineMs: number; progress: (line: string) => void;
}): Promise<{ connectMs: number; allConnected: boolean }> {
  const { agents } = options;
  const processes = agents.processes;
  const startedMs = Date.now();
  agents.start(options.specs, { telemetryIntervalMs: standardProfile.telemetryIntervalMs, backoffMaxMs: agentBackoffMaxMs, window: startWindowPerProcess });
  let lastLineMs = 0;
  const allConnected = await agents.waitConnected(options.specs.length, options.deadlineMs, (connected) => {
    if (Date.now() - lastLineMs < 2_000 && connected < options.specs.length) return;
    lastLineMs = Date.now();
    options.progress(`agents authenticated ${connected}/${options.specs.length} in ${processes} process${processes === 1 ? '' : 'es'} after ${Math.round((Date.now() - startedMs) / 1000)} s`);
  });
  return { connectMs: Date.now() - startedMs, allConnected };
}
