import type { Logger } from 'pino';
import type { Proxy } from 'toxiproxy-node-client';
import type { Deployment } from '../../../server/deployment/deployment.js';
import type { DeploymentMaterials } from '../../../server/materials/materials.js';
import type { RepositoryKeys } from '../../../server/ota/repository-init.js';
import type { ChaosWorkerSettings, WorkerAgentSpec } from '../../../sim/real/messages.js';
import type { OperatorApi } from '../../../sim/real/operator-api.js';
import type { RealRunResult } from '../../../sim/real/run-real.js';
import type { WorkerPool } from '../../../sim/real/worker-pool.js';

/**
 * What a real-socket fault (`sdc chaos run`) may act on: the proxies for the network and store
 * faults, the running deployment for a gateway crash or a revocation, the agents' worker pool for a
 * kill, a clock skew or kernel errors. A scenario also writes what it found (notes) and what broke
 * (violations) into the run's report.
 */

/** The proxies a fault may act on. */
export interface RunProxies {
  /** Agents to gateway (the address handed to agents at enrollment). */
  readonly gateway: Proxy;
  /** Control plane and gateway to Redis (with --redis). */
  readonly redis?: Proxy;
  /** Control plane to MySQL (with --mysql). */
  readonly mysql?: Proxy;
  /**
   * Agents to the API for artifact downloads only (scenarios with `imageRepository`): the presigned
   * URLs name this address (the blob store's public base URL), the TUF metadata and the API do not.
   */
  readonly artifacts?: Proxy;
}

export interface FaultContext {
  readonly tag: string;
  /** The run's operator (the one sim --real's workload logs in as). */
  readonly admin: string;
  readonly proxies: RunProxies;
  /** Where the gateway listens now (a crash scenario moves it); the outside probes go there. */
  gatewayUrl: string;
  /** The workload's operator API: a fault may make it log in again. */
  readonly api: OperatorApi;
  /** While true, each operator login gets a 1 s token from the control plane's authority (the expired-JWT fault). */
  shortTokens: boolean;
  readonly deployment: Deployment;
  readonly materials: DeploymentMaterials;
  /** The image repository's offline keys (root, release signers), for a scenario with `imageRepository`. */
  readonly repositoryKeys: RepositoryKeys | undefined;
  readonly pool: WorkerPool;
  readonly agents: readonly WorkerAgentSpec[];
  readonly logger: Logger;
  /** A fact for the report's `scenario_facts` (e.g. how long a revoked session took to close). */
  note(key: string, value: unknown): void;
  /** A broken promise of the scenario (checked from outside, like sim --real's checkers). */
  violation(checker: string, message: string): void;
  /** Run when the run ends, whatever happened (e.g. stop a replacement gateway). */
  onCleanup(cleanup: () => Promise<void>): void;
  /** Devices that are expected offline at the end (revoked): the reconnect check leaves them out. */
  expectOffline(deviceId: string): void;
}

export interface RealFaultScenario {
  readonly name: string;
  readonly summary: string;
  /** The fault of `sdc chaos matrix` it puts on real sockets. */
  readonly matrixFault?: string;
  /** The stores it needs (`--redis`, `--mysql`); none: it runs on the embedded stores too. */
  readonly needs?: ReadonlyArray<'redis' | 'mysql'>;
  /**
   * The store whose proxy is disabled before the deployment starts (faults at t = 0,
   * chaos-real/start-outage.ts): kept down --fault-for after /readyz names it, then enabled.
   */
  readonly downAtStart?: ReadonlyArray<'redis' | 'mysql'>;
  /** A store lost part-way through the start: up at first, cut while the services start, back after the fault's length. */
  readonly lostMidStart?: 'redis' | 'mysql';
  /**
   * The deployment gets an image repository (`sdc ota init`'s files, keys held by the run as release
   * signers hold theirs) and an `artifacts` proxy that the presigned artifact URLs go through.
   */
  readonly imageRepository?: boolean;
  /** Whether the fault ends sessions (the run then expects agents to have reconnected). */
  readonly cutsSessions: boolean;
  /** Worker settings the fault needs. */
  readonly chaosSettings?: ChaosWorkerSettings;
  /** The workload's command TTL (default: longer than the drain bound, so none expires). */
  readonly commandTtlMs?: number;
  /** The drain bound it needs (below commandTtlMs, which the workload's scenario requires). */
  readonly drainBoundMs?: number;
  /** Shortest command phase that shows the fault (a run asked for less gets this). */
  readonly minDurationMs?: number;
  /** Puts the fault on; resolves with the function that heals it. */
  readonly inject: (context: FaultContext) => Promise<() => Promise<void>>;
  /** Checks of its own once the run is over, over what the run found. */
  readonly afterRun?: (run: RealRunResult, context: FaultContext) => Promise<void>;
}

/** Wall-clock sleep for scenario steps (condition waits poll with it). */
export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms).unref?.(); });
}

/** Polls `check` every `pollMs` until it answers a value, or undefined after `boundMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, boundMs: number, pollMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await sleepMs(pollMs);
  }
}

/**
 * The run's failed commands by the error code of the device-signed result kept with each
 * (`KERNEL_REFUSED:IO_ERROR` when the kernel's status is named in its message), read from SQL; only
 * this run's operator's (a MySQL database may hold other runs' commands).
 */
export async function failedByCode(deployment: Deployment, admin: string): Promise<Record<string, number>> {
  const rows = await deployment.stores.sql!.query<{ result_json: unknown }>("SELECT result_json FROM commands WHERE created_by = ? AND state IN ('failed', 'failed_late')", [admin]);
  const codes: Record<string, number> = {};
  for (const row of rows) {
    const text = typeof row.result_json === 'string' ? row.result_json : JSON.stringify(row.result_json ?? null);
    const code = /\\?"code\\?":\s*\\?"([A-Z0-9_]+)/.exec(text)?.[1] ?? 'none';
    // KERNEL_REFUSED names the kernel's status in its message ("... refused with IO_ERROR").
    const status = /refused with ([A-Z_]+)/.exec(text)?.[1];
    const key = status === undefined ? code : `${code}:${status}`;
    codes[key] = (codes[key] ?? 0) + 1;
  }
  return codes;
}
