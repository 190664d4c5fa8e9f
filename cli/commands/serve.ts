import type { Deployment } from '../../server/deployment/deployment.js';
import { isIP } from 'node:net';
import { SdcError } from '../../core/errors/index.js';
import { mysqlPasswordFileHelp, mysqlPasswordFileOptions, mysqlUrlOption } from '../mysql-password.js';
import { redisPasswordFileHelp, redisPasswordFileOptions, redisUrlOption } from '../redis-password.js';
import { pairingTokensMaxDefault } from '../../trust/pairing-tokens.js';
import type { Policy } from '../../core/protocol/policy.js';
import type { AlertRules } from '../../server/control-plane/alert-rules.js';
import type { ComplianceRules } from '../../core/protocol/compliance.js';
import type { OtaBlobOptions } from '../../server/ota/control-plane-ota.js';
import { artifactRetentionHelp, artifactRetentionOptions, artifactRetentionParseOptions, type ArtifactRetentionTuning } from '../artifact-retention-options.js';
import { telemetryRetentionHelp, telemetryRetentionOptions, telemetryRetentionParseOptions, type TelemetryRetentionTuning } from '../telemetry-retention-options.js';
import { commandAuditWindowHelp, commandAuditWindowOptions, commandAuditWindowParseOptions, type CommandAuditWindowTuning } from '../command-audit-window-option.js';
import { integerOption, requireOption, stringOption, type CliIo, type Command, type ParsedCommandArgs } from '../command.js';
import { gatewayAuthTimeoutOption, gatewayEstablishedLimitsOption, gatewayHandshakeLimitsOption, gatewayLimitHelp, gatewayLimitParseOptions } from '../gateway-limit-options.js';
import { auditAnchorIntervalMsBounds } from '../../server/control-plane/audit-anchor-writer.js';

/** The scrape token from the environment, when no --metrics-token-file names one. */
const metricsTokenEnv = 'SDC_METRICS_TOKEN';

/**
 * --crl-stale-policy and --crl-stale-grace-ms (decision 0021). The default grace is
 * crlStaleGraceMsDefault in server/deployment/crl-file-watch.ts, not imported here (the server's
 * modules are most of the CLI's start-up time); serve-crl-options.test.ts pins it. Up to 7 days: a
 * longer grace would outlast the CRL's own validity many times over and judge nothing.
 */
const crlStaleGraceMsDefaultHelp = 600_000;
const crlStaleGraceMsMax = 7 * 24 * 3_600_000;

const commonOptions = {
  dir: { type: 'string' }, host: { type: 'string' }, 'gateway-port': { type: 'string' }, 'gateway-id': { type: 'string' },
  redis: { type: 'string' }, 'key-prefix': { type: 'string' }, 'heartbeat-interval-ms': { type: 'string' }, 'probe-grace-ms': { type: 'string' }, 'probe-timeout-ms': { type: 'string' }, 'server-name': { type: 'string', multiple: true },
  'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' }, 'metrics-token-file': { type: 'string' },
  'crl-stale-policy': { type: 'string' }, 'crl-stale-grace-ms': { type: 'string' },
  ...redisPasswordFileOptions,
  ...gatewayLimitParseOptions,
} as const;

const commonHelp = [
  ['--dir D', 'Data directory (default ./data); run `sdc pki init --dir D` first'],
  ['--host H', 'Address to listen on (default 127.0.0.1)'],
  ['--gateway-port G', 'Gateway WSS port (default 8443; 0 picks a free one)'],
  redisPasswordFileHelp,
  ['--key-prefix P', 'Prefix of every Redis key (default sdc:); the same for every process of one deployment'],
  ['--heartbeat-interval-ms N', 'Agent heartbeat period; offline after 1.5 of them (default 10000)'],
  ['--probe-grace-ms N', 'Liveness probe: a session this late past its heartbeat is pinged (default a quarter interval; docs/gateway.md)'],
  ['--probe-timeout-ms N', 'Liveness probe: closed and offline without a pong within this (default a quarter interval; grace + timeout at most half)'],
  ['--metrics-port P', 'Also serve GET /metrics (Prometheus) on plain HTTP at this port (sdc serve has it on the API too; a gateway-only process needs this)'],
  ['--metrics-host H', 'Address of that listener (default 127.0.0.1)'],
  ['--metrics-token-file F', `Bearer token GET /metrics needs (or $${metricsTokenEnv}); without one /metrics answers loopback peers only`],
  ['--crl-stale-policy P', 'fail-open (default) or fail-closed: while the gateway\'s CRL is past nextUpdate + grace, or it holds none, admit with an error logged at each reload, or refuse every new AUTH (TRUST_CRL_STALE); decision 0021'],
  ['--crl-stale-grace-ms N', `How long past its nextUpdate the CRL still counts as current (default ${crlStaleGraceMsDefaultHelp}, 0 to ${crlStaleGraceMsMax})`],
  ['--server-name NAME', 'Extra DNS name or IP address for the TLS certificate (repeatable; localhost, 127.0.0.1 and ::1 are always included). sdc serve issues and keeps it in D/tls/server.pem; sdc gateway issues nothing and checks that D/tls/gateway-ID.pem, else D/tls/gateway.pem, from sdc pki gateway-cert covers them'],
  ...gatewayLimitHelp,
] as const;


/** Exported for the test that checks the flags. */
export function crlStaleOption(args: ParsedCommandArgs): { crlStale?: { policy?: 'fail-open' | 'fail-closed'; graceMs?: number } } {
  const given = args.values['crl-stale-policy'] as string | undefined;
  if (given !== undefined && given !== 'fail-open' && given !== 'fail-closed') throw new SdcError('CLI_USAGE', `--crl-stale-policy must be fail-open or fail-closed, got ${given}`);
  const policy: 'fail-open' | 'fail-closed' | undefined = given;
  const crlStale = {
    ...(policy === undefined ? {} : { policy }),
    ...(args.values['crl-stale-grace-ms'] === undefined ? {} : { graceMs: integerOption(args, 'crl-stale-grace-ms', crlStaleGraceMsDefaultHelp, 0, crlStaleGraceMsMax) }),
  };
  return Object.keys(crlStale).length === 0 ? {} : { crlStale };
}

/**
 * --crl-url URL (sdc gateway only; decision 0021, 2026-12-06): the control plane's GET /v1/crl,
 * fetched at each CRL reload beside D/pki/crl.pem. https only: the gateway checks the control
 * plane's certificate against D/pki/root-ca.pem. Exported for the test that checks the flag.
 */
export function crlUrlOption(args: ParsedCommandArgs): { crlUrl?: URL } {
  const given = args.values['crl-url'] as string | undefined;
  if (given === undefined) return {};
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new SdcError('CLI_USAGE', `--crl-url ${given} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new SdcError('CLI_USAGE', `--crl-url ${given} is not https (the control plane's certificate is checked against our root CA)`);
  return { crlUrl: url };
}

/** The /metrics options: the token from a file or the environment (never a flag value, which `ps` shows). */
async function metricsOptions(args: ParsedCommandArgs, io: CliIo): Promise<{ metricsScrapeToken?: string; metricsPort?: number; metricsHost?: string }> {
  const file = args.values['metrics-token-file'] as string | undefined;
  const fromEnv = io.env[metricsTokenEnv];
  let token: string | undefined;
  if (file !== undefined || (fromEnv !== undefined && fromEnv !== '')) {
    const { requireUsableScrapeToken } = await import('../../server/observability/metrics.js');
    if (file !== undefined) {
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(file, 'utf8').catch((error: unknown) => {
        throw new SdcError('CLI_INPUT', `--metrics-token-file ${file} cannot be read`, { path: file }, { cause: error });
      });
      token = requireUsableScrapeToken(text, file);
    } else {
      token = requireUsableScrapeToken(fromEnv!, `$${metricsTokenEnv}`);
    }
  }
  return {
    ...(token === undefined ? {} : { metricsScrapeToken: token }),
    ...(args.values['metrics-port'] === undefined ? {} : { metricsPort: integerOption(args, 'metrics-port', 0, 0, 65535) }),
    ...(typeof args.values['metrics-host'] === 'string' ? { metricsHost: args.values['metrics-host'] } : {}),
  };
}

/** A gateway id names the process's own TLS files (D/tls/gateway-ID.pem), so it is a plain file name. */
const gatewayIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The TLS certificate's name in D/tls/: `server` for `sdc serve` (as before), `gateway-ID` for a
 * gateway-only process, so that processes sharing a data directory never re-issue each other's.
 */
function serverTlsName(args: ParsedCommandArgs, withControlPlane: boolean): string {
  if (withControlPlane) return 'server';
  const gatewayId = requireOption(args, 'gateway-id');
  if (!gatewayIdPattern.test(gatewayId)) throw new SdcError('CLI_USAGE', `--gateway-id ${gatewayId} is not 1 to 64 of [A-Za-z0-9._-] starting with a letter or digit`);
  return `gateway-${gatewayId}`;
}

/** --server-name values: DNS names, and IP addresses (a device may reach the host by its address). */
function certificateNames(args: ParsedCommandArgs): { serverHostnames: string[]; serverIpAddresses: string[] } {
  const names = (args.values['server-name'] as string[] | undefined) ?? [];
  return {
    serverHostnames: ['localhost', ...names.filter((name) => isIP(name) === 0)],
    serverIpAddresses: ['127.0.0.1', '::1', ...names.filter((name) => isIP(name) !== 0)],
  };
}

/**
 * Every option checked before anything is loaded or opened, so a usage mistake is one line and
 * nothing else happens. Exported for the tests that check a flag reaches its deployment option.
 */
export async function deploymentOptions(args: ParsedCommandArgs, io: CliIo, withControlPlane: boolean) {
  const { storeTargets } = await import('../../server/deployment/store-connect.js');
  const redisUrl = await redisUrlOption(args, io);
  if (!withControlPlane && redisUrl === undefined) {
    throw new SdcError('CLI_USAGE', 'a separate gateway process needs --redis: the embedded stores live inside one process');
  }
  if (!withControlPlane) requireOption(args, 'gateway-id');
  const mysqlUrl = withControlPlane ? await mysqlUrlOption(args, io) : undefined;
  // Checked before the data directory is loaded: a bad URL is a usage mistake, refused in one line.
  storeTargets({ redisUrl, mysqlUrl });
  const metrics = await metricsOptions(args, io);
  return {
    ...metrics,
    host: stringOption(args, 'host', '127.0.0.1'),
    apiPort: withControlPlane ? integerOption(args, 'api-port', 8080, 0, 65535) : 0,
    gatewayPort: integerOption(args, 'gateway-port', 8443, 0, 65535),
    gatewayId: stringOption(args, 'gateway-id', 'gw-1'),
    ...(args.values['advertise-gateway'] === undefined ? {} : { advertisedGatewayUrls: advertisedUrls(args.values['advertise-gateway'] as string[]) }),
    controlPlane: withControlPlane,
    gateway: {
      heartbeatIntervalMs: integerOption(args, 'heartbeat-interval-ms', 10_000, 100, 3_600_000),
      ...(args.values['probe-grace-ms'] === undefined ? {} : { probeGraceMs: integerOption(args, 'probe-grace-ms', 0, 0, 1_800_000) }),
      ...(args.values['probe-timeout-ms'] === undefined ? {} : { probeTimeoutMs: integerOption(args, 'probe-timeout-ms', 1, 1, 1_800_000) }),
      ...gatewayAuthTimeoutOption(args),
    },
    ...gatewayHandshakeLimitsOption(args),
    ...gatewayEstablishedLimitsOption(args),
    ...crlStaleOption(args),
    ...(withControlPlane ? {} : crlUrlOption(args)),
    ...(redisUrl ? { redisUrl } : {}),
    ...(typeof args.values['key-prefix'] === 'string' ? { keyPrefix: args.values['key-prefix'] } : {}),
    ...(mysqlUrl === undefined ? {} : { mysqlUrl }),
    ...(withControlPlane ? await controlPlaneTuning(args, io) : {}),
  };
}

/**
 * --audit-anchor-file F and --audit-anchor-interval-ms N (docs/audit.md, "Anchors kept
 * automatically"): checked before anything starts, the file's directory must be writable.
 * Exported for the test that checks the flags.
 */
export async function auditAnchorOption(args: ParsedCommandArgs): Promise<{ path: string; intervalMs: number } | undefined> {
  const path = args.values['audit-anchor-file'] as string | undefined;
  const { min, max, fallback } = auditAnchorIntervalMsBounds;
  if (path === undefined) {
    if (args.values['audit-anchor-interval-ms'] !== undefined) throw new SdcError('CLI_USAGE', '--audit-anchor-interval-ms goes with --audit-anchor-file');
    return undefined;
  }
  if (path === '') throw new SdcError('CLI_USAGE', '--audit-anchor-file needs a path');
  const intervalMs = integerOption(args, 'audit-anchor-interval-ms', fallback, min, max);
  const [{ access, constants }, { dirname, resolve }] = await Promise.all([import('node:fs/promises'), import('node:path')]);
  const absolute = resolve(path);
  await access(dirname(absolute), constants.W_OK).catch((error: unknown) => {
    throw new SdcError('CLI_INPUT', `--audit-anchor-file ${path}: its directory cannot be written`, { path }, { cause: error });
  });
  return { path: absolute, intervalMs };
}

/** The S3 credentials from the environment, when no --s3-credentials-file names them (never a flag value, which `ps` shows). */
const s3AccessKeyEnv = 'SDC_S3_ACCESS_KEY_ID';
const s3SecretKeyEnv = 'SDC_S3_SECRET_ACCESS_KEY';

/**
 * --public-url, --s3-endpoint, --s3-bucket, --s3-region, --s3-credentials-file (docs/ota.md,
 * "Artifacts and downloads"): the blob store is embedded in the data directory unless an S3
 * endpoint is given; its credentials come from a JSON file ({"access_key_id", "secret_access_key"})
 * or the environment, never the command line.
 */
async function blobStoreOptions(args: ParsedCommandArgs, io: CliIo): Promise<{ otaBlobs?: OtaBlobOptions }> {
  const publicUrl = args.values['public-url'] as string | undefined;
  if (publicUrl !== undefined && !/^https?:\/\/[^/?#]+\/?$/.test(publicUrl)) throw new SdcError('CLI_USAGE', `--public-url ${publicUrl} is not an http(s) origin such as https://cp.example:8080`);
  const endpoint = args.values['s3-endpoint'] as string | undefined;
  const bucket = args.values['s3-bucket'] as string | undefined;
  if ((endpoint === undefined) !== (bucket === undefined)) throw new SdcError('CLI_USAGE', '--s3-endpoint and --s3-bucket go together');
  if (endpoint !== undefined && !/^https?:\/\/[^/?#]+/.test(endpoint)) throw new SdcError('CLI_USAGE', `--s3-endpoint ${endpoint} is not an http(s) URL`);
  if (bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new SdcError('CLI_USAGE', `--s3-bucket ${bucket} is not an S3 bucket name`);
  const otaBlobs = {
    ...(publicUrl === undefined ? {} : { publicBaseUrl: publicUrl.replace(/\/$/, '') }),
    ...(endpoint === undefined || bucket === undefined ? {} : {
      s3: { endpoint, bucket, region: stringOption(args, 's3-region', 'us-east-1'), credentials: await s3Credentials(args, io) },
    }),
  };
  return Object.keys(otaBlobs).length === 0 ? {} : { otaBlobs };
}

async function s3Credentials(args: ParsedCommandArgs, io: CliIo): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const file = args.values['s3-credentials-file'] as string | undefined;
  if (file === undefined) {
    const accessKeyId = io.env[s3AccessKeyEnv];
    const secretAccessKey = io.env[s3SecretKeyEnv];
    if (!accessKeyId || !secretAccessKey) throw new SdcError('CLI_USAGE', `--s3-endpoint needs credentials: --s3-credentials-file F or $${s3AccessKeyEnv} and $${s3SecretKeyEnv}`);
    return { accessKeyId, secretAccessKey };
  }
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new SdcError('CLI_INPUT', `--s3-credentials-file ${file} cannot be read`, { path: file }, { cause: error });
  });
  let parsed: { access_key_id?: unknown; secret_access_key?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch (error) {
    throw new SdcError('CLI_INPUT', `--s3-credentials-file ${file} is not JSON`, { path: file }, { cause: error });
  }
  if (typeof parsed.access_key_id !== 'string' || typeof parsed.secret_access_key !== 'string' || parsed.access_key_id === '' || parsed.secret_access_key === '') {
    throw new SdcError('CLI_INPUT', `--s3-credentials-file ${file} must be {"access_key_id": "...", "secret_access_key": "..."}`, { path: file });
  }
  return { accessKeyId: parsed.access_key_id, secretAccessKey: parsed.secret_access_key };
}

/** --alerts F: the alert rules (docs/api.md "Alert rules"), checked before anything starts; a bad field is named. */
async function alertRulesOption(args: ParsedCommandArgs): Promise<AlertRules | undefined> {
  const file = args.values.alerts as string | undefined;
  if (file === undefined) return undefined;
  const [{ readFile }, { parseAlertRulesText }] = await Promise.all([import('node:fs/promises'), import('../../server/control-plane/alert-rules.js')]);
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new SdcError('CLI_INPUT', `--alerts ${file} cannot be read`, { path: file }, { cause: error });
  });
  try {
    return parseAlertRulesText(text);
  } catch (error) {
    if (SdcError.is(error)) throw new SdcError(error.code, `--alerts ${file}: ${error.message}`, error.details, { cause: error });
    throw error;
  }
}

/** --compliance F: the compliance rules (docs/compliance.md), checked before anything starts; a bad field is named. */
async function complianceRulesOption(args: ParsedCommandArgs): Promise<ComplianceRules | undefined> {
  const file = args.values.compliance as string | undefined;
  if (file === undefined) return undefined;
  const [{ readFile }, { parseComplianceRules }, { parseStrictJson }] = await Promise.all([
    import('node:fs/promises'), import('../../core/protocol/compliance.js'), import('../../core/protocol/strict-json.js'),
  ]);
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new SdcError('CLI_INPUT', `--compliance ${file} cannot be read`, { path: file }, { cause: error });
  });
  try {
    return parseComplianceRules(parseStrictJson(text, { frameBytesMax: 1024 * 1024 }));
  } catch (error) {
    if (SdcError.is(error)) throw new SdcError(error.code, `--compliance ${file}: ${error.message}`, error.details, { cause: error });
    throw error;
  }
}

/** --pairing-tokens-max, --policy, --alerts and --compliance; the files are parsed here, so a bad one is refused (with the field's path) before anything starts. */
async function controlPlaneTuning(args: ParsedCommandArgs, io: CliIo): Promise<{ controlPlaneTuning?: { pairingTokensMax?: number; policy?: Policy; alertRules?: AlertRules; complianceRules?: ComplianceRules; otaBlobs?: OtaBlobOptions } & ArtifactRetentionTuning & TelemetryRetentionTuning & CommandAuditWindowTuning }> {
  const file = args.values.policy as string | undefined;
  let policy: Policy | undefined;
  if (file !== undefined) {
    const [{ readFile }, { parsePolicy }] = await Promise.all([import('node:fs/promises'), import('../../core/protocol/policy.js')]);
    const text = await readFile(file, 'utf8').catch((error: unknown) => {
      throw new SdcError('CLI_INPUT', `--policy ${file} cannot be read`, { path: file }, { cause: error });
    });
    try {
      policy = parsePolicy(text);
    } catch (error) {
      if (SdcError.is(error)) throw new SdcError(error.code, `--policy ${file}: ${error.message}`, error.details, { cause: error });
      throw error;
    }
  }
  const alertRules = await alertRulesOption(args);
  const complianceRules = await complianceRulesOption(args);
  const tuning = {
    ...(alertRules === undefined ? {} : { alertRules }),
    ...(complianceRules === undefined ? {} : { complianceRules }),
    ...(args.values['pairing-tokens-max'] === undefined ? {} : { pairingTokensMax: integerOption(args, 'pairing-tokens-max', pairingTokensMaxDefault, 1, pairingTokensMaxCeiling) }),
    ...(policy === undefined ? {} : { policy }),
    ...await blobStoreOptions(args, io),
    ...artifactRetentionOptions(args, io.env),
    ...telemetryRetentionOptions(args, io.env),
    ...commandAuditWindowOptions(args, io.env),
  };
  return Object.keys(tuning).length === 0 ? {} : { controlPlaneTuning: tuning };
}

/** The largest --pairing-tokens-max: a bound on the SQL table a bulk run can fill, ten times the default. */
const pairingTokensMaxCeiling = 1_000_000;

/** The stores line: a gateway-only process has no SQL at all. */
export function describeStores(stores: Deployment['stores']): string {
  const busAndKv = `bus and key/value ${stores.embedded.redis ? 'embedded' : 'Redis'}`;
  if (stores.sql === undefined) return `${busAndKv} (a gateway-only process has no SQL)`;
  return `SQL ${stores.embedded.sql ? 'sql.js (embedded)' : 'MySQL'}, ${busAndKv}`;
}

const portFlags = { api: '--api-port', gateway: '--gateway-port' } as const;

/** A port refusal from the deployment, with the option that chooses another port. */
function withPortFlag(error: unknown): unknown {
  if (!SdcError.is(error, 'API_PORT_UNAVAILABLE') && !SdcError.is(error, 'GATEWAY_PORT_UNAVAILABLE')) return error;
  const flag = portFlags[error.details['service'] as keyof typeof portFlags];
  return flag === undefined ? error : new SdcError(error.code, `${error.message}; choose another with ${flag}`, error.details, { cause: error });
}

/** Until SIGINT or SIGTERM; tests pass their own through CliIo.untilStopped. */
function untilSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function serve(args: ParsedCommandArgs, io: CliIo, withControlPlane: boolean): Promise<number> {
  const dataDir = stringOption(args, 'dir', './data');
  const options = await deploymentOptions(args, io, withControlPlane);
  const tlsName = serverTlsName(args, withControlPlane);
  const anchors = withControlPlane ? await auditAnchorOption(args) : undefined;
  // Loaded here, not at the top: the server's modules are most of the CLI's start-up time (`sdc --help`).
  const [{ default: pino }, { startDeployment }, { storeRetryServe }, { loadDeployment }, { loadGatewayMaterials, publishCommandPublicKey }, { systemClock, systemRandom, systemScheduler }] = await Promise.all([
    import('pino'), import('../../server/deployment/deployment.js'), import('../../server/deployment/store-connect.js'),
    import('../../server/materials/materials.js'), import('../../server/materials/gateway-materials.js'), import('../../runtime/system.js'),
  ]);
  const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'info' }, pino.destination(2));
  // A gateway-only process reads only a gateway's files (decision 0018): never a CA, JWT, command or artifact private key.
  const full = withControlPlane
    ? await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, ...certificateNames(args), serverTlsName: tlsName, browserCertificate: true })
    : undefined;
  if (full !== undefined) await publishCommandPublicKey(dataDir, full.commandSigner);
  const materials = full ?? await loadGatewayMaterials({ dataDir, clock: systemClock, gatewayId: requireOption(args, 'gateway-id'), ...certificateNames(args) });
  if (full === undefined && 'renewDue' in materials && materials.renewDue) {
    io.stderr(`sdc: WARNING: ${materials.certificatePath} has less than a third of its validity left: issue a new one with sdc pki gateway-cert and restart the gateway\n`);
  }
  // While the stores are awaited only unref'd timers may be pending; this keeps the process up.
  const keepAlive = setInterval(() => undefined, 60_000);
  let deployment: Deployment;
  try {
    deployment = await startDeployment({
      ...options, materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger, storeRetry: storeRetryServe,
      onApiListening: (url) => io.stdout(`control plane  ${url} (GET /healthz, /readyz)\n`),
    });
  } catch (error) {
    throw withPortFlag(error);
  } finally {
    clearInterval(keepAlive);
  }
  io.stdout(`gateway        ${deployment.gatewayUrl}\n`);
  io.stdout(`root CA        ${materials.dataDir}/pki/root-ca.pem (give it to agents with --ca)\n`);
  if (full !== undefined) {
    // Browsers take no Ed25519 in TLS (docs/viewer.md): the console's certificate chains to the serving CA.
    io.stdout(full.browserTls === undefined
      ? 'console        no serving CA in this data directory: browsers cannot connect (sdc pki serving-ca adds one)\n'
      : `console        ${deployment.apiUrl ?? ''}/ (browsers: trust ${full.browserTls.servingCaPath} once, docs/viewer.md)\n`);
    const outside = full.browserTls?.namesOutsideServingCa ?? [];
    if (outside.length > 0) {
      io.stderr(`sdc: WARNING: the serving CA's name constraints do not permit ${outside.join(', ')}: browsers reach the console only by the other names (sdc pki serving-ca --force --serving-name NAME, decision 0006)\n`);
    }
  }
  io.stdout(`stores         ${describeStores(deployment.stores)}\n`);
  const anchorWriter = anchors === undefined || deployment.controlPlane === undefined ? undefined
    : await startAnchorWriter(anchors, deployment.controlPlane.auditStore, logger).catch(async (error: unknown) => {
      await deployment.stop();
      throw error;
    });
  if (anchors !== undefined) io.stdout(`audit anchors  ${anchors.path} (the head every ${anchors.intervalMs} ms when it moved; sdc audit verify --anchors)\n`);
  io.stdout('ready\n');
  // Timers from the system scheduler are unref'd; the listening sockets keep the process alive.
  const signal = await (io.untilStopped ?? untilSignal)();
  io.stdout(`${signal}: stopping\n`);
  // Before the stores close: the last head is anchored on a clean stop.
  await anchorWriter?.stop();
  await deployment.stop();
  return 0;
}

/** The anchor writer on the control plane's audit store; its first write is awaited, so a path that cannot be written stops the start. */
async function startAnchorWriter(
  anchors: { path: string; intervalMs: number }, auditStore: { head(): Promise<{ seq: number; hash: string } | undefined> },
  logger: { error(object: object, message: string): void },
) {
  const [{ AuditAnchorWriter, auditAnchorFile }, { systemClock, systemScheduler }] = await Promise.all([
    import('../../server/control-plane/audit-anchor-writer.js'), import('../../runtime/system.js'),
  ]);
  const writer = new AuditAnchorWriter({
    head: () => auditStore.head(), sink: auditAnchorFile(anchors.path), clock: systemClock, scheduler: systemScheduler, intervalMs: anchors.intervalMs,
    onError: (error) => logger.error({ err: error, path: anchors.path }, 'audit anchor not written; trying again at the next interval'),
  });
  await writer.start();
  return writer;
}

function advertisedUrls(urls: string[]): string[] {
  for (const url of urls) if (!/^wss:\/\/[^/]+/.test(url)) throw new SdcError('CLI_USAGE', `--advertise-gateway ${url} is not a wss:// URL`);
  return urls;
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the control plane (HTTPS API) and a gateway (WSS, mutual TLS) on the data directory',
  usage: '[--dir D] [--api-port P] [--gateway-port G] [--redis URL] [--mysql URL] [--policy F] [--alerts F] [--compliance F]',
  optionHelp: [
    ['--api-port P', 'Control plane HTTPS port (default 8080; 0 picks a free one)'],
    ['--advertise-gateway URL', 'Gateway URL given to devices at enrollment (repeatable; default: this gateway\'s address)'],
    ['--redis URL', 'Redis for the bus and key/value store (default: embedded, single process only)'],
    ['--mysql URL', 'MySQL/MariaDB (default: sql.js in D/db/sdc.sqlite)'],
    mysqlPasswordFileHelp,
    ['--gateway-id ID', 'This process\'s gateway id (default gw-1); unique per gateway process'],
    ['--policy F', 'Policy document (docs/policy.md) stored as the first revision when the database holds none; afterwards GET/PUT /v1/policy and sdc policy rule'],
    ['--alerts F', 'Alert rules (docs/api.md "Alert rules": offline, risk score, update failures, tamper, backpressure); default thresholds without it'],
    ['--compliance F', 'Compliance rules (docs/compliance.md: versions, expected hashes, kernel attestation); without it only certificate expiry and failed kernel checks are judged'],
    ['--audit-anchor-file F', 'Append the audit head {seq, hash, at} to F (JSON lines, fsync\'d, mode 0600) when it moved, every interval and at a clean stop; check with sdc audit verify --anchors F. Keep F where the database\'s writer cannot rewrite it (docs/audit.md)'],
    ['--audit-anchor-interval-ms N', `How often the head is read for --audit-anchor-file (default ${auditAnchorIntervalMsBounds.fallback}; ${auditAnchorIntervalMsBounds.min} to ${auditAnchorIntervalMsBounds.max})`],
    ['--pairing-tokens-max N', `Outstanding (unused, unexpired) pairing tokens at most (default ${pairingTokensMaxDefault.toLocaleString('en-US')}; up to 1,000,000)`],
    ['--public-url URL', 'The origin devices and operators reach the API at (e.g. https://cp.example:8080): presigned blob URLs name it (default: the listen address; 0.0.0.0 becomes 127.0.0.1)'],
    ['--s3-endpoint URL', 'Keep artifacts and uploads in an S3-compatible bucket (S3, MinIO) instead of D/blobs; with --s3-bucket'],
    ['--s3-bucket B', 'The bucket (it must exist)'],
    ['--s3-region R', 'The bucket\'s region (default us-east-1)'],
    ['--s3-credentials-file F', `JSON {"access_key_id", "secret_access_key"} (or $${s3AccessKeyEnv} and $${s3SecretKeyEnv})`],
    ...artifactRetentionHelp,
    ...telemetryRetentionHelp,
    ...commandAuditWindowHelp,
    ...commonHelp,
  ],
  options: {
    ...commonOptions, mysql: { type: 'string' }, ...mysqlPasswordFileOptions, 'api-port': { type: 'string' }, 'advertise-gateway': { type: 'string', multiple: true },
    'pairing-tokens-max': { type: 'string' }, 'audit-anchor-file': { type: 'string' }, 'audit-anchor-interval-ms': { type: 'string' }, policy: { type: 'string' }, alerts: { type: 'string' }, compliance: { type: 'string' },
    'public-url': { type: 'string' }, 's3-endpoint': { type: 'string' }, 's3-bucket': { type: 'string' }, 's3-region': { type: 'string' }, 's3-credentials-file': { type: 'string' },
    ...artifactRetentionParseOptions,
    ...telemetryRetentionParseOptions,
    ...commandAuditWindowParseOptions,
  },
  run: (args, io) => serve(args, io, true),
};

export const gatewayCommand: Command = {
  name: 'gateway',
  summary: 'Run one more gateway process against a shared Redis (several gateways share the devices)',
  usage: '--redis URL --gateway-id ID [--dir D] [--gateway-port G]',
  optionHelp: [
    ['--redis URL', 'The Redis the control plane uses (required: the embedded stores live inside one process)'],
    ['--gateway-id ID', 'This gateway\'s id (required; unique per gateway process, so not sdc serve\'s gw-1)'],
    ['--crl-url URL', 'Also fetch the CRL from the control plane at each reload (every 60 s), e.g. https://control-plane:8080/v1/crl, its certificate checked against D/pki/root-ca.pem; the higher-numbered of it and D/pki/crl.pem is taken, a failed fetch keeps the CRL held (decision 0021)'],
    ...commonHelp,
  ],
  options: { ...commonOptions, 'crl-url': { type: 'string' } },
  run: (args, io) => serve(args, io, false),
};
