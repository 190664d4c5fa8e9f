import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection as createMysqlConnection } from 'mysql2/promise';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Toxiproxy, type Proxy, type Toxic } from 'toxiproxy-node-client';
import { SdcError } from '../../core/errors/index.js';
import { startChaosServer, type ChaosServer } from '../../chaos/proxy/server.js';
import { startDeployment, type Deployment, type StartDeploymentOptions } from '../../server/deployment/deployment.js';
import { initDeployment } from '../../server/materials/materials.js';
import { mapMysqlError } from '../../server/stores/sql/mysql-errors.js';
import { removeKeysWithPrefix } from '../../server/stores/redis-prefix-cleanup.js';
import { agentPathDefault } from '../../server/gateway/gateway-server.js';
import { kvKeys } from '../../server/bus-contract/streams.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { runRealSimulation, type RealRunResult } from '../../sim/real/run-real.js';
import type { DeploymentMaterials } from '../../server/materials/materials.js';
import { failedByCode, type FaultContext, type RealFaultScenario, type RunProxies } from './chaos-real/fault-context.js';
import { processFaultScenarios } from './chaos-real/process-faults.js';
import { otaCutScenario } from './chaos-real/ota-cut.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from '../../server/ota/repository-init.js';
import { prepareProbes, probeTraces, runProbes, type ProbeKit, type ProbeOutcome } from './chaos-real/outside-probes.js';
import { parseScenario, type Scenario } from '../../sim/scenario.js';
import { testStoreNamespace } from '../../server/stores/test-store-namespace.js';
import {
  midStartLatencyMs, midStartLossViolations, rideOutLossMidStart, rideOutStartOutage, startOutageRetry, type MidStartLossFacts, type StartOutageFacts,
} from './chaos-real/start-outage.js';

/**
 * `sdc chaos run` (issue 11): the real control plane and gateway on loopback TLS, real agents
 * (sim --real's worker processes: the agent core over WebSocket/TLS with the mock kernel), and a
 * Toxiproxy-compatible proxy between the agents and the gateway (and, with --redis / --mysql,
 * between the services and Redis / MySQL). The proxy is driven only through toxiproxy-node-client,
 * so the same code drives a real Toxiproxy (--toxiproxy URL). While the commands are sent, the
 * scenario's fault is put on the proxy for a while and then healed; afterwards sim --real's
 * checkers judge from outside: none lost, none executed twice, legal histories, the audit chain,
 * and presence (the agents reconnected and the control plane sees them).
 */

export type { RealFaultScenario, RunProxies } from './chaos-real/fault-context.js';

type Stream = 'upstream' | 'downstream';
const bothStreams: readonly Stream[] = ['upstream', 'downstream'];

/** Adds one toxic per stream to `proxy`; the heal removes them. */
async function toxics<T>(proxy: Proxy, type: string, attributes: T, streams: readonly Stream[] = bothStreams): Promise<() => Promise<void>> {
  const added: Array<Toxic<T>> = [];
  for (const stream of streams) {
    added.push(await proxy.addToxic<T>({ name: `${type}_${stream}`, type: type as never, stream: stream as never, toxicity: 1, attributes }));
  }
  return async () => { for (const toxic of added) await toxic.remove(); };
}

/** Disables a proxy (its connections closed, new ones refused); the heal enables it again. */
async function down(proxy: Proxy): Promise<() => Promise<void>> {
  await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream });
  return async () => { await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream }); };
}

function need(proxy: Proxy | undefined, flag: string): Proxy {
  if (proxy === undefined) throw new SdcError('CLI_USAGE', `this scenario needs ${flag}`);
  return proxy;
}

/** Short timers, so that silence, retries, presence and reconnects fit in seconds (as the e2e tests). */
const fastGateway: NonNullable<StartDeploymentOptions['gateway']> = {
  heartbeatIntervalMs: 1_000, authTimeoutMs: 3_000, ackTimeoutMs: 1_500, backoff: { baseMs: 200, maxMs: 1_000 },
  commandReadBlockMs: 100, aliveRefreshIntervalMs: 500, peerCheckIntervalMs: 500,
};
/**
 * The token checks allow 1 s of clock skew (30 s by default): every process of the run shares one
 * clock, and the expired-JWT fault's 1 s tokens are then refused within 2 s of their issue, not 31 s.
 */
const fastControlPlane = { expirySweepIntervalMs: 500, redeliverySweepIntervalMs: 500, redispatchIntervalMs: 3_000, jwt: { clockSkewMs: 1_000 } };

export const realFaultScenarios: readonly RealFaultScenario[] = [
  {
    name: 'partition', summary: 'the gateway proxy disabled: every agent session closed, reconnects refused', matrixFault: 'partition', cutsSessions: true,
    inject: ({ proxies: p }) => down(p.gateway),
  },
  {
    name: 'drop', summary: 'a black hole: timeout toxics (0 = never close) hold every byte both ways; agents find the link silent and reconnect into it', matrixFault: 'drop', cutsSessions: true,
    inject: ({ proxies: p }) => toxics(p.gateway, 'timeout', { timeout: 0 }),
  },
  {
    name: 'reset', summary: 'reset_peer both ways: each connection is reset (RST) at its first bytes', cutsSessions: true,
    inject: ({ proxies: p }) => toxics(p.gateway, 'reset_peer', { timeout: 0 }),
  },
  {
    name: 'latency', summary: '300 +/- 100 ms each way on every agent link', matrixFault: 'delay', cutsSessions: false,
    inject: ({ proxies: p }) => toxics(p.gateway, 'latency', { latency: 300, jitter: 100 }),
  },
  {
    name: 'bandwidth', summary: 'each direction of each agent link capped at 2 KB/s', cutsSessions: false,
    inject: ({ proxies: p }) => toxics(p.gateway, 'bandwidth', { rate: 2 }),
  },
  {
    name: 'slicer', summary: 'every write cut into 1-15 byte slices 50 us apart (frames arrive in pieces)', cutsSessions: false,
    inject: ({ proxies: p }) => toxics(p.gateway, 'slicer', { average_size: 8, size_variation: 7, delay: 50 }),
  },
  {
    name: 'slow-close', summary: 'agent to gateway connections closed after 4 KB (limit_data), the FIN passed on 2 s late (slow_close)', cutsSessions: true,
    inject: async ({ proxies: p }) => {
      const healLimit = await toxics(p.gateway, 'limit_data', { bytes: 4_000 }, ['upstream']);
      const healSlow = await toxics(p.gateway, 'slow_close', { delay: 2_000 });
      return async () => { await healLimit(); await healSlow(); };
    },
  },
  {
    name: 'redis-cut', summary: 'the Redis proxy disabled: every Redis connection of the control plane and gateway closed, reconnects refused', matrixFault: 'redis_down', needs: ['redis'], cutsSessions: false,
    inject: ({ proxies: p }) => down(need(p.redis, '--redis')),
  },
  {
    name: 'mysql-cut', summary: "the MySQL proxy disabled: the control plane's connections closed, reconnects refused", matrixFault: 'sql_down', needs: ['mysql'], cutsSessions: false,
    inject: ({ proxies: p }) => down(need(p.mysql, '--mysql')),
  },
  ...processFaultScenarios(fastGateway),
  otaCutScenario(),
  {
    name: 'redis-down-at-start', summary: 'Redis unreachable (its proxy disabled) while the deployment starts: /readyz names it, the start waits and completes once it is back; no fault during the commands', needs: ['redis'], downAtStart: ['redis'], cutsSessions: false,
    inject: async () => async () => undefined,
  },
  {
    name: 'mysql-down-at-start', summary: 'MySQL unreachable (its proxy disabled) while the deployment starts: /readyz names it, the start waits and completes once it is back; no fault during the commands', needs: ['mysql'], downAtStart: ['mysql'], cutsSessions: false,
    inject: async () => async () => undefined,
  },
  {
    name: 'stores-down-at-start', summary: 'Redis and MySQL both unreachable (both proxies disabled) while the deployment starts: /readyz names both, the start waits and completes once they are back; no fault during the commands', needs: ['redis', 'mysql'], downAtStart: ['redis', 'mysql'], cutsSessions: false,
    inject: async () => async () => undefined,
  },
  {
    name: 'redis-lost-mid-start', summary: `Redis answers, then is cut (its proxy disabled) while the gateway and control plane start (slowed by ${midStartLatencyMs} ms each way until the cut): /readyz names it, the start waits and runs again once it is back; no fault during the commands`, needs: ['redis'], lostMidStart: 'redis', cutsSessions: false,
    inject: async () => async () => undefined,
  },
  {
    name: 'mysql-lost-mid-start', summary: `MySQL answers, then is cut (its proxy disabled) while the control plane migrates and starts (slowed by ${midStartLatencyMs} ms each way until the cut): /readyz names it, the start waits and runs again once it is back; no fault during the commands`, needs: ['mysql'], lostMidStart: 'mysql', cutsSessions: false,
    inject: async () => async () => undefined,
  },
];

export function realFaultScenario(name: string): RealFaultScenario | undefined {
  return realFaultScenarios.find((s) => s.name === name);
}

export interface ChaosRunOptions {
  readonly scenario: RealFaultScenario;
  readonly seed: number;
  readonly agents: number;
  /** Wall ms of commands; the fault is on from faultAtMs for faultMs within it. */
  readonly durationMs: number;
  readonly faultAtMs: number;
  readonly faultMs: number;
  /** Wall ms after the last command for every command to be terminal. */
  readonly drainBoundMs: number;
  /** Wall ms after the heal for every agent to be shown online again (presence converges). */
  readonly reconnectBoundMs: number;
  /** An external Toxiproxy's API; default: our proxy, in this process on a free port. */
  readonly toxiproxyUrl?: string;
  readonly redisUrl?: string;
  readonly mysqlUrl?: string;
  readonly logger: Logger;
  readonly onProgress?: (line: string) => void;
  /**
   * Keep the run's Redis keys (`sdc-chaos-<tag>:*`) and MySQL database (`sdc_chaos_<tag>`) for a
   * post-mortem (--keep-stores); by default both are removed when the run ends, passed, failed or thrown.
   */
  readonly keepStores?: boolean;
}

export interface ChaosRunReport {
  readonly chaos_run: string;
  readonly schema_version: 1;
  readonly summary: string;
  readonly seed: number;
  readonly proxy: { readonly api: string; readonly external: boolean; readonly gateway_listen: string; readonly redis_listen: string | null; readonly mysql_listen: string | null };
  readonly stores: 'embedded' | 'redis' | 'mysql' | 'redis+mysql';
  /** Wall ms from the first command: when the fault went on and when it was healed. */
  readonly fault: { readonly at_ms: number | null; readonly healed_at_ms: number | null; readonly planned_at_ms: number; readonly planned_ms: number };
  /**
   * Wall ms from the heal until the control plane's presence keys showed every agent online again
   * (looked at every 250 ms, before the drain); null when not within reconnectBoundMs.
   */
  readonly agents_back_after_heal_ms: number | null;
  readonly reconnect_bound_ms: number;
  /**
   * No unauthenticated access, from outside: the probes during the fault and after the heal
   * (chaos-real/outside-probes.ts), and what they left behind (a session or a command would be).
   */
  readonly unauthenticated_access: { readonly verdict: 'pass' | 'fail' | 'not_reached'; readonly probes: readonly ProbeOutcome[]; readonly traces: readonly string[] };
  /** What the scenario's own checks found (process and trust faults). */
  readonly scenario_facts: Readonly<Record<string, unknown>>;
  /** The command phase actually run (a scenario may need longer than asked). */
  readonly duration_ms: number;
  /** Passed: every checker held, and a fault that cuts sessions made the agents reconnect. */
  readonly passed: boolean;
  readonly violations: ReadonlyArray<{ readonly checker: string; readonly message: string }>;
  readonly run: RealRunResult;
  /** What the run made on the real stores (null: embedded), and whether it was kept (--keep-stores) or removed at the end. */
  readonly run_stores: { readonly redis_key_prefix: string | null; readonly mysql_database: string | null; readonly kept: boolean };
}


/** A placeholder upstream: the gateway proxy exists before the gateway (its address goes into enrollment), then points at it. */
const upstreamNotYet = '127.0.0.1:9';

function hostPortOf(url: URL, defaultPort: number): string {
  return `${url.hostname}:${url.port === '' ? defaultPort : url.port}`;
}

/** The same URL through the proxy's listen address. */
function throughProxy(url: string, listen: string): string {
  const rewritten = new URL(url);
  const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), listen.slice(listen.lastIndexOf(':') + 1)];
  rewritten.hostname = host;
  rewritten.port = port;
  return rewritten.toString();
}

function workloadScenario(options: ChaosRunOptions): Scenario {
  return parseScenario({
    name: `chaos-${options.scenario.name}`,
    description: options.scenario.summary,
    agents: options.agents, gateways: 1, safetyMs: options.durationMs, livenessBoundMs: options.drainBoundMs,
    heartbeatIntervalMs: fastGateway.heartbeatIntervalMs, telemetryIntervalMs: 2_000,
    commands: { perMinute: 120, ttlMs: options.scenario.commandTtlMs ?? Math.max(600_000, options.drainBoundMs + 1), mix: { EXEC_PING_KERNEL: 4, EXEC_GET_STATUS: 2, EXEC_LOCK_SCREEN: 1, EXEC_GET_PROCESS_LIST: 1 } },
    faults: {},
  }, `chaos scenario ${options.scenario.name}`);
}

interface Started {
  readonly server: ChaosServer | undefined;
  readonly api: string;
  readonly proxies: RunProxies;
  readonly names: readonly string[];
}

/** Our proxy in this process, or an external Toxiproxy; the run's proxies, named with a tag so several runs share one. */
async function startProxies(options: ChaosRunOptions, tag: string): Promise<Started & { toxiproxy: Toxiproxy }> {
  const server = options.toxiproxyUrl === undefined ? await startChaosServer({ host: '127.0.0.1', port: 0, seed: options.seed }) : undefined;
  const api = options.toxiproxyUrl ?? server!.url;
  const toxiproxy = new Toxiproxy(api);
  const names: string[] = [];
  const create = async (role: string, upstream: string): Promise<Proxy> => {
    const name = `sdc_${tag}_${role}`;
    const proxy = await toxiproxy.createProxy({ name, listen: '127.0.0.1:0', upstream });
    names.push(name);
    return proxy;
  };
  try {
    const gateway = await create('gateway', upstreamNotYet);
    const redis = options.redisUrl === undefined ? undefined : await create('redis', hostPortOf(new URL(options.redisUrl), 6379));
    const mysql = options.mysqlUrl === undefined ? undefined : await create('mysql', hostPortOf(new URL(options.mysqlUrl), 3306));
    // Like the gateway's, pointed at the API once it listens.
    const artifacts = options.scenario.imageRepository === true ? await create('artifacts', upstreamNotYet) : undefined;
    return { server, api, toxiproxy, names, proxies: { gateway, ...(redis ? { redis } : {}), ...(mysql ? { mysql } : {}), ...(artifacts ? { artifacts } : {}) } };
  } catch (error) {
    await Promise.allSettled(names.map((name) => toxiproxy.get(name).then((p) => p.remove())));
    await server?.close();
    throw error;
  }
}

/**
 * The deployment with its agents' gateway address, and its stores, behind the proxies. With a
 * store down at start (`downAtStart`), its proxy is disabled first and the start ridden out.
 */
async function startProxiedDeployment(options: ChaosRunOptions, dataDir: string, proxies: RunProxies, tag: string): Promise<Proxied> {
  const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  // As `sdc ota init` before `sdc serve`: the control plane imports root and targets version 1 at its start.
  const repositoryKeys = options.scenario.imageRepository === true ? generateRepositoryKeys() : undefined;
  if (repositoryKeys !== undefined) await writeRepositoryFiles(dataDir, repositoryKeys, initialMetadata(repositoryKeys, systemClock.nowMs()));
  // Presigned artifact URLs name the artifacts proxy (a URL signed for one host is refused at another).
  const otaBlobs = proxies.artifacts === undefined ? {} : { otaBlobs: { publicBaseUrl: `https://${proxies.artifacts.listen}` } };
  const downAtStart = options.scenario.downAtStart;
  const downProxies = (downAtStart ?? []).map((store) => need(proxies[store], `--${store}`));
  for (const proxy of downProxies) await down(proxy);
  const lostMidStart = options.scenario.lostMidStart;
  const lossProxy = lostMidStart === undefined ? undefined : need(proxies[lostMidStart], `--${lostMidStart}`);
  const healLatency = lossProxy === undefined ? undefined : await toxics(lossProxy, 'latency', { latency: midStartLatencyMs, jitter: 0 });
  const ridesOut = downProxies.length > 0 || lossProxy !== undefined;
  let apiUrl: string | undefined;
  const starting = startDeployment({
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: options.logger,
    advertisedGatewayUrls: [`wss://${proxies.gateway.listen}${agentPathDefault}`],
    ...(options.redisUrl === undefined ? {} : { redisUrl: throughProxy(options.redisUrl, proxies.redis!.listen), keyPrefix: runKeyPrefix(tag) }),
    ...(options.mysqlUrl === undefined ? {} : { mysqlUrl: throughProxy(options.mysqlUrl, proxies.mysql!.listen) }),
    scryptParams: { N: 1024, r: 8, p: 1 }, gateway: fastGateway, controlPlaneTuning: { ...fastControlPlane, ...otaBlobs },
    ...(ridesOut ? { storeRetry: startOutageRetry, onApiListening: (url: string) => { apiUrl = url; } } : {}),
  });
  let startOutage: StartOutageFacts | undefined;
  let midStartLoss: MidStartLossFacts | undefined;
  let deployment: Deployment;
  if (lossProxy !== undefined) {
    const ridden = await rideOutLossMidStart({ store: lostMidStart!, proxy: lossProxy, healLatency: healLatency!, downForMs: options.faultMs, caPem: materials.rootCaPem, apiUrl: () => apiUrl, starting });
    deployment = ridden.started;
    midStartLoss = ridden.facts;
    options.onProgress?.(`${lostMidStart} cut mid-start for ${options.faultMs} ms after /readyz named it; started ${ridden.facts.started_after_heal_ms} ms after it came back`);
  } else if (downProxies.length === 0) deployment = await starting;
  else {
    const ridden = await rideOutStartOutage({ stores: downAtStart!, proxies: downProxies, downForMs: options.faultMs, caPem: materials.rootCaPem, apiUrl: () => apiUrl, starting });
    deployment = ridden.started;
    startOutage = ridden.facts;
    options.onProgress?.(`${downAtStart!.join(' and ')} down at start for ${options.faultMs} ms after /readyz named ${downAtStart!.length > 1 ? 'them' : 'it'}; started ${ridden.facts.started_after_heal_ms} ms after ${downAtStart!.length > 1 ? 'they' : 'it'} came back`);
  }
  const { address } = deployment.gatewayServer;
  // The caller stops the deployment only once this returns: a failure here must stop it (a running
  // deployment kept a failed test file alive until its 15 min timeout).
  const pointed = async () => {
    const gateway = await proxies.gateway.update({ enabled: true, listen: proxies.gateway.listen, upstream: `${address.host}:${address.port}` });
    const api = new URL(deployment.apiUrl!);
    const artifacts = proxies.artifacts === undefined ? undefined : await proxies.artifacts.update({ enabled: true, listen: proxies.artifacts.listen, upstream: `${api.hostname}:${api.port}` });
    return { gateway, artifacts };
  };
  const { gateway, artifacts } = await pointed().catch(async (error: unknown) => { await deployment.stop(); throw error; });
  return { deployment, gateway, materials, repositoryKeys, ...(artifacts === undefined ? {} : { artifacts }), ...(startOutage === undefined ? {} : { startOutage }), ...(midStartLoss === undefined ? {} : { midStartLoss }) };
}

/** The stores down at start must have been named by /readyz (503) while they were down, and the deployment ready (200) after. */
function startOutageViolations(facts: StartOutageFacts): Array<{ checker: string; message: string }> {
  const found: Array<{ checker: string; message: string }> = [];
  const during = facts.readyz_while_down;
  if (during === null || during.status !== 503 || !facts.stores.every((store) => during.body.down.includes(store))) {
    found.push({ checker: 'readiness', message: `/readyz never answered 503 naming ${facts.stores.join(' and ')} while down at start: ${JSON.stringify(during)}` });
  }
  if (facts.readyz_after?.status !== 200) found.push({ checker: 'readiness', message: `/readyz after the start answered ${JSON.stringify(facts.readyz_after)}` });
  return found;
}

/** The fault's timeline on the wall clock, from the first command: on at faultAtMs, healed faultMs later (or before the drain). */
class FaultTimeline {
  onAtMs: number | null = null;
  healedAtMs: number | null = null;
  #startMs = 0;
  #heal: (() => Promise<void>) | undefined;
  #pending: Promise<void> = Promise.resolve();
  #timers: ReturnType<typeof systemScheduler.schedule>[] = [];
  #error: unknown;

  /** Started at the heal: wall ms until every agent was online again (null past the bound). */
  agentsBack: Promise<number | null> = Promise.resolve(null);

  /** The outside probes run while the fault is on (halfway through it). */
  probesDuring: Promise<ProbeOutcome[]> = Promise.resolve([]);

  constructor(private readonly options: ChaosRunOptions, private readonly context: () => FaultContext, private readonly afterHeal: () => Promise<number | null>, private readonly probe: (phase: string) => Promise<ProbeOutcome[]>) {}

  start(): void {
    this.#startMs = systemClock.nowMs();
    this.#timers.push(systemScheduler.schedule(this.options.faultAtMs, () => { this.#pending = this.#inject(); }));
    this.#timers.push(systemScheduler.schedule(this.options.faultAtMs + Math.floor(this.options.faultMs / 2), () => {
      this.probesDuring = this.#pending.then(() => this.probe('during'));
    }));
    this.#timers.push(systemScheduler.schedule(this.options.faultAtMs + this.options.faultMs, () => { this.#pending = this.#pending.then(() => this.#healNow()); }));
  }

  async #inject(): Promise<void> {
    try {
      this.#heal = await this.options.scenario.inject(this.context());
      this.onAtMs = systemClock.nowMs() - this.#startMs;
      this.options.onProgress?.(`fault ${this.options.scenario.name} on at ${this.onAtMs} ms`);
    } catch (error) {
      this.#error = error;
    }
  }

  async #healNow(): Promise<void> {
    const heal = this.#heal;
    this.#heal = undefined;
    if (heal === undefined) return;
    try {
      await heal();
      this.healedAtMs = systemClock.nowMs() - this.#startMs;
      this.agentsBack = this.afterHeal();
      this.options.onProgress?.(`fault ${this.options.scenario.name} healed at ${this.healedAtMs} ms`);
    } catch (error) {
      this.#error = error;
    }
  }

  /** Heals now if the fault is still on (what was scheduled first runs to its end); a failure to inject or heal is thrown here. */
  async heal(): Promise<void> {
    for (const timer of this.#timers) systemScheduler.cancel(timer);
    await this.#pending;
    await this.#healNow();
    if (this.#error !== undefined) throw new SdcError('CHAOS_FAULT_FAILED', `putting the fault ${this.options.scenario.name} on, or healing it, failed: ${(this.#error as Error).message}`, {}, { cause: this.#error });
  }
}

export async function runChaosScenario(options: ChaosRunOptions): Promise<ChaosRunReport> {
  if (options.faultAtMs + options.faultMs > options.durationMs) throw new SdcError('CLI_USAGE', 'the fault must end within --duration (fault start + fault length <= duration)');
  if (options.scenario.needs?.includes('redis') === true && options.redisUrl === undefined) throw new SdcError('CLI_USAGE', `scenario ${options.scenario.name} needs --redis URL`);
  if (options.scenario.needs?.includes('mysql') === true && options.mysqlUrl === undefined) throw new SdcError('CLI_USAGE', `scenario ${options.scenario.name} needs --mysql URL`);
  // A token refused only once it is 31 s old (1 s life, 30 s of allowed skew) needs a longer command phase.
  const durationMs = Math.max(options.durationMs, options.scenario.minDurationMs ?? 0);
  if (durationMs !== options.durationMs) options.onProgress?.(`commands for ${durationMs} ms (this scenario needs at least that)`);
  const tag = Buffer.from(systemRandom.bytes(4)).toString('hex');
  const runStores = {
    redis_key_prefix: options.redisUrl === undefined ? null : runKeyPrefix(tag), mysql_database: options.mysqlUrl === undefined ? null : runDatabaseName(tag), kept: options.keepStores === true,
  };
  if (runStores.redis_key_prefix !== null || runStores.mysql_database !== null) {
    options.onProgress?.(`run stores: ${[runStores.redis_key_prefix === null ? [] : [`Redis keys ${runStores.redis_key_prefix}*`], runStores.mysql_database === null ? [] : [`MySQL database ${runStores.mysql_database}`]].flat().join(', ')} (${runStores.kept ? 'kept at the end: --keep-stores' : 'removed at the end'})`);
  }
  const database = options.mysqlUrl === undefined ? undefined : await createRunDatabase(options.mysqlUrl, tag);
  const run = { ...options, durationMs, drainBoundMs: options.scenario.drainBoundMs ?? options.drainBoundMs, ...(database === undefined ? {} : { mysqlUrl: database.url }) };
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-chaos-run-'));
  // The run's own Redis keys and database, removed at the end unless kept (--keep-stores): runs
  // against a developer's Redis and MySQL left 17-19 keys and, when the process died, a database each.
  const removeStores = async () => {
    if (options.keepStores === true) return;
    if (options.redisUrl !== undefined) await removeKeysWithPrefix(options.redisUrl, runKeyPrefix(tag)).catch((error: unknown) => options.logger.warn({ err: error }, 'chaos run Redis keys not removed'));
    await database?.drop().catch((error: unknown) => options.logger.warn({ err: error }, 'chaos run database not dropped'));
  };
  // Ctrl-C or SIGTERM mid-run (the command catches neither): the run's keys and database are
  // removed, within signalCleanupBoundMs, before the process ends by the same signal; a second
  // signal ends it at once. Everything else the run opened ends with the process.
  // The deployment is stopped first (for at most a third of the bound): while it runs it keeps
  // writing streams and presence keys under the prefix, which a scan before would miss.
  let deployment: Deployment | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const within = (ms: number) => new Promise<void>((resolve) => { setTimeout(resolve, ms).unref(); });
    const stopThenRemove = async () => {
      await Promise.race([deployment?.stop().catch(() => undefined), within(signalCleanupBoundMs / 3)]);
      await removeStores();
    };
    void Promise.race([stopThenRemove(), within(signalCleanupBoundMs)]).finally(() => process.kill(process.pid, signal));
  };
  const stopCatchingSignals = () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); };
  if (runStores.redis_key_prefix !== null || runStores.mysql_database !== null) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const started = await startProxies(run, tag).catch(async (error: unknown) => { stopCatchingSignals(); await removeStores(); throw error; });
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const proxied = await startProxiedDeployment(run, dataDir, started.proxies, tag);
    deployment = proxied.deployment;
    return { ...await runOnDeployment(run, { started, proxied, tag, cleanups }), run_stores: runStores };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => options.logger.warn({ err: error }, 'chaos cleanup failed'));
    await deployment?.stop();
    await Promise.allSettled(started.names.map((name) => started.toxiproxy.get(name).then((p) => p.remove())));
    await started.server?.close();
    await rm(dataDir, { recursive: true, force: true });
    stopCatchingSignals();
    await removeStores();
  }
}

/** How long a run stopped by a signal waits for its keys and database to be removed. */
const signalCleanupBoundMs = 10_000;

/** The run's Redis key prefix and MySQL database: its own, so that only these are removed at its end. */
// Under the test runner, its namespace (hex, '' otherwise) comes before the tag: the runner removes
// a killed test's run stores (scripts/test-store-sweep.mjs).
const runKeyPrefix = (tag: string): string => `sdc-chaos-${testStoreNamespace()}${tag}:`;
const runDatabaseName = (tag: string): string => `sdc_chaos_${testStoreNamespace()}${tag}`;

/**
 * A MySQL database of the run's own on the server --mysql names (dropped at the end): a run shares
 * no table, lock row or schema change with other runs or tests on that server. Sharing the given
 * database, a run's API calls and start waited on other processes' audit-chain locks and
 * migrations (docs/chaos.md, the hang after a store cut).
 */
async function createRunDatabase(mysqlUrl: string, tag: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = runDatabaseName(tag);
  const url = new URL(mysqlUrl);
  url.pathname = `/${name}`;
  // mysql2's own errors (ER_CON_COUNT_ERROR "Too many connections" on a busy server) as the store's
  // codes: uncaught, they ended the run as `sdc: internal error`.
  const admin = async (sql: string) => {
    const connection = await createMysqlConnection({ uri: mysqlUrl }).catch((error: unknown) => { throw mapMysqlError(error); });
    try { await connection.query(sql).catch((error: unknown) => { throw mapMysqlError(error); }); } finally { await connection.end().catch(() => undefined); }
  };
  await admin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS \`${name}\``) };
}

interface Proxied {
  readonly deployment: Deployment;
  readonly gateway: Proxy;
  /** The artifacts proxy once pointed at the API (imageRepository scenarios). */
  readonly artifacts?: Proxy;
  readonly materials: DeploymentMaterials;
  readonly repositoryKeys: RepositoryKeys | undefined;
  /** What a store down at start looked like (downAtStart scenarios). */
  readonly startOutage?: StartOutageFacts;
  /** What a store lost part-way through the start looked like (lostMidStart scenarios). */
  readonly midStartLoss?: MidStartLossFacts;
}

/**
 * Steps on a running deployment: the run's operator, the outside probes' kit, the workload with
 * the fault on its timeline (probes halfway through the fault and after the heal), the
 * scenario's own checks, and the report.
 */
async function runOnDeployment(options: ChaosRunOptions, setup: { started: Started; proxied: Proxied; tag: string; cleanups: Array<() => Promise<void>> }): Promise<Omit<ChaosRunReport, 'run_stores'>> {
  const { started, proxied, tag } = setup;
  const { deployment, materials } = proxied;
  const proxies: RunProxies = { ...started.proxies, gateway: proxied.gateway, ...(proxied.artifacts === undefined ? {} : { artifacts: proxied.artifacts }) };
  const admin = `chaos-admin-${tag}`;
  const password = Buffer.from(systemRandom.bytes(18)).toString('base64url');
  await deployment.controlPlane!.auth.users.add({ name: admin, role: 'admin', password, nowMs: systemClock.nowMs() });
  const kit = await prepareProbes({ deployment, tag, admin, targetDeviceId: 'unknown' });
  const notes: Record<string, unknown> = {};
  const scenarioViolations: Array<{ checker: string; message: string }> = [];
  if (proxied.startOutage !== undefined) {
    notes.start_outage = proxied.startOutage;
    scenarioViolations.push(...startOutageViolations(proxied.startOutage));
  }
  if (proxied.midStartLoss !== undefined) {
    notes.mid_start_loss = proxied.midStartLoss;
    scenarioViolations.push(...midStartLossViolations(proxied.midStartLoss));
  }
  const offline = new Set<string>();
  let context: FaultContext | undefined;
  const contextOf = (): FaultContext => {
    if (context === undefined) throw new SdcError('CHAOS_FAULT_FAILED', 'the fault was due before the fleet was online');
    return context;
  };
  const probes: ProbeOutcome[] = [];
  let probeKit: ProbeKit = kit;
  const probe = async (phase: string) => runProbes({ kit: probeKit, gatewayUrl: context?.gatewayUrl ?? deployment.gatewayUrl, apiUrl: deployment.apiUrl!, caPem: materials.rootCaPem, materials, phase });
  let ours: Promise<readonly string[]> = Promise.resolve([]);
  const timeline = new FaultTimeline(options, contextOf, () => waitAgentsBack(deployment, options, ours, offline), probe);
  let agentsBackMs: number | null = null;
  const run = await runRealSimulation({
    url: deployment.apiUrl!, caPem: materials.rootCaPem,
    admin, password, scenario: workloadScenario(options), scenarioRef: `chaos:${options.scenario.name}`, seed: options.seed,
    agents: options.agents, durationMs: options.durationMs, processes: 1, onlineTimeoutMs: fleetOnlineBoundMs,
    // The workload's EXEC_LOCK_SCREEN (a privileged call, checked by the kernel against the signed
    // command) succeeds on a mock with a screen lock: a failed command is then a fault's doing.
    chaosSettings: {
      lockScreenSupported: true, ...options.scenario.chaosSettings,
      // The presigned artifact URLs name the artifacts proxy (https, its own port): the agents trust
      // that origin explicitly, as `sdc agent --artifact-origin` would, so the download goes through it.
      ...(options.scenario.chaosSettings?.ota === true && proxies.artifacts !== undefined ? { otaArtifactOrigins: [`https://${proxies.artifacts.listen}`] } : {}),
    },
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    tokenSource: async (passwordLogin) => (context?.shortTokens === true
      ? deployment.controlPlane!.auth.authority.issue({ sub: admin, role: 'admin', ttlMs: 1_000 })
      : passwordLogin()),
    onFleet: (pool, agents, api) => {
      probeKit = { ...kit, targetDeviceId: agents[0]!.deviceId };
      // The run's devices are its fleet's. (They were the devices whose presence key existed when the
      // commands started: an agent is ready at AUTH_ACK, before its gateway's presence write lands, and
      // a chaos key lives 1.5 s, so under load one could be missing at that instant and then never
      // counted, failing the reconnect check at its bound with every key present: docs/chaos.md.)
      ours = Promise.resolve(agents.map((agent) => agent.deviceId));
      context = {
        tag, admin, proxies, gatewayUrl: deployment.gatewayUrl, api, shortTokens: false, deployment, materials, repositoryKeys: proxied.repositoryKeys, pool, agents, logger: options.logger,
        note: (key, value) => { notes[key] = value; },
        violation: (checker, message) => { scenarioViolations.push({ checker, message }); },
        onCleanup: (cleanup) => { setup.cleanups.push(cleanup); },
        expectOffline: (deviceId) => { offline.add(deviceId); },
      };
    },
    onCommandsStart: () => {
      timeline.start();
    },
    beforeDrain: async () => {
      await timeline.heal();
      agentsBackMs = await timeline.agentsBack;
      probes.push(...await timeline.probesDuring, ...await probe('after'));
    },
  }).finally(() => timeline.heal().catch(() => undefined));
  // Every run: failed commands by code. The mock kernels answer every opcode of the workload, so a
  // failure is a fault's doing (kernel-errors, an agent killed mid-command), never the mix's.
  notes.failed_by_code = await failedByCode(deployment, admin).catch((error: unknown) => ({ unreadable: (error as Error).message }));
  if (context !== undefined) await options.scenario.afterRun?.(run, context);
  const traces = await probeTraces(deployment, probeKit).catch((error: unknown) => [`the traces could not be read: ${(error as Error).message}`]);
  return reportOf(options, { started, proxies, timeline, run, agentsBackMs, probes, traces, notes, scenarioViolations, offline: offline.size });
}

/**
 * Set-up, not a checker: how long the fleet may take to have every agent's first session before
 * the commands start (sim --real's default is 30 s + 20 ms per agent). A worker process starting,
 * its TLS sessions and AUTH all run on the wall clock; on a busy machine (a nice'd run beside busy
 * loops, three deployments in one process) 30 s ran out with 0/2 online (SIM_REAL_SETUP_FAILED) while
 * nothing was wrong. Generous, as the e2e tests' realWaitMs: the wait ends as soon as every agent
 * is online, so only a fleet that never comes up waits it out. What a run judges after a fault
 * (reconnect bound, drain bound) is unchanged.
 */
const fleetOnlineBoundMs = 120_000;
const presencePollMs = 250;
const sleep = (ms: number) => new Promise<void>((resolve) => systemScheduler.schedule(ms, () => resolve()));

/**
 * From the heal on (the drain waits for it): waits until the presence key of each of the run's
 * devices is set (what `GET /v1/devices` shows as online), read from the deployment's key/value
 * store; the wall ms that took, or null past the bound. The run's own presence checker compares it with the agents'
 * sessions afterwards.
 */
async function waitAgentsBack(deployment: Deployment, options: ChaosRunOptions, ours: Promise<readonly string[]>, offline: ReadonlySet<string>): Promise<number | null> {
  const startMs = systemClock.nowMs();
  const { kv } = deployment.stores;
  const all = await ours;
  // A revoked device is expected to stay away.
  const deviceIds = all.filter((id) => !offline.has(id));
  for (;;) {
    const online = await Promise.all(deviceIds.map((id) => kv.get(kvKeys.presence(id)).catch(() => null)));
    if (all.length === options.agents && online.every((value) => value !== null)) return systemClock.nowMs() - startMs;
    if (systemClock.nowMs() - startMs > options.reconnectBoundMs) {
      const missing = deviceIds.filter((_, i) => online[i] === null);
      options.logger.warn({ missing, devices: all.length, agents: options.agents }, 'agents not all shown online within the reconnect bound after the heal');
      return null;
    }
    await sleep(presencePollMs);
  }
}

interface RunFacts {
  readonly started: Started;
  readonly proxies: RunProxies;
  readonly timeline: FaultTimeline;
  readonly run: RealRunResult;
  readonly agentsBackMs: number | null;
  readonly probes: readonly ProbeOutcome[];
  readonly traces: readonly string[];
  readonly notes: Readonly<Record<string, unknown>>;
  readonly scenarioViolations: ReadonlyArray<{ checker: string; message: string }>;
  readonly offline: number;
}

function reportOf(options: ChaosRunOptions, facts: RunFacts): Omit<ChaosRunReport, 'run_stores'> {
  const { started, proxies, timeline, run } = facts;
  const violations: Array<{ checker: string; message: string }> = run.violations.map((v) => ({ checker: v.checker, message: v.message }));
  violations.push(...facts.scenarioViolations);
  for (const p of facts.probes.filter((outcome) => !outcome.held)) {
    violations.push({ checker: 'no_unauthenticated_access', message: `${p.probe} (${p.phase}) got ${p.outcome}, expected ${p.expected.join(' or ')}` });
  }
  for (const trace of facts.traces) violations.push({ checker: 'no_unauthenticated_access', message: trace });
  const probed = facts.probes.length > 0;
  const unauthenticated = !probed ? 'not_reached' as const : violations.some((v) => v.checker === 'no_unauthenticated_access') ? 'fail' as const : 'pass' as const;
  if (timeline.onAtMs === null) violations.push({ checker: 'fault', message: `the fault was never put on (the command phase ended before ${options.faultAtMs} ms?)` });
  // A fault that cuts sessions and left every one standing did not bite: the run proves nothing.
  if (options.scenario.cutsSessions && (run.counts.sessions_closed ?? 0) === 0) violations.push({ checker: 'reconnect', message: 'the fault cut no session, so nothing reconnected' });
  if (timeline.healedAtMs !== null && facts.agentsBackMs === null) violations.push({ checker: 'reconnect', message: `not every agent was online again within ${options.reconnectBoundMs} ms of the heal` });
  const stores = options.redisUrl !== undefined && options.mysqlUrl !== undefined ? 'redis+mysql' : options.redisUrl !== undefined ? 'redis' : options.mysqlUrl !== undefined ? 'mysql' : 'embedded';
  return {
    chaos_run: options.scenario.name, schema_version: 1, summary: options.scenario.summary, seed: options.seed,
    proxy: {
      api: started.api, external: started.server === undefined, gateway_listen: proxies.gateway.listen,
      redis_listen: proxies.redis?.listen ?? null, mysql_listen: proxies.mysql?.listen ?? null,
    },
    stores,
    fault: { at_ms: timeline.onAtMs, healed_at_ms: timeline.healedAtMs, planned_at_ms: options.faultAtMs, planned_ms: options.faultMs },
    agents_back_after_heal_ms: facts.agentsBackMs, reconnect_bound_ms: options.reconnectBoundMs,
    unauthenticated_access: { verdict: unauthenticated, probes: facts.probes, traces: facts.traces },
    scenario_facts: facts.notes, duration_ms: options.durationMs,
    passed: violations.length === 0 && unauthenticated === 'pass', violations, run,
  };
}
