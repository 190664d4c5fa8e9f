import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { SdcError } from '../core/errors/index.js';
import type { WorkerAgentSpec } from '../sim/real/messages.js';
import { ensureBenchFleet, type BenchDevice } from './connections-fleet.js';
import { AgentChildren, ServerChild } from './connections-processes.js';
import { startBenchDeployment, type BenchDeployment } from './roundtrip-deployment.js';

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

export interface ScaleOutOptions {
  readonly agents: number;
  readonly gateways: number;
  readonly redisUrl: string;
  readonly mysqlUrl?: string;
  /** Kept (and its fleet reused by later runs) when given; else a temporary directory, removed. */
  readonly dataDir?: string;
  /** Agents' first connections start at this rate (a deterministic ramp). */
  readonly rampPerSecond: number;
  readonly agentsPerProcess: number;
  readonly progress: (line: string) => void;
}

export interface ScaleOut {
  readonly bench: BenchDeployment;
  readonly devices: readonly BenchDevice[];
  readonly issuedNow: number;
  readonly issueMs: number;
  readonly gateways: ServerChild[];
  readonly dataDir: string;
  readonly keyPrefix: string;
  close(): Promise<void>;
}

/** One Redis key prefix per data directory: a kept directory's fleet keeps its keys. */
function keyPrefixOf(dataDir: string): string {
  return `sdc-bench-conn-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}:`;
}

/** Steps: data directory, control plane, fleet, gateway processes. Everything opened is closed by `close` (or here on failure). */
export async function startScaleOut(options: ScaleOutOptions): Promise<ScaleOut> {
  const dataDir = options.dataDir ?? await mkdtemp(join(tmpdir(), 'sdc-bench-conn-'));
  const keyPrefix = keyPrefixOf(dataDir);
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
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
    const gateways: ServerChild[] = [];
    closers.push(async () => { await Promise.allSettled(gateways.map((g) => g.close())); });
    for (let i = 0; i < options.gateways; i++) {
      const gatewayId = `gw-bench-${i + 1}`;
      gateways.push(await ServerChild.start('gateway', gatewayId, {
        type: 'start', dataDir, redisUrl: options.redisUrl, keyPrefix, gatewayId, heartbeatIntervalMs: standardProfile.heartbeatIntervalMs,
        tls: bench.materials.serverTls,
      }, gatewayStartTimeoutMs));
      options.progress(`gateway ${gatewayId} listening at ${gateways[i]!.url}`);
    }
    return { bench, devices: fleet.devices, issuedNow: fleet.issuedNow, issueMs: fleet.issueMs, gateways, dataDir, keyPrefix, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The agents' plan: agent i tries gateway i mod G first, then the others in turn (so a fleet
 * spreads evenly and an agent whose gateway dies goes to the next), and first connects at
 * i / rampPerSecond s.
 */
export function planAgents(devices: readonly BenchDevice[], gatewayUrls: readonly string[], rampPerSecond: number): WorkerAgentSpec[] {
  return devices.map((device, i) => ({
    deviceId: device.deviceId, dir: device.dir, seed: i + 1, clockSkewMs: 0, startDelayMs: Math.floor((i * 1000) / rampPerSecond),
    gatewayUrls: gatewayUrls.map((_, k) => gatewayUrls[(i + k) % gatewayUrls.length]!),
  }));
}

/** Step: the agents in ceil(N / perProcess) child processes, until all have a session or the deadline passes. */
export async function startAgents(options: {
  specs: readonly WorkerAgentSpec[]; agentsPerProcess: number; deadlineMs: number; progress: (line: string) => void;
}): Promise<{ agents: AgentChildren; connectMs: number; allConnected: boolean }> {
  const processes = Math.max(1, Math.ceil(options.specs.length / options.agentsPerProcess));
  const agents = new AgentChildren(processes);
  const startedMs = Date.now();
  try {
    agents.start(options.specs, { telemetryIntervalMs: standardProfile.telemetryIntervalMs, backoffMaxMs: agentBackoffMaxMs, window: startWindowPerProcess });
    let lastLineMs = 0;
    const allConnected = await agents.waitConnected(options.specs.length, options.deadlineMs, (connected) => {
      if (Date.now() - lastLineMs < 2_000 && connected < options.specs.length) return;
      lastLineMs = Date.now();
      options.progress(`agents authenticated ${connected}/${options.specs.length} in ${processes} process${processes === 1 ? '' : 'es'} after ${Math.round((Date.now() - startedMs) / 1000)} s`);
    });
    return { agents, connectMs: Date.now() - startedMs, allConnected };
  } catch (error) {
    await agents.stop();
    throw error;
  }
}
