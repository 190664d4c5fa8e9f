import { join } from 'node:path';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { startMetricsServer } from '../observability/metrics-server.js';
import pino, { type Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { createControlPlane, type ControlPlane } from '../control-plane/index.js';
import type { ControlPlaneOptions } from '../control-plane/control-plane.js';
import { auditWindowMsDeployment } from '../control-plane/audit-drain-soon.js';
import { createNodeEd25519Provider, createVerifiedSignatureCache, type NodeEd25519Counts, type NodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createGatewayCore, type GatewayCore, type GatewayCoreOptions } from '../gateway/gateway-core.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import { presenceRefreshWindowMsFor } from '../gateway/presence-refresh-window.js';
import { gatewayDefaults, gatewayDeviceKeyCacheEntriesMax } from '../gateway/gateway-defaults.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { CrlFileWatch, crlFreshAdmission, crlMetricsCollector, type CrlStalePolicy } from './crl-file-watch.js';
import { createEnrollmentCheck } from '../gateway/enrollment-check.js';
import { kvKeys } from '../bus-contract/streams.js';
import { startGatewayServer, type GatewayServer, type GatewayServerOptions } from '../gateway/gateway-server.js';
import type { Clock, RandomSource, Scheduler } from '../../core/ports/ports.js';
import type { Stores } from '../stores/index.js';
import { holdPort, listenRefusal, startStartupApiServer } from './listening.js';
import { Readiness, registerProbeRoutes } from './readiness.js';
import { connectStores, deploymentDependencies, storeProbes, storeRetryNone, storeTargets, type ConnectedStores, type StoreRetryLimits } from './store-connect.js';
import { startRidingOutStoreLoss } from './start-store-loss.js';
import type { HeldPort } from './listening.js';
import type { DeploymentMaterials } from '../materials/materials.js';
import type { GatewayMaterials } from '../materials/gateway-materials.js';

/**
 * Telemetry samples per bus append in a deployed gateway (AppendBatcher): one Redis pipeline
 * carries up to this many, so a busy gateway pays one round trip per batch, not per sample.
 */
export const gatewayTelemetryBatchEntries = 100;

/**
 * Telemetry frames per bus entry in a deployed gateway (decision 0023): the frames of one flush
 * go in telemetry_frames entries of up to this many, one pass of the telemetry consumer each.
 * Control planes read these since decision 0023; upgrade them before the gateways.
 */
export const gatewayTelemetryFramesPerEntry = 64;

export interface StartDeploymentOptions {
  /**
   * A control plane needs the full materials; a gateway-only process (`controlPlane: false`) may
   * be given only a gateway's (loadGatewayMaterials: no CA, JWT, command or artifact private key).
   */
  materials: DeploymentMaterials | GatewayMaterials;
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: Logger;
  /** Real Redis for bus and key/value; embedded when absent. */
  redisUrl?: string;
  /** Real MySQL/MariaDB; sql.js in `<dataDir>/db` when absent. */
  mysqlUrl?: string;
  /** Prefix for Redis keys, so several deployments (or test runs) can share one server. */
  keyPrefix?: string;
  host?: string;
  apiPort?: number;
  gatewayPort?: number;
  gatewayId?: string;
  /** Gateway URLs handed to devices at enrollment (default: this gateway's bound address). */
  advertisedGatewayUrls?: readonly string[];
  /** Run the control plane (default true); false runs a gateway only, for extra gateway processes. */
  controlPlane?: boolean;
  /** Extra gateway tuning (heartbeat, ACK timeout, attempts...). */
  gateway?: Partial<Omit<GatewayCoreOptions, 'gatewayId' | 'signer' | 'provider' | 'stores' | 'clock' | 'random' | 'scheduler' | 'commandKeys'>>;
  /** Control-plane sweep periods (expiry, redelivery) and the pairing-token limit; defaults suit production. */
  controlPlaneTuning?: Pick<ControlPlaneOptions, 'expirySweepIntervalMs' | 'redeliverySweepIntervalMs' | 'redispatchIntervalMs' | 'pairingTokensMax' | 'policy' | 'alertRules' | 'complianceRules' | 'otaBlobs' | 'jwt' | 'artifactRetention' | 'artifactRetentionSweepIntervalMs' | 'telemetryRetention' | 'commandAuditWindowMs'>;
  /** Cheaper password hashing, for tests and the demo's throwaway users only. */
  scryptParams?: { N: number; r: number; p: number };
  /** How long to wait for MySQL and Redis to answer at start (default storeRetryNone: fail at once; `sdc serve` waits). */
  storeRetry?: StoreRetryLimits;
  /** Called once the API port listens, before the stores are awaited: /healthz and /readyz answer from then on. */
  onApiListening?: (apiUrl: string) => void;
  /**
   * Bearer token `GET /metrics` needs (on the API, and on the metrics port); without one,
   * /metrics answers loopback peers only. From `--metrics-token-file` or `$SDC_METRICS_TOKEN`.
   */
  metricsScrapeToken?: string;
  /**
   * A plain-HTTP listener of its own for `GET /metrics` (a gateway-only process has no API, and
   * its gateway port wants a device certificate). None when absent; the control plane's API serves /metrics anyway.
   */
  metricsPort?: number;
  /** Where that listener binds (default 127.0.0.1). */
  metricsHost?: string;
  /**
   * The secret the gateway's TLS session ticket keys are derived from (server/gateway/tls-session-tickets.ts).
   * Default: the gateway signing key's seed, which every gateway of the data directory shares, so
   * an agent resumes its TLS session on any of them. The reconnect bench gives one gateway another.
   */
  gatewayTicketSecret?: Uint8Array;
  /** The gateway's bound on TLS handshakes in flight per source address (default handshakeLimitsDefault); the reconnect bench, whose agents all come from 127.0.0.1, raises it. */
  gatewayPendingHandshakesPerSourceMax?: number;
  /** The gateway's bound on TLS handshakes running at once (default handshakeLimitsDefault); later sockets wait their turn. */
  gatewayHandshakesInFlightMax?: number;
  /**
   * The gateway's bounds on sockets past TLS (default establishedLimitsDefault in
   * server/gateway/gateway-server.ts): the upgrade timeout, sockets per source address in all and
   * not yet authenticated, unauthenticated sockets per certificate, unsent bytes per session. The
   * connections bench, whose agents all come from 127.0.0.1, lifts the per-address ones.
   */
  gatewayEstablishedLimits?: Partial<Pick<GatewayServerOptions,
    'upgradeTimeoutMs' | 'socketsPerSourceMax' | 'unauthenticatedSocketsPerSourceMax' | 'unauthenticatedSocketsPerCertificateMax' | 'socketBufferedBytesMax'>>;
  /**
   * The gateway's bounds on sockets before and in the TLS handshake (default handshakeLimitsDefault
   * in server/gateway/gateway-server.ts), as `sdc serve` / `sdc gateway` flags set them; each given
   * one wins over gatewayPendingHandshakesPerSourceMax and gatewayHandshakesInFlightMax.
   */
  gatewayHandshakeLimits?: Partial<Pick<GatewayServerOptions, 'handshakeTimeoutMs' | 'pendingHandshakesPerSourceMax' | 'handshakesInFlightMax' | 'handshakesInFlightMin' | 'handshakeQueueMax'>>;
  /**
   * What the gateway does while its CRL is past nextUpdate by more than `graceMs` or it holds none
   * (decision 0021; `sdc serve|gateway --crl-stale-policy`, `--crl-stale-grace-ms`): default
   * fail-open (logged at each reload, sdc_gateway_crl_state), grace crlStaleGraceMsDefault.
   */
  crlStale?: { readonly policy?: CrlStalePolicy; readonly graceMs?: number };
  /**
   * The control plane's `GET /v1/crl`, fetched at each CRL reload beside the file (`--crl-url`,
   * decision 0021, 2026-12-06), its certificate checked against the deployment's root CA; the
   * higher-numbered of the two is taken. For a gateway on another host, whose file nobody refreshes.
   */
  crlUrl?: URL;
  /** Default crlFetchTimeoutMsDefault (server/deployment/crl-fetch.ts). */
  crlFetchTimeoutMs?: number;
}

/** A running control plane and gateway sharing one set of stores: what `sdc serve` and `sdc demo` run. */
export interface Deployment {
  /** A gateway-only deployment has no SQL database (`sql` undefined). */
  readonly stores: GatewayStores | Stores;
  readonly controlPlane: ControlPlane | undefined;
  readonly gateway: GatewayCore;
  readonly gatewayServer: GatewayServer;
  readonly apiUrl: string | undefined;
  readonly gatewayUrl: string;
  /** What /metrics serves for this process (control plane and gateway together). */
  readonly metrics: ServiceMetrics;
  /** The metrics listener's URL, when `metricsPort` was given. */
  readonly metricsUrl: string | undefined;
  /**
   * What this process's Ed25519 providers counted so far (the gateway's; the control plane's,
   * undefined when gateway-only): curve verifies against answers from the shared verified-signature
   * cache (docs/decisions/0014-one-process-verifies-a-device-frame-once.md; benches and tests).
   */
  ed25519Counts(): { gateway: NodeEd25519Counts; controlPlane: NodeEd25519Counts | undefined };
  stop(): Promise<void>;
}

/**
 * Signatures that verified, shared by this process's gateway and control plane, so the control
 * plane's own check of a device frame the gateway has just checked (ACK, RESULT, ALERT, policy
 * report: decision 0008) matches the exact bytes instead of running the curve again (decision 0014).
 * The control plane reads a frame after the bus and its consumer: at about 140 commands a second
 * (the closed loop at 1,000 agents), three frames each, and a few seconds behind under load, that
 * is a few thousand entries; 8,192 of a few hundred bytes each is about 5 MiB. A frame whose entry
 * was dropped is verified again, as before.
 */
export const deploymentVerifiedSignaturesMax = 8192;

export interface GatewayStores extends Omit<Stores, 'sql'> {
  readonly sql: undefined;
}

/**
 * A gateway-only process needs only the bus and the key/value store, and they must be the shared
 * Redis: an embedded store lives inside one process, so another process could not reach its devices.
 */
function requireSharedRedis(options: StartDeploymentOptions): void {
  if (options.controlPlane === false && options.redisUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'a gateway-only deployment needs a shared Redis');
}

interface ServicesStart {
  readonly options: StartDeploymentOptions;
  readonly logger: Logger;
  readonly host: string;
  readonly stores: ConnectedStores;
  readonly crl: CrlFileWatch;
  readonly crlPath: string;
  readonly gatewayPort: HeldPort;
  readonly withApi: boolean;
  readonly onStop: (stop: () => Promise<void>) => void;
}

interface Services {
  readonly metrics: ServiceMetrics;
  readonly gateway: GatewayCore;
  readonly gatewayServer: GatewayServer;
  readonly gatewayUrl: string;
  readonly controlPlane: ControlPlane | undefined;
  readonly gatewayEd25519: NodeEd25519Provider;
  readonly controlPlaneEd25519: NodeEd25519Provider | undefined;
}

/**
 * One attempt at the services on the opened stores: the gateway core and its listener (on the
 * port held for it; a later attempt listens on the same port again), then the control plane
 * (migrations, start) unless gateway-only. Each has fresh metrics, so that a failed attempt's
 * collectors are not left reporting.
 */
async function startServices(start: ServicesStart): Promise<Services> {
  const { options, logger, host, stores, crl, gatewayPort, onStop } = start;
  const { materials, clock, random, scheduler } = options;
  const metrics = new ServiceMetrics({ onCollectorError: (error) => logger.warn({ err: error }, 'a metrics collector failed; its gauges keep their last values') });
  onStop(async () => metrics.stop());
  // Each keeps its own key caches (sized for its role); only the verified signatures are shared (decision 0014).
  const verifiedSignatures = createVerifiedSignatureCache(deploymentVerifiedSignaturesMax);
  const gatewayEd25519 = createNodeEd25519Provider({ publicKeyCacheEntriesMax: gatewayDeviceKeyCacheEntriesMax, verifiedSignatures });
  metrics.addCollector(crlMetricsCollector(crl, metrics));
  const gateway = createGatewayCore({
    isRevoked: createRevocationCheck({ kv: stores.kv, crlSerials: () => crl.serials() }),
    checkEnrollment: crlFreshAdmission({ watch: crl, policy: options.crlStale?.policy ?? 'fail-open', next: createEnrollmentCheck({ kv: stores.kv }) }),
    telemetryBatchEntriesMax: gatewayTelemetryBatchEntries, telemetryFramesPerEntryMax: gatewayTelemetryFramesPerEntry,
    // Presence refreshes of many sessions in one pipelined write (server/gateway/presence-refresh-window.ts).
    presenceRefreshWindowMs: presenceRefreshWindowMsFor(options.gateway?.heartbeatIntervalMs ?? gatewayDefaults.heartbeatIntervalMs),
    ...options.gateway,
    gatewayId: options.gatewayId ?? 'gw-1',
    signer: materials.gatewaySigner,
    provider: gatewayEd25519,
    stores: { bus: stores.bus, kv: stores.kv },
    clock, random, scheduler, logger: logger.child({ role: 'gateway' }), metrics,
    commandKeys: gatewayCommandKeys(materials),
  });
  await gateway.start();
  onStop(() => gateway.stop());
  await gatewayPort.release();
  const gatewayServer = await startGatewayServer({
    core: gateway, tls: materials.serverTls, host, port: gatewayPort.port,
    trustAnchors: [materials.intermediateCaPem, materials.rootCaPem], clock, logger: logger.child({ role: 'gateway-server' }), metrics,
    sessionTickets: { secret: options.gatewayTicketSecret ?? materials.gatewaySigner.seed },
    ...(options.gatewayPendingHandshakesPerSourceMax === undefined ? {} : { pendingHandshakesPerSourceMax: options.gatewayPendingHandshakesPerSourceMax }),
    ...(options.gatewayHandshakesInFlightMax === undefined ? {} : { handshakesInFlightMax: options.gatewayHandshakesInFlightMax }),
    ...options.gatewayHandshakeLimits,
    ...options.gatewayEstablishedLimits,
  }).catch((error: unknown) => { throw listenRefusal(error, 'gateway', host, gatewayPort.port); });
  onStop(() => gatewayServer.close());
  const gatewayUrl = gatewayServer.address.url;
  if (!start.withApi || stores.sql === undefined || !isFullMaterials(materials)) return { metrics, gateway, gatewayServer, gatewayUrl, controlPlane: undefined, gatewayEd25519, controlPlaneEd25519: undefined };
  // Its own signatures (the commands it signs) go into the shared cache too: the gateway's check of a command
  // this process signed is then the exact-bytes match, not a second curve operation (decision 0016).
  const controlPlaneEd25519 = createNodeEd25519Provider({ verifiedSignatures, rememberOwnSignatures: true });
  const controlPlane = await createControlPlane({
    materials, stores: { sql: stores.sql, bus: stores.bus, kv: stores.kv }, clock, random, scheduler, logger: logger.child({ role: 'control-plane' }), ed25519: controlPlaneEd25519,
    gatewayUrls: options.advertisedGatewayUrls ?? [gatewayUrl], crlPath: start.crlPath,
    commandAuditWindowMs: auditWindowMsDeployment, eventAuditWindowMs: auditWindowMsDeployment, ...options.controlPlaneTuning, ...(options.scryptParams ? { scryptParams: options.scryptParams } : {}),
    metrics, ...(options.metricsScrapeToken === undefined ? {} : { metricsScrapeToken: options.metricsScrapeToken }),
  });
  onStop(() => controlPlane.stop());
  await controlPlane.start();
  return { metrics, gateway, gatewayServer, gatewayUrl, controlPlane, gatewayEd25519, controlPlaneEd25519 };
}

function isFullMaterials(materials: DeploymentMaterials | GatewayMaterials): materials is DeploymentMaterials {
  return 'commandSigner' in materials;
}

/** The command public keys the gateway checks commands with: only public halves, whichever materials it was given. */
function gatewayCommandKeys(materials: DeploymentMaterials | GatewayMaterials): Map<string, Uint8Array> {
  if (!isFullMaterials(materials)) return new Map(materials.commandKeys);
  return new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]);
}

/**
 * Opens the stores, starts a gateway (first, so its URL can be handed to devices at enrollment)
 * and the control plane, both over TLS with the deployment's server certificate.
 */
export async function startDeployment(options: StartDeploymentOptions): Promise<Deployment> {
  const { materials, clock, random, scheduler } = options;
  const logger = options.logger ?? pino({ level: 'silent' });
  const host = options.host ?? '127.0.0.1';
  const withControlPlane = options.controlPlane !== false;
  if (withControlPlane && !isFullMaterials(materials)) throw new SdcError('PROTO_INVALID_ARGUMENT', 'a control plane needs the full deployment materials (loadDeployment), not a gateway\'s');
  requireSharedRedis(options);
  storeTargets(options); // a malformed store URL is refused before anything listens or waits
  const readiness = new Readiness({ dependencies: deploymentDependencies(options, withControlPlane), clock, scheduler });
  const stopped: Array<() => Promise<void>> = [];
  // Once: a second call (a signal handler's and the run's own, sdc chaos run) waits for the first.
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => stopping ??= (async () => {
    for (const stop of stopped.reverse()) await stop().catch((error: unknown) => logger.warn({ err: error }, 'stop failed'));
  })();
  try {
    // Both ports first (docs/api.md, Readiness): a port in use is refused at once, and the API
    // answers /healthz and /readyz while the stores are awaited.
    const startupApi = withControlPlane && isFullMaterials(materials)
      ? await startStartupApiServer({ materials, host, port: options.apiPort ?? 0, readiness, random, logger: logger.child({ role: 'control-plane' }) })
      : undefined;
    if (startupApi !== undefined) {
      stopped.push(() => startupApi.release());
      options.onApiListening?.(startupApi.url);
    }
    const gatewayPort = await holdPort('gateway', host, options.gatewayPort ?? 0);
    stopped.push(() => gatewayPort.release());
    const stores = await connectStores({
      open: {
        // The same file `sdc user add` and `sdc audit verify` open (server/control-plane/database.ts).
        dataDir: join(materials.dataDir, 'db'), sqlFileName: 'sdc.sqlite', clock, scheduler,
        ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
        ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
        ...(options.keyPrefix ? { keyPrefix: options.keyPrefix } : {}),
      },
      withSql: withControlPlane, limits: options.storeRetry ?? storeRetryNone, random, logger: logger.child({ role: 'stores' }), readiness,
    });
    stopped.push(() => stores.close());
    // Admission (revoked serial, certificate not current, never-enrolled device) reads kv keys the
    // control plane publishes, the same for this in-process gateway and a gateway-only process;
    // revocation also reads the CRL file the control plane writes, which holds without the kv store.
    const { crlPath } = pkiPaths(materials.dataDir);
    // The highest CRL taken (signed, verified before use) is kept once for the deployment in the
    // shared store: a restarted or new gateway starts with it and refuses an older file (decision 0021).
    const crl = new CrlFileWatch({
      path: crlPath, intermediateCaPem: materials.intermediateCaPem, scheduler, clock, logger: logger.child({ role: 'gateway' }),
      record: { kv: stores.kv, key: kvKeys.gatewayCrl },
      ...(options.crlStale?.graceMs === undefined ? {} : { staleGraceMs: options.crlStale.graceMs }),
      ...(options.crlUrl === undefined ? {} : {
        fetch: { url: options.crlUrl, caPem: materials.rootCaPem, ...(options.crlFetchTimeoutMs === undefined ? {} : { timeoutMs: options.crlFetchTimeoutMs }) },
      }),
    });
    await crl.start();
    stopped.push(async () => crl.stop());
    // From here the stores are used: a store lost part-way (a migration, the consumer groups) is
    // ridden out like one down at t = 0 (start-store-loss.ts), each attempt from a clean slate.
    const targets = storeTargets(options);
    const probes = new Map([...storeProbes(stores)].flatMap(([name, probe]) => {
      const target = name === 'mysql' ? targets.mysql : name === 'redis' ? targets.redis : undefined;
      return target === undefined ? [] : [[name, { target, probe }] as const];
    }));
    const started = await startRidingOutStoreLoss({
      limits: options.storeRetry ?? storeRetryNone, probes, readiness, scheduler, random, logger: logger.child({ role: 'stores' }),
      attempt: (onStop) => startServices({ options, logger, host, stores, crl, crlPath, gatewayPort, withApi: startupApi !== undefined, onStop }),
    });
    stopped.push(...started.stops);
    const { metrics, gateway, gatewayServer, gatewayUrl, controlPlane, gatewayEd25519, controlPlaneEd25519 } = started.value;
    let apiUrl: string | undefined;
    if (startupApi !== undefined && controlPlane !== undefined) {
      registerProbeRoutes(controlPlane.app, readiness);
      readiness.running(storeProbes(stores));
      const trimWatch = controlPlane.busTrimWatch;
      readiness.degradedBy(() => trimWatch.degraded());
      // The API takes over the port the startup server held.
      await startupApi.release();
      const listening = await controlPlane.listen({ host, port: startupApi.port, tls: true })
        .catch((error: unknown) => { throw listenRefusal(error, 'api', host, startupApi.port); });
      apiUrl = listening.url;
    }
    let metricsUrl: string | undefined;
    if (options.metricsPort !== undefined) {
      const metricsServer = await startMetricsServer({
        metrics, host: options.metricsHost ?? '127.0.0.1', port: options.metricsPort, scrapeToken: options.metricsScrapeToken,
        logger: logger.child({ role: 'metrics' }), newTraceId: () => hexFromBytes(random.bytes(16)),
      });
      stopped.push(() => metricsServer.close());
      metricsUrl = metricsServer.url;
    }
    const ed25519Counts = () => ({ gateway: gatewayEd25519.counts(), controlPlane: controlPlaneEd25519?.counts() });
    return { stores, controlPlane, gateway, gatewayServer, apiUrl, gatewayUrl, metrics, metricsUrl, ed25519Counts, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
