import { existsSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { SdcError } from '../core/errors/index.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { nodeSha256 } from '../runtime/sha256-node.js';
import type { Clock, RandomSource, Scheduler } from '../core/ports/ports.js';
import { deviceKid } from '../core/protocol/session/gateway-connection.js';
import { provisionKernelKeys, readKeyFile } from '../kernel/keys.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { sampleProcesses } from '../kernel/mock/mock-target.js';
import { nativeArtifacts } from '../kernel/native/build.js';
import { NativeIoctlDevice } from '../kernel/native/native-device.js';
import type { IoctlDevice } from '../kernel/device.js';
import { createAgentCore, type AgentCore, type AgentLogger } from './agent-core.js';
import { FileCommandJournal } from './command-journal-file.js';
import { agentPosture } from './posture.js';
import { createFilePolicyBundleStore } from './policy-bundle-file.js';
import { ensureEnrolled, provisionKernelCommandKeys, renewalDue, renewCertificate, type AgentIdentity } from './enrollment.js';
import { IoctlKernelBridge, type KernelBridge, type KernelCallLogger } from '../kernel/bridge/kernel-bridge.js';
import { pinnedKeyResolver } from './state/agent-state.js';
import { createHostMetricsSource } from './telemetry/host-metrics.js';
import { UpdateRunner, updateRunnerDefaults } from './ota/update-runner.js';
import { createArtifactCollector, fileTailLogs, simulatedScreenshot } from './ota/artifact-collector.js';
import { fileUpdateJournal } from './ota/update-journal.js';
import { filesUnder } from './ota/file-artifact-source.js';
import { directoryStore } from './tuf/driver.js';
import { createHttpFetcher } from './tuf/http-fetcher.js';
import { createNodeTufCrypto } from '../runtime/tuf-crypto-node.js';
import { startWsAgentDriver, type WsAgentDriver } from './ws-transport.js';

/** The largest artifact the mock kernel reads from the agent's directory. */
const agentArtifactBytesMax = 64 * 1024 * 1024;

export type KernelChoice = 'mock' | 'native' | 'auto';
export const agentVersion = 'sdc-agent/0.1.0';

/**
 * How often the agent looks at its certificate's remaining validity. Renewal falls due in the last
 * third of the validity (30 days by default, so 10 days of margin): four looks a day find it due
 * within hours and leave days of retries, and cost one certificate parse each.
 */
export const renewalCheckIntervalMsDefault = 6 * 60 * 60 * 1000;

export interface RunAgentOptions {
  dir: string;
  serverUrl?: string;
  deviceId?: string;
  pairingToken?: string;
  caPem?: string;
  kernel: KernelChoice;
  telemetryIntervalMs: number;
  /** Telemetry batches (AgentCoreOptions.telemetrySamplesPerFrameMax, telemetryBatchDelayMs, telemetryBufferMax); absent: one sample per frame. */
  telemetryBatch?: { samplesPerFrameMax: number; delayMs?: number; bufferMax?: number };
  /** Offer TELEMETRY_ACK at AUTH (AgentCoreOptions.telemetryAcks; `sdc agent --telemetry-acks`); absent or false: AUTH as before. */
  telemetryAcks?: boolean;
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: AgentLogger;
  /** How often the certificate's remaining validity is checked (default renewalCheckIntervalMsDefault, 6 h). */
  renewalCheckIntervalMs?: number;
  /**
   * The mock kernel only (`kernel: 'mock'`): answer EXEC_LOCK_SCREEN as locked. Default false: the
   * mock locks nothing, so it answers NOT_SUPPORTED unless a test or the demo asks for a simulated desktop.
   */
  mockLockScreen?: boolean;
  /** The native kernel library (default the release build's); tests name a missing one. */
  kernelLibraryPath?: string;
  /**
   * OTA (agent/ota/update-runner.ts): the platform releases name (default <os>-<arch>, e.g. linux-x64), an extra health probe, the mock kernel's factory version,
   * and the origins a notice's artifact URL may name besides the control plane's (`sdc agent --artifact-origin`, e.g. an S3 endpoint; exact origins).
   */
  ota?: { platform?: string; healthProbe?: (context: { version: string }) => Promise<boolean>; mockInstalledVersion?: string; artifactOrigins?: readonly string[] };
}

export interface RunningAgent {
  readonly identity: AgentIdentity;
  readonly enrolledNow: boolean;
  readonly core: AgentCore;
  readonly kernel: KernelBridge;
  readonly driver: WsAgentDriver;
  /** The update path: its journal state, for tests and status. */
  readonly updates: UpdateRunner;
  /** Graceful: closes the session, waits for the command in progress, closes journal and kernel. */
  stop(): Promise<void>;
}

/**
 * The real agent: enrollment (or reuse), journal, kernel bridge, host telemetry and the socket
 * driver, wired together. The demo and `sdc agent` call this; the simulator wires
 * createAgentCore itself with in-memory parts.
 */
export async function runAgent(options: RunAgentOptions): Promise<RunningAgent> {
  const logger: AgentLogger = options.logger ?? pino({ level: 'silent' });
  requireKernelAvailable(options.kernel, options.kernelLibraryPath);
  const { identity, enrolledNow } = await ensureEnrolled({
    dir: options.dir, ...(options.serverUrl ? { serverUrl: options.serverUrl } : {}),
    ...(options.deviceId ? { deviceId: options.deviceId } : {}), ...(options.pairingToken ? { pairingToken: options.pairingToken } : {}),
    ...(options.caPem ? { caPem: options.caPem } : {}), random: options.random, clock: options.clock,
  });
  let current = await renewIfDue(identity, options.clock, logger);
  const provider = createNodeEd25519Provider();
  const kernel = openKernel({
    choice: options.kernel, dir: join(options.dir, 'kernel'), clock: options.clock, random: options.random, scheduler: options.scheduler, logger,
    ...(options.kernelLibraryPath === undefined ? {} : { libraryPath: options.kernelLibraryPath }),
    ...(options.mockLockScreen === true ? { mockLockScreen: true } : {}),
    ...(options.ota?.mockInstalledVersion === undefined ? {} : { mockInstalledVersion: options.ota.mockInstalledVersion }),
  });
  // The kernel checks every privileged command's control-plane signature with these keys itself.
  // Not fatal: a refused provisioning leaves privileged commands failing visibly, not the agent down.
  await provisionKernelCommandKeys(kernel, current).catch((error: unknown) => {
    logger.warn({ code: SdcError.is(error) ? error.code : undefined }, `kernel command keys not provisioned: ${(error as Error).message}`);
  });
  const journal = await FileCommandJournal.open({
    path: current.paths.journal, onTornTail: (bytes) => logger.warn({ bytes }, 'dropped a torn journal tail'),
    onCompactionFailed: (error) => logger.warn({ code: error.code }, `${error.message}; appending to the old file, compaction is tried again later`),
    // No journal file (a new device, or one lost while the identity stayed): commands issued before
    // the first session's AUTH_ACK are refused; the floor is taken then, not on this clock now
    // (command-journal-file.ts, agent-core #settleIssuedFloor).
    issuedFloorWhenCreated: true,
    onCreated: () => {
      if (!enrolledNow) logger.warn({}, 'the command journal was missing and is created anew; commands issued before the first session are refused (AGENT_COMMAND_BEFORE_JOURNAL)');
    },
  });
  // Compliance facts for AUTH (docs/compliance.md): the configuration hashed is what decides whom the agent trusts and how it runs.
  const posture = await agentPosture({
    kernel, config: {
      // The backend in use, not the choice: `auto` on a device with the library and `native` run the same kernel.
      device_id: current.deviceId, kernel: kernel.backend, telemetry_interval_ms: options.telemetryIntervalMs, gateway_urls: current.trust.gateway_urls,
      gateway_keys: current.trust.gateway_keys.map((key) => ({ ...key })), command_keys: current.trust.command_keys.map((key) => ({ ...key })), ca_pem: current.trust.ca_pem,
    },
  });
  // The update path: metadata and artifacts from the control plane's image repository over the pinned TLS connection.
  const controlPlaneUrl = current.trust.control_plane_url;
  let sendReport: (report: Parameters<AgentCore['sendOtaReport']>[0]) => boolean = () => false;
  // The held policy bundle's check of the rollout's STAGE and COMMIT; the core (which holds the bundle) is made below,
  // and the runner only steps once it recovered, after the core loaded the saved bundle.
  let core: AgentCore | undefined;
  const updates = new UpdateRunner({
    deviceId: current.deviceId, platform: options.ota?.platform ?? defaultPlatform(), agentVersion: agentVersion.slice(agentVersion.indexOf('/') + 1),
    resolveDirectorKey: pinnedKeyResolver(current.trust.command_keys), kernel, journal: fileUpdateJournal(options.dir),
    source: {
      metadataBaseUrl: new URL('/v1/tuf/metadata/', controlPlaneUrl).toString(), targetBaseUrl: new URL('/v1/tuf/targets/', controlPlaneUrl).toString(),
      fetcher: createHttpFetcher({ scheduler: options.scheduler, caPem: current.trust.ca_pem }),
      metadata: directoryStore(join(options.dir, 'ota', 'metadata')), targets: directoryStore(join(options.dir, 'ota', 'targets')), targetsDir: join(options.dir, 'ota', 'targets'),
      // The artifact itself from the notice's presigned URL, resumable (Range + If-Range).
      // Only from the control plane's origin (enrollment's, https) or one configured: the URL is not signed (AGENT_OTA_URL_REFUSED).
      download: { scheduler: options.scheduler, caPem: current.trust.ca_pem, artifactOrigins: [new URL(controlPlaneUrl).origin, ...(options.ota?.artifactOrigins ?? [])] },
    },
    tufCrypto: createNodeTufCrypto(), ed25519: provider, clock: options.clock, random: options.random, send: (report) => sendReport(report),
    ...(options.ota?.healthProbe === undefined ? {} : { healthProbe: options.ota.healthProbe }), logger,
    checkCommand: (command) => (core === undefined ? new SdcError('POLICY_BUNDLE_DENIED', 'the policy bundle is not loaded yet') : core.checkPolicyBundle(command)),
    reportResend: { scheduler: options.scheduler, intervalMs: updateRunnerDefaults.reportResendIntervalMs, resendsMax: updateRunnerDefaults.reportResendsMax },
  });
  // Plaintext an EXEC_COLLECT_ARTIFACT run left behind when the agent stopped mid-upload: never kept across a restart.
  await rm(join(options.dir, 'artifacts'), { recursive: true, force: true });
  core = createAgentCore({
    deviceId: current.deviceId, signer: { kid: deviceKid(current.deviceId), seed: current.seed, provider },
    resolveGatewayKey: pinnedKeyResolver(current.trust.gateway_keys), resolveCommandKey: pinnedKeyResolver(current.trust.command_keys),
    kernel, journal, clock: options.clock, random: options.random, scheduler: options.scheduler, sha256: nodeSha256, sessionCrypto: createNodeSessionKeyCrypto(), logger,
    telemetrySource: createHostMetricsSource({ clock: options.clock, dataDir: options.dir }),
    telemetryIntervalMs: options.telemetryIntervalMs, agentVersion, posture: () => posture,
    ...(options.telemetryBatch === undefined ? {} : {
      telemetrySamplesPerFrameMax: options.telemetryBatch.samplesPerFrameMax,
      ...(options.telemetryBatch.delayMs === undefined ? {} : { telemetryBatchDelayMs: options.telemetryBatch.delayMs }),
      ...(options.telemetryBatch.bufferMax === undefined ? {} : { telemetryBufferMax: options.telemetryBatch.bufferMax }),
    }),
    ...(options.telemetryAcks === true ? { telemetryAcks: true } : {}),
    artifactPath: (args) => join(options.dir, 'updates', `${args.version}.bin`),
    // EXEC_COLLECT_ARTIFACT (docs/artifacts.md): logs from the agent's journals; a screenshot only where the kernel is the mock, which simulates one.
    collectArtifact: createArtifactCollector({
      deviceId: current.deviceId, controlPlaneUrl, caPem: current.trust.ca_pem, clientCert: () => ({ certPem: current.certPem + current.chainPem, keyPem: current.keyPem }),
      resolveCommandKey: pinnedKeyResolver(current.trust.command_keys), ed25519: provider, scheduler: options.scheduler, workDir: join(options.dir, 'artifacts'),
      sources: {
        logs: fileTailLogs([current.paths.journal, join(options.dir, 'ota', 'journal.json')]),
        ...(kernel.backend === 'mock' ? { screenshot: async () => simulatedScreenshot(current.deviceId) } : {}),
      },
    }),
    policyBundleStore: createFilePolicyBundleStore(options.dir),
    onOtaNotice: (notice) => updates.onNotice(notice),
  });
  core.start();
  const started = core;
  sendReport = (report) => started.sendOtaReport(report);
  // After the core loaded the saved policy bundle (its first work after start), so a resumed STAGE or COMMIT is checked against it.
  await started.idle();
  await updates.recover().catch((error: unknown) => logger.error({ err: error }, 'OTA journal not recovered'));
  const driver = startWsAgentDriver({
    core, urls: current.trust.gateway_urls, certPem: current.certPem + current.chainPem, keyPem: current.keyPem, caPem: current.trust.ca_pem,
    random: options.random, scheduler: options.scheduler, logger,
  });
  // A renewed certificate is used from the next connection on (the driver reads it at connect).
  const renewalCheckIntervalMs = options.renewalCheckIntervalMs ?? renewalCheckIntervalMsDefault;
  let renewalTimer = options.scheduler.schedule(renewalCheckIntervalMs, function check() {
    renewIfDue(current, options.clock, logger).then((next) => { current = next; }, () => undefined);
    renewalTimer = options.scheduler.schedule(renewalCheckIntervalMs, check);
  });
  return {
    identity: current, enrolledNow, core, kernel, driver, updates,
    async stop() {
      options.scheduler.cancel(renewalTimer);
      await driver.stop();
      await journal.close();
      kernel.close();
    },
  };
}

/** The platform name releases use for this host: <os>-<arch> as Node names them (linux-x64, win32-x64 as windows-x64). */
function defaultPlatform(): string {
  return `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
}

/** Renewal failures are logged, not fatal: the current certificate still works until it expires. */
async function renewIfDue(identity: AgentIdentity, clock: Clock, logger: AgentLogger): Promise<AgentIdentity> {
  if (!renewalDue(identity.certPem, clock.nowMs())) return identity;
  try {
    const renewed = await renewCertificate(identity);
    logger.info({}, 'device certificate renewed');
    return renewed;
  } catch (error) {
    logger.warn({ code: SdcError.is(error) ? error.code : undefined, err: (error as Error).message }, 'certificate renewal failed; will retry');
    return identity;
  }
}

export interface OpenKernelOptions {
  choice: KernelChoice;
  dir: string;
  clock: Clock;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: KernelCallLogger;
  /** The mock only: answer EXEC_LOCK_SCREEN as locked (default false: NOT_SUPPORTED). */
  mockLockScreen?: boolean;
  mockInstalledVersion?: string;
  /** The native library (default the release build's); tests name a missing one. */
  libraryPath?: string;
}

/**
 * `auto` or `native` with no native library refuses (KERNEL_LIBRARY_MISSING); `auto` never falls
 * back to the mock. runAgent checks this before enrollment too, so a refused start never spends a
 * pairing token. Only the file's presence is checked here: a library that exists but does not load
 * still fails later, at openKernel (after a first enrollment).
 */
export function requireKernelAvailable(choice: KernelChoice, libraryPath: string = nativeArtifacts('release').libraryPath): void {
  if (choice === 'mock' || existsSync(libraryPath)) return;
  throw new SdcError('KERNEL_LIBRARY_MISSING', `--kernel ${choice} found no native kernel library at ${libraryPath}: build it with npm run kernel:build, `
    + 'or pass --kernel mock for the in-process mock kernel (a simulation: it locks and installs nothing)', { libraryPath });
}

/**
 * The kernel bridge: `mock` runs the TypeScript kernel service in-process (a simulation: it
 * locks nothing and installs nothing); `native` loads the built library (npm run kernel:build);
 * `auto` takes native when it is built and otherwise refuses to start (KERNEL_LIBRARY_MISSING):
 * the mock is used only when asked for by name, so a device never reports simulated privileged
 * work as done. Kernel keys are provisioned in `dir` on first use. The counter starts at
 * wall-clock microseconds so a restarted agent stays above the service's last accepted counter.
 */
export function openKernel(options: OpenKernelOptions): KernelBridge {
  const libraryPath = options.libraryPath ?? nativeArtifacts('release').libraryPath;
  requireKernelAvailable(options.choice, libraryPath);
  const ed25519 = createNodeEd25519Provider();
  const keys = provisionKernelKeys({ dir: options.dir, ed25519, random: options.random });
  const useNative = options.choice !== 'mock';
  let device: IoctlDevice;
  if (useNative) {
    const sandboxDir = join(options.dir, 'sandbox');
    mkdirSync(sandboxDir, { recursive: true, mode: 0o700 });
    device = new NativeIoctlDevice({ libraryPath, sandboxDir, agentPublicKeyPath: keys.agentPublicKeyPath, serviceSeedPath: keys.serviceSeedPath });
  } else {
    // The mock has a fixed process table and reads staged artifacts from the agent's directory as
    // the real service would; it has a session to lock only when asked (mockLockScreen).
    device = new MockIoctlDevice({
      ed25519, serviceSeed: readKeyFile(keys.serviceSeedPath), agentPublicKey: readKeyFile(keys.agentPublicKeyPath), clock: options.clock,
      lockScreenSupported: options.mockLockScreen === true, processes: () => sampleProcesses, artifacts: filesUnder(resolve(options.dir, '..'), agentArtifactBytesMax),
      ...(options.mockInstalledVersion === undefined ? {} : { installedVersion: options.mockInstalledVersion }),
    });
  }
  return new IoctlKernelBridge({
    device, ed25519, agentSeed: readKeyFile(keys.agentSeedPath), servicePublicKey: readKeyFile(keys.servicePublicKeyPath),
    counterStart: BigInt(options.clock.nowMs()) * 1000n, timeoutMs: 10_000, scheduler: options.scheduler,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
}

