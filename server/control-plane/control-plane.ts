import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { gatewayCommandStream, groups, kvKeys, streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { apiTlsOptions, type DeploymentMaterials } from '../materials/materials.js';
import { SdcError } from '../../core/errors/index.js';
import { AuditLog } from '../../core/protocol/audit-chain.js';
import type { Policy } from '../../core/protocol/policy.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { deadLetterStream, type StreamBus } from '../stores/bus/bus-port.js';
import { pendingEntriesReadMax, ServiceMetrics } from '../observability/metrics.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import { AlertService } from './alerts.js';
import { ComplianceService } from './compliance.js';
import { DeadLetterService } from './dead-letters.js';
import type { ComplianceRules } from '../../core/protocol/compliance.js';
import type { AlertRules } from './alert-rules.js';
import { AuthService } from './auth.js';
import { artifactDefaults, attachArtifacts, type ArtifactRetention } from '../ota/artifact-routes.js';
import { attachOta, type OtaBlobOptions } from '../ota/control-plane-ota.js';
import type { BlobStore } from '../ota/blob-store.js';
import type { ExecutionTimeouts } from '../../core/ota/execution-machine.js';
import type { OtaServices } from '../ota/ota-service.js';
import { CommandService } from './commands.js';
import { ApprovalService } from './approvals.js';
import { SigningKeyStore } from './signing-keys.js';
import type { LiveEvent, ServiceContext } from './context.js';
import { migrateControlPlane } from './database.js';
import { crlRepublishIntervalMsDefault, DeviceService } from './devices.js';
import { deviceIdOfEntry, EventHandlers } from './events.js';
import { TelemetryTrimmer, type TelemetryRetention } from './telemetry-retention.js';
import { buildHttpApp } from './http/app.js';
import { clientErrorListener } from './http/client-errors.js';
import type { AuthRateLimits } from './http/rate-limit.js';
import { LiveHub } from './live.js';
import { LivePublisher } from './live-publisher.js';
import { PolicyStore } from './policy-store.js';
import { PolicyBundlePublisher, sqlApproverKeys, sqlPolicyAndDeviceTags } from './policy-bundles.js';
import type { ControlPlaneServices } from './services.js';
import { AuditDrainSoon } from './audit-drain-soon.js';
import { SqlAuditStore } from './stores/sql-audit-store.js';
import { StreamConsumer } from './stream-consumer.js';
import { BusTrimWatch, type BusTrimTarget } from './bus-trim-watch.js';
import { telemetryConsumerOptions } from './telemetry-rows.js';

/** How long the API keeps an idle kept-alive connection open (see listen). */
export const apiKeepAliveTimeoutMs = 72_000;

export interface ControlPlaneOptions {
  readonly materials: DeploymentMaterials;
  readonly stores: { readonly sql: SqlDatabase; readonly bus: StreamBus; readonly kv: KeyValueStore };
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly scheduler: Scheduler;
  /** Signs commands and checks device signatures; default node:crypto (the simulator passes its modelled provider). */
  readonly ed25519?: Ed25519Provider;
  /** Default: silent. */
  readonly logger?: Logger;
  /**
   * Stored as the first policy revision when the database holds none (`sdc serve --policy FILE`);
   * otherwise the stored revisions rule. With none stored and none given, the built-in
   * defaultPolicy (core/protocol/policy.ts) applies as revision 0.
   */
  readonly policy?: Policy;
  readonly jwt?: {
    readonly issuer?: string; readonly audience?: string; readonly tokenTtlMs?: number;
    /** A new signing key this often (JwtAuthority default 7 days); the retired one stays published for tokenTtlMsMax + skew. */
    readonly rotationIntervalMs?: number;
    /** Longest token lifetime (JwtAuthority default 1 h): how long a retired key stays published. */
    readonly tokenTtlMsMax?: number;
    /** Clock skew the token checks allow (default 30 s): `sdc chaos run`'s expired-JWT fault lowers it to fit in seconds. */
    readonly clockSkewMs?: number;
  };
  /**
   * How often the JWT key ring is checked for a due rotation and for retired keys past their
   * overlap (default 60 s; also at start). Without it a key rotates only when a token is issued.
   */
  readonly jwtRotationCheckIntervalMs?: number;
  /**
   * How often the CRL is re-published (default 60 s, also at start; a revocation signs its own):
   * re-signed once a third of its validity is left, or for revocations no stored CRL lists yet once
   * the latest stored CRL is crlSigningSpacingMs old (a tenth short of this; judged on the stored
   * CRLs, so the replicas together sign about one CRL per interval: decision 0021, section "h7"),
   * and the file rewritten when it does not hold the current CRL (deleted, replaced, or a write
   * that failed).
   */
  readonly crlRepublishIntervalMs?: number;
  /**
   * A CRL's validity, thisUpdate to nextUpdate (default 24 h). Relying parties may cache a CRL
   * until its nextUpdate, so a shorter one bounds how long they can miss a revocation, at the cost
   * of more signing; it must exceed crlRepublishIntervalMs several times over.
   */
  readonly crlValidityMs?: number;
  readonly commandTtlMsDefault?: number;
  /** WSS URLs handed to devices at enrollment. */
  readonly gatewayUrls: readonly string[];
  /** Keep the JWT key ring in `<materials.dataDir>/jwt/` (default true); false keeps it in memory. */
  readonly persistJwtKeys?: boolean;
  /** Consumer name in the bus groups; default `cp-<random>`. */
  readonly consumerName?: string;
  /** How often the expiry sweep runs (default 5 s). */
  readonly expirySweepIntervalMs?: number;
  /**
   * How often recorded audit inputs left in the outbox are chained (default 5 s; also at start):
   * normally every change chains its own right after its commit, so this only completes what a
   * failed drain or a crash left behind.
   */
  readonly auditDrainIntervalMs?: number;
  /**
   * When set, how long a command's audit inputs may wait in the outbox for others to share their
   * drain (0 = the end of the current instant). A command's create and transitions then ask for a
   * drain within this window instead of awaiting one each (issue 17: at 20 commands/s on MySQL,
   * each of a command's five commits drained alone, 15 of its 31 round trips). The API's audit
   * reads drain first (routes/audit.ts), so a reader through the API never sees the lag. Unset (the
   * default here), each awaits its drain, so a read of the store right after an answer finds the
   * entry chained; null is the same. A deployment sets `auditWindowMsDeployment`
   * (server/deployment) unless its tuning says otherwise.
   */
  readonly commandAuditWindowMs?: number | null;
  /**
   * How long the event handlers' audit inputs (a device's compliance at AUTH, its policy bundle
   * report: the work that asks ServiceContext.settleAuditSoon) may wait in the outbox for others
   * to share their drain; default 0, the end of the current instant. The simulator and a
   * deployment (auditWindowMsDeployment) set 50 ms (issue 17: at a fleet's start each virtual
   * millisecond's one or two inputs took a drain of their own, about 0.2 ms of CPU per agent).
   * The API's audit reads drain first, as above.
   */
  readonly eventAuditWindowMs?: number;
  /** How often the redelivery sweep runs (default 5 s; see CommandService.redispatchDue). */
  readonly redeliverySweepIntervalMs?: number;
  /** How often the policy revision is checked for a change that gateways must hear of (default 5 s; PolicyBundlePublisher.checkRevision). */
  readonly policyRevisionCheckIntervalMs?: number;
  /** A waiting command is re-dispatched at most once per this interval (default 30 s). */
  readonly redispatchIntervalMs?: number;
  /** The longest wait between two re-sends of one command by that sweep (see CommandService.redispatchDue; default 4 x redispatchIntervalMs, 120 s). */
  readonly redispatchIntervalMaxMs?: number;
  /** How often every enrolled device's kv key is re-published, healing a wiped key/value store (default 60 s; also at start). */
  readonly enrolledDevicesPublishIntervalMs?: number;
  /**
   * How often the control plane looks for the marker key of its last full publish (default 5 s):
   * when the key/value store lost its data, everything gateways admit by is re-published at once,
   * so devices are refused (fail closed) for at most about this long after a wipe.
   */
  readonly trustWipeCheckIntervalMs?: number;
  /** Where each newly signed CRL is written, for gateways (`<dataDir>/pki/crl.pem` in a deployment); none when absent. */
  readonly crlPath?: string;
  /** Outstanding (unused, unexpired) pairing tokens at most; default pairingTokensMaxDefault (100,000). */
  readonly pairingTokensMax?: number;
  /** Blocking read time of the consumer loops (default 1 s). */
  readonly consumerBlockMs?: number;
  /** A pending entry idle this long is taken over from a dead consumer (default 30 s). */
  readonly claimIdleMs?: number;
  readonly bodyLimitBytes?: number;
  readonly liveClientsMax?: number;
  /** Live streams one user may hold per process (default 5). */
  readonly liveClientsPerUserMax?: number;
  /**
   * How often every live stream's token is re-checked against the users table (default 5 s, the
   * subject cache's TTL): the bound on closing a revoked user's streams when the change's notice
   * is lost or the change was made in the database directly.
   */
  readonly liveRecheckIntervalMs?: number;
  /** Overrides of the login and enrollment rate limits (authRateLimits in http/rate-limit.ts). */
  readonly authRateLimits?: Partial<AuthRateLimits>;
  /** The process's metrics (shared with an in-process gateway); default a registry of its own. */
  readonly metrics?: ServiceMetrics;
  /** Alert rules (`sdc serve --alerts FILE`, alert-rules.ts); default alertRulesDefault. Sampled every rules.sampleIntervalMs. */
  readonly alertRules?: AlertRules;
  /** Bearer token `GET /metrics` needs; without one it answers loopback peers only. */
  readonly metricsScrapeToken?: string;
  /** Compliance rules (docs/compliance.md); default: only certificate expiry and failed kernel checks are judged. */
  readonly complianceRules?: ComplianceRules;
  /** How often stored compliance states are re-judged (default 60 s; see ComplianceService.reevaluateDue). */
  readonly complianceSweepIntervalMs?: number;
  /** Cheaper scrypt for tests only. */
  readonly scryptParams?: { N: number; r: number; p: number };
  /** The OTA image repository's artifact size limit (default releaseLimits.artifactBytesMax, 256 MiB). */
  readonly otaArtifactBytesMax?: number;
  /** OTA execution timeouts (core/ota/execution-machine.ts defaultExecutionTimeouts by default). */
  readonly otaExecutionTimeouts?: ExecutionTimeouts;
  /** How often running rollouts are ticked and executions checked for timeouts (default 1 s). */
  readonly otaRolloutSweepIntervalMs?: number;
  /** The blob store (docs/ota.md): S3 and the public base URL of presigned URLs; default embedded, based on the listen address. */
  readonly otaBlobs?: OtaBlobOptions;
  /** How long and how much uploaded artifacts are kept (docs/artifacts.md); default artifactDefaults' 30 days and 1 GiB. */
  readonly artifactRetention?: Partial<ArtifactRetention>;
  /** How often the artifact retention pass runs besides at each upload grant (default artifactDefaults.retentionSweepIntervalMs, 1 h). */
  readonly artifactRetentionSweepIntervalMs?: number;
  /** Telemetry rows kept per device (docs/api.md, "Telemetry retention"); default telemetryRetentionDefaults (10,080). */
  readonly telemetryRetention?: Partial<TelemetryRetention>;
  /**
   * How often the streams appended with a maxLen are checked for entries trimmed before their group
   * read them (default 30 s, the claim interval; also at start, before the consumers read): BusTrimWatch.
   */
  readonly busTrimCheckIntervalMs?: number;
  /** How long /readyz reports such a loss as degraded (default 1 h). */
  readonly busTrimDegradedWindowMs?: number;
}

export interface ControlPlane extends ControlPlaneServices {
  readonly app: FastifyInstance;
  /** The OTA image repository and releases (docs/ota.md); undefined until `sdc ota init` created one in the data directory. */
  readonly ota: OtaServices | undefined;
  /** The blob store of artifacts and uploads (embedded or S3), with or without an image repository; `presign` is the one presigner. */
  readonly blobStore: BlobStore;
  /** What `GET /metrics` serves. */
  readonly metrics: ServiceMetrics;
  /** Consumers of `sdc:events` and `sdc:telemetry`; `drain()` processes everything pending now (tests, simulator). */
  readonly eventsConsumer: StreamConsumer;
  readonly telemetryConsumer: StreamConsumer;
  /** Trims stored telemetry to its retention bound, in passes that follow the rows stored. */
  readonly telemetryTrimmer: TelemetryTrimmer;
  /** Finds entries the bus trimmed before the control plane (or a gateway) read them; its degraded() feeds /readyz. */
  readonly busTrimWatch: BusTrimWatch;
  /** Serves the API over HTTP or HTTPS (materials.serverTls); returns the bound address. */
  listen(options: { host: string; port: number; tls: boolean }): Promise<{ host: string; port: number; url: string }>;
  /**
   * Re-publishes the enrolled devices' kv keys (gateways admit only those), starts the event
   * consumers (after claiming a dead consumer's idle entries), the live relay, and the expiry,
   * redelivery and enrolled-device sweeps.
   */
  start(): Promise<void>;
  /** Stops everything this object started; the stores stay open (the caller owns them). */
  stop(): Promise<void>;
  /**
   * Resolves when no periodic sweep's pass is running. A test on virtual time awaits it before
   * moving time on, so a pass's real work (SQL, file writes) never lags behind the clock.
   */
  sweepsSettled(): Promise<void>;
}

/** The control plane's scrape-time gauges: its consumer groups' pending entries, their dead letters, devices online. */
async function controlPlaneGauges(metrics: ServiceMetrics, db: SqlDatabase, bus: StreamBus): Promise<void> {
  for (const [stream, group] of [[streamNames.events, groups.controlPlane], [streamNames.telemetry, groups.telemetry]] as const) {
    metrics.busPending.set({ stream, group }, (await bus.pending(stream, group, { count: pendingEntriesReadMax }).catch(() => [])).length);
    metrics.deadLetters.set({ stream }, await bus.length(deadLetterStream(stream)));
  }
  const [row] = await db.query<{ n: number }>('SELECT COUNT(*) AS n FROM devices WHERE gateway_id IS NOT NULL');
  metrics.agentsOnline.set({ role: 'control-plane' }, Number(row?.n ?? 0));
}

/**
 * Every stream appended with a maxLen and the group that must read all of it: the two the control
 * plane consumes, and each known gateway's command stream (its gateways' group), whose trimmed
 * unread entries are commands no gateway delivered.
 */
/** The gateway id list holds at most this many (gatewayIdsMax in server/gateway/peer-watch.ts). */
const gatewayStreamsCheckedMax = 1_024;

async function busTrimTargets(kv: KeyValueStore): Promise<BusTrimTarget[]> {
  const targets: BusTrimTarget[] = [
    { stream: streamNames.events, group: groups.controlPlane },
    { stream: streamNames.telemetry, group: groups.telemetry },
  ];
  let gatewayIds: unknown = [];
  try {
    gatewayIds = JSON.parse(await kv.get(kvKeys.gatewayIds) ?? '[]');
  } catch {
    // A damaged list: the gateways rewrite it; their streams are checked once it parses.
  }
  if (Array.isArray(gatewayIds)) {
    for (const id of gatewayIds.slice(0, gatewayStreamsCheckedMax)) if (typeof id === 'string') targets.push({ stream: gatewayCommandStream(id), group: groups.gateway });
  }
  return targets;
}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/**
 * A CRL is re-signed with a third of its validity left, at a republish pass: with a validity of
 * three intervals or less a pass could come only after it went stale, so such a setting is refused.
 */
function assertCrlTiming(crlValidityMs: number | undefined, republishIntervalMs: number): void {
  if (crlValidityMs === undefined) return;
  if (!Number.isSafeInteger(crlValidityMs) || crlValidityMs <= 3 * republishIntervalMs) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `crlValidityMs must be an integer above three CRL republish intervals (${3 * republishIntervalMs} ms), got ${crlValidityMs}`);
  }
}

export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { materials, clock, random, scheduler } = options;
  const { sql: db, bus, kv } = options.stores;
  const logger = options.logger ?? pino({ level: 'silent' });
  assertCrlTiming(options.crlValidityMs, options.crlRepublishIntervalMs ?? crlRepublishIntervalMsDefault);
  await migrateControlPlane(db, clock);
  const auditStore = new SqlAuditStore(db);
  const audit = new AuditLog<SqlExecutor>({ store: auditStore, sha256, clock });
  const settleAudit = async (): Promise<void> => {
    try {
      await audit.drainRecorded();
    } catch (error) {
      logger.warn({ err: error }, 'audit outbox drain failed; the entries stay recorded and the periodic drain chains them');
    }
  };
  const auditDrainSoon = new AuditDrainSoon({ scheduler, drain: settleAudit, delayMs: options.eventAuditWindowMs ?? 0 });
  const commandAuditDrain = new AuditDrainSoon({ scheduler, drain: settleAudit, delayMs: options.commandAuditWindowMs ?? 0 });
  const commandAuditWindowed = options.commandAuditWindowMs !== undefined && options.commandAuditWindowMs !== null;
  const livePublisher = new LivePublisher({ kv, logger, clock, scheduler });
  const context: ServiceContext = {
    db, bus, kv, clock, random, scheduler, logger, audit, settleAudit, settleAuditSoon: () => auditDrainSoon.request(),
    // Through context.settleAudit, which tests may wrap.
    settleCommandAudit: async () => { if (commandAuditWindowed) commandAuditDrain.request(); else await context.settleAudit(); },
    ed25519: options.ed25519 ?? createNodeEd25519Provider(),
    publishLive: (event: LiveEvent) => livePublisher.publish(event),
  };
  const auth = await AuthService.create({
    context, issuer: options.jwt?.issuer ?? 'sdc-control-plane', audience: options.jwt?.audience ?? 'sdc-api',
    ...(options.persistJwtKeys === false ? {} : { dataDir: materials.dataDir }),
    ...(options.jwt?.tokenTtlMs === undefined ? {} : { tokenTtlMs: options.jwt.tokenTtlMs }),
    ...(options.jwt?.rotationIntervalMs === undefined ? {} : { rotationIntervalMs: options.jwt.rotationIntervalMs }),
    ...(options.jwt?.tokenTtlMsMax === undefined ? {} : { tokenTtlMsMax: options.jwt.tokenTtlMsMax }),
    ...(options.jwt?.clockSkewMs === undefined ? {} : { clockSkewMs: options.jwt.clockSkewMs }),
    ...(options.scryptParams === undefined ? {} : { scryptParams: options.scryptParams }),
  });
  const metrics = options.metrics ?? new ServiceMetrics();
  metrics.addCollector(() => controlPlaneGauges(metrics, db, bus));
  const devices = new DeviceService({
    context, materials, gatewayUrls: options.gatewayUrls, ...(options.crlPath === undefined ? {} : { crlPath: options.crlPath }), ...(options.crlValidityMs === undefined ? {} : { crlValidityMs: options.crlValidityMs }),
    ...(options.crlRepublishIntervalMs === undefined ? {} : { crlRepublishIntervalMs: options.crlRepublishIntervalMs }),
    ...(options.pairingTokensMax === undefined ? {} : { pairingTokensMax: options.pairingTokensMax }),
    // `commands` is created below; a revocation only comes once the control plane is up.
    onRevoked: (revocation) => commands.cancelForRevokedDevice(revocation),
  });
  const policy = new PolicyStore(context);
  if (options.policy !== undefined && await policy.seed(options.policy)) logger.info('policy stored as revision 1 (none was stored)');
  // Each device's signed policy bundle, asked for by gateways (docs/policy.md, "The device's policy bundle").
  const policyBundles = new PolicyBundlePublisher({
    context, currentPolicy: () => policy.current(), signer: materials.commandSigner,
    policyAndTags: sqlPolicyAndDeviceTags(db, (revision) => policy.at(revision)), approverKeys: sqlApproverKeys(db, () => clock.nowMs()),
  });
  // Before the commands: a policy posture condition reads the compliance state through it (the DeviceComplianceReader port).
  const compliance: ComplianceService = new ComplianceService({ context, rules: options.complianceRules ?? {}, onReported: (report): Promise<void> => events.alertMonitor.onPostureReport(report), deviceKeys: devices });
  const commands = new CommandService({
    context, signer: materials.commandSigner, policy, compliance,
    ttlMsDefault: options.commandTtlMsDefault ?? 10 * 60 * 1000, issuer: materials.commandSigner.kid,
    ...(options.redispatchIntervalMs === undefined ? {} : { redispatchIntervalMs: options.redispatchIntervalMs }),
    ...(options.redispatchIntervalMaxMs === undefined ? {} : { redispatchIntervalMaxMs: options.redispatchIntervalMaxMs }),
    onFinished: ({ opcode, state, latencyMs }) => metrics.commandLatency.observe({ opcode, final_state: state }, latencyMs / 1000),
  });
  const telemetryTrimmer = new TelemetryTrimmer({ db, logger, ...(options.telemetryRetention === undefined ? {} : { retention: options.telemetryRetention }) });
  const events = new EventHandlers({
    context, commands, devices, onTelemetryStored: () => { metrics.telemetrySamples.inc({ role: 'control-plane' }); telemetryTrimmer.noteStored(); },
    onTelemetryDuplicates: (duplicates) => metrics.telemetryDuplicates.inc(duplicates),
    onAlertRaised: (kind) => metrics.alertsRaised.inc({ kind }), ...(options.alertRules === undefined ? {} : { alertRules: options.alertRules }),
    compliance,
  });
  const live = new LiveHub({
    // Streams of a user whose tokens were revoked, or who was removed, close on every control plane (live.ts).
    kv, logger, clock, scheduler, subjects: auth, ...(options.liveClientsMax === undefined ? {} : { clientsMax: options.liveClientsMax }),
    ...(options.liveRecheckIntervalMs === undefined ? {} : { recheckIntervalMs: options.liveRecheckIntervalMs }),
    ...(options.liveClientsPerUserMax === undefined ? {} : { clientsPerUserMax: options.liveClientsPerUserMax }),
  });
  const alerts = new AlertService({ context });
  const deadLetters = new DeadLetterService({ context, presenceGateway: (deviceId) => commands.presenceGateway(deviceId) });
  const signingKeys = new SigningKeyStore({ db, audit: context.audit });
  const approvals = new ApprovalService({
    context, commands, signingKeys, policy, signer: materials.commandSigner, roleOf: (name) => auth.users.roleOf(name),
  });
  const services: ControlPlaneServices = { context, auth, devices, commands, events, alerts, live, auditStore, policy, compliance, deadLetters, approvals, signingKeys };
  const app = buildHttpApp({
    services, logger, random, ...(options.bodyLimitBytes === undefined ? {} : { bodyLimitBytes: options.bodyLimitBytes }),
    ...(options.authRateLimits === undefined ? {} : { authRateLimits: options.authRateLimits }),
    metrics, ...(options.metricsScrapeToken === undefined ? {} : { metricsScrapeToken: options.metricsScrapeToken }),
  });
  // The OTA image repository, when `sdc ota init` created one in the data directory; its routes answer either way.
  const ota = await attachOta({
    context, app, dataDir: materials.dataDir, raiseAlert: (alert) => events.raiseAlert(alert),
    rollouts: {
      signer: materials.commandSigner,
      verifyReportFrame: async (deviceId, frame) => (await devices.verifyDeviceFrame(deviceId, frame, 'OTA_REPORT')).body,
      // Every rollout device is judged as a command of the rollout's creator: the same policy, device facts and current role.
      // Each execution takes its STAGE and COMMIT places in the rate limits (reserve), as commands do.
      policy: {
        current: () => policy.current(), gather: (document, base) => commands.policyFacts.peek(document, base),
        reserve: (document, base) => commands.policyFacts.reserve(document, base), roleOf: (name) => auth.users.roleOf(name),
      },
      // A rollout the policy lets start only with approvals waits for them, signed with the approvers' keys as commands' are.
      approvals: { signingKeys },
      ...(options.otaExecutionTimeouts === undefined ? {} : { timeouts: options.otaExecutionTimeouts }),
      // The metrics hook: sdc_ota_executions_total by terminal state and outcome.
      onExecutionFinished: (state) => { metrics.otaExecutionFinished(state); },
      // sdc_ota_notice_refusals_unaudited_total: repeats (a replayed frame) and reports on ended executions.
      onNoticeRefusalUnaudited: (reason) => { metrics.otaNoticeRefusalsUnaudited.inc({ reason }); },
      // sdc_ota_artifact_urls_not_renewed_total: artifact_url_expired reports while the newest URL is valid (a replay), or on ended executions.
      onArtifactUrlNotRenewed: (reason) => { metrics.otaArtifactUrlsNotRenewed.inc({ reason }); },
    },
    ...(options.otaRolloutSweepIntervalMs === undefined ? {} : { rolloutSweepIntervalMs: options.otaRolloutSweepIntervalMs }),
    ...(options.otaArtifactBytesMax === undefined ? {} : { artifactBytesMax: options.otaArtifactBytesMax }),
    ...(options.otaBlobs === undefined ? {} : { blobs: options.otaBlobs }),
  });

  if (ota.services !== undefined) events.otaReports = (data) => ota.services!.rollouts.onReport(data);
  // Encrypted artifact uploads (docs/artifacts.md): EXEC_COLLECT_ARTIFACT's upload grants and operators' downloads, in the blob store.
  const artifacts = await attachArtifacts({
    context, app, dataDir: materials.dataDir, materials, commands, blobStore: () => ota.blobStore,
    ...(options.artifactRetention === undefined ? {} : { retention: options.artifactRetention }),
  });
  // An artifact command's result is checked against its stored upload when it arrives, not only at download.
  events.resultCheck = (command, output) => artifacts.checkResult(command, output);

  const consumer = options.consumerName ?? `cp-${hexFromBytes(random.bytes(6))}`;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const eventsConsumer = new StreamConsumer({
    bus, stream: streamNames.events, group: groups.controlPlane, consumer, logger, scheduler, claimIdleMs, handle: async (entry) => {
      const reads = await events.handleEvent(entry);
      // After the handler accepted it (a presence of an unknown device is refused there): AUTH facts for
      // compliance, with the device's report as the handler read it (one statement less per AUTH, issue 17).
      await compliance.onEventEntry(entry, reads ? reads.complianceReport : undefined);
    },
    partitionKey: deviceIdOfEntry,
  });
  const telemetryConsumer = new StreamConsumer({
    bus, stream: streamNames.telemetry, group: groups.telemetry, consumer, logger, scheduler, claimIdleMs, handle: (entry) => events.handleTelemetry(entry),
    partitionKey: deviceIdOfEntry, ...telemetryConsumerOptions,
  });

  const busTrimWatch = new BusTrimWatch({
    context, targets: () => busTrimTargets(kv),
    onLost: (loss) => metrics.busEntriesTrimmedUnread.inc({ stream: loss.stream, group: loss.group }, loss.entriesLost),
    ...(options.busTrimDegradedWindowMs === undefined ? {} : { degradedWindowMs: options.busTrimDegradedWindowMs }),
  });

  let running = false;
  const timers = new Map<string, TimerHandle>();
  /** The passes of the periodic sweeps now running: stop() waits for them, and tests on virtual time do (sweepsSettled). */
  const passesInFlight = new Set<Promise<void>>();
  // One pass at a time per sweep. The schedule is anchored at the start (due, due + interval, ...),
  // not at the end of each pass: on a busy machine a slow pass must not push every later one back,
  // or "healed within one interval" stops holding. A pass that outlasts its interval skips the
  // turns it missed instead of overlapping itself.
  const every = (name: string, intervalMs: number, pass: () => Promise<unknown>): void => {
    let dueMs = clock.nowMs() + intervalMs;
    const run = (): void => {
      const inFlight: Promise<void> = pass()
        .then(() => undefined, (error: unknown) => { logger.error({ err: error }, `${name} failed`); })
        .finally(() => {
          passesInFlight.delete(inFlight);
          if (!running) return;
          const nowMs = clock.nowMs();
          dueMs += intervalMs;
          if (dueMs <= nowMs) dueMs += Math.ceil((nowMs - dueMs + 1) / intervalMs) * intervalMs;
          // Never more than one interval away: with a clock that does not follow the scheduler (a
          // test's hand-moved clock beside real timers) the anchor would otherwise run ahead.
          dueMs = Math.min(dueMs, nowMs + intervalMs);
          timers.set(name, scheduler.schedule(dueMs - nowMs, run));
        });
      passesInFlight.add(inFlight);
    };
    timers.set(name, scheduler.schedule(intervalMs, run));
  };
  const sweepsSettled = async (): Promise<void> => {
    while (passesInFlight.size > 0) await Promise.all([...passesInFlight]);
    await auditDrainSoon.settled();
    await commandAuditDrain.settled();
  };
  let server: Server | undefined;

  return {
    ...services, app, ota: ota.services, blobStore: ota.blobStore, metrics, eventsConsumer, telemetryConsumer, telemetryTrimmer, busTrimWatch,
    async listen({ host, port, tls }) {
      await app.ready();
      const handler = (req: Parameters<FastifyInstance['routing']>[0], res: Parameters<FastifyInstance['routing']>[1]) => app.routing(req, res);
      const created = tls
        ? createHttpsServer({
          ...apiTlsOptions(materials), minVersion: 'TLSv1.3', // hardening 10.4: no TLS 1.2 anywhere (docs/security/threat-model.md)
          // Requested, not required, and not judged here: only certificate renewal uses it, and it
          // verifies the certificate itself (chain, validity, revocation, device id).
          requestCert: true, rejectUnauthorized: false, ca: [materials.intermediateCaPem, materials.rootCaPem],
        }, handler)
        : createHttpServer(handler);
      server = created;
      // Idle kept-alive connections are closed long after any client gives them up. Node's default
      // (5 s) is one second above its own client pool's (the answer's hint minus 1 s, counted from
      // when the client reads the answer); a client whose event loop lags more than that second (the
      // bench's, sharing this process at 300 agents: loop delay up to 1.3 s) can send a request on
      // a connection this side has just closed and read ECONNRESET (issue 17). fastify's own default.
      created.keepAliveTimeout = apiKeepAliveTimeoutMs;
      // Node's own refusals (headers too large, malformed HTTP) in our error shape.
      // A new W3C trace id (16 bytes), as a routed request's error carries: no request exists to continue a trace from.
      created.on('clientError', clientErrorListener({ logger, newTraceId: () => hexFromBytes(random.bytes(16)) }));
      await new Promise<void>((resolve, reject) => {
        created.once('error', reject);
        created.listen(port, host, () => { created.off('error', reject); resolve(); });
      });
      const address = created.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const url = `${tls ? 'https' : 'http'}://${shownHost}:${address.port}`;
      ota.onListening(url); // the embedded blob store's presigned URLs point here unless a public base URL was configured
      return { host: address.address, port: address.port, url };
    },
    async start() {
      if (running) return;
      running = true;
      auditDrainSoon.start();
      commandAuditDrain.start();
      // What a crash left between a commit and its chain append is chained before anything new.
      await settleAudit();
      const { published, certificates, revoked } = await devices.publishEnrolledDevices();
      logger.info({ published, certificates, revoked }, 'enrolled devices, their certificates and revoked serials published');
      await devices.republishCrl(); // signs (and writes) a CRL from SQL now, not at the first request
      await live.start();
      await devices.start();
      await policyBundles.start();
      // Before the consumers read: a loss while no control plane ran is found with the group still behind it (an exact count).
      await busTrimWatch.check().catch((error: unknown) => logger.error({ err: error }, 'bus trim check failed'));
      await eventsConsumer.claimIdle(claimIdleMs);
      await telemetryConsumer.claimIdle(claimIdleMs);
      const blockMs = options.consumerBlockMs ?? 1_000;
      eventsConsumer.start({ blockMs });
      telemetryConsumer.start({ blockMs });
      every('audit outbox drain', options.auditDrainIntervalMs ?? 5_000, () => audit.drainRecorded());
      every('expiry sweep', options.expirySweepIntervalMs ?? 5_000, () => commands.expireDue());
      every('redelivery sweep', options.redeliverySweepIntervalMs ?? 5_000, () => commands.redispatchDue());
      every('enrolled devices publish', options.enrolledDevicesPublishIntervalMs ?? 60_000, () => devices.publishEnrolledDevices());
      every('CRL republish', options.crlRepublishIntervalMs ?? crlRepublishIntervalMsDefault, () => devices.republishCrl());
      every('JWT key rotation', options.jwtRotationCheckIntervalMs ?? 60_000, () => auth.authority.rotateIfDue(clock.nowMs()));
      every('bus trim check', options.busTrimCheckIntervalMs ?? 30_000, () => busTrimWatch.check());
      every('trust wipe check', options.trustWipeCheckIntervalMs ?? 5_000, () => devices.trust.publishIfWiped());
      // Once now (a restored backup is re-signed past its high-water mark at once), then periodically; a failure never stops the start.
      for (const [name, intervalMs, pass] of ota.sweeps) {
        await pass().catch((error: unknown) => logger.error({ err: error }, `${name} failed`));
        every(name, intervalMs, pass);
      }
      every('compliance sweep', options.complianceSweepIntervalMs ?? 60_000, () => compliance.reevaluateDue());
      every('policy bundle revision check', options.policyRevisionCheckIntervalMs ?? 5_000, () => policyBundles.checkRevision());
      every('alert rules sample', events.alertMonitor.rules.sampleIntervalMs, () => events.alertMonitor.sample());
      // Also at every upload grant; this pass is what ages artifacts out when no device uploads. Each deletion is audited.
      every('artifact retention sweep', options.artifactRetentionSweepIntervalMs ?? artifactDefaults.retentionSweepIntervalMs, async () => {
        const deleted = await artifacts.enforceRetention();
        if (deleted.length > 0) logger.info({ deleted: deleted.length, bytes: deleted.reduce((sum, item) => sum + item.length, 0) }, 'artifact retention sweep deleted artifacts (each audited artifact.deleted)');
      });
    },
    sweepsSettled,
    async stop() {
      running = false;
      for (const timer of timers.values()) scheduler.cancel(timer);
      timers.clear();
      // A pass still running would otherwise touch the stores after stop. Awaited only when there is
      // one. (The turns this takes once let the consumers enter a blocking read that stop then
      // waited out; their stop() now ends such a read itself: stream-consumer.ts, af7345c.)
      if (passesInFlight.size > 0) await sweepsSettled();
      await Promise.all([eventsConsumer.stop(), telemetryConsumer.stop()]);
      // A retention pass the last rows started would otherwise touch the database after stop.
      await telemetryTrimmer.idle();
      // After the handlers that ask for it: what they recorded is chained before the stores go back to the caller.
      await auditDrainSoon.stop();
      await commandAuditDrain.stop();
      livePublisher.stop();
      await live.stop();
      await devices.stop();
      await policyBundles.stop();
      if (server !== undefined) {
        const s = server;
        server = undefined;
        s.closeAllConnections?.();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      await app.close();
      if (options.metrics === undefined) metrics.stop();
    },
  };
}
