import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { AgentIdentity } from '../../agent/enrollment.js';
import type { AgentLogger } from '../../agent/agent-core.js';
import type { ArtifactFetcher } from '../../agent/ota/download-ports.js';
import { createNodeArtifactFetcher } from '../../agent/ota/node-download-adapters.js';
import { fileUpdateJournal } from '../../agent/ota/update-journal.js';
import { filesUnder } from '../../agent/ota/file-artifact-source.js';
import { UpdateRunner, type UpdateRunnerOptions } from '../../agent/ota/update-runner.js';
import { pinnedKeyResolver } from '../../agent/state/agent-state.js';
import { directoryStore } from '../../agent/tuf/driver.js';
import { createHttpFetcher } from '../../agent/tuf/http-fetcher.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler } from '../../core/ports/ports.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { ArtifactSource } from '../../kernel/mock/mock-kernel.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import type { OtaDeviceFacts } from './messages.js';

/**
 * `sdc chaos run --scenario ota-cut`: a worker agent's update path, as `runAgent` wires it (the
 * real UpdateRunner, its journal and TUF metadata in the agent's directory, the artifact from the
 * notice's presigned URL by the resumable downloader over HTTPS), on the worker's mock kernel. What
 * the run checks from outside is recorded here, on the agent's side: every artifact request (the
 * offset it asked from, the status, the bytes that came before the cut), the digest of the bytes
 * each STAGE read, and the kernel calls the update made.
 */

/** The mock kernel's version before the rollout (what `runAgent({ ota: { mockInstalledVersion } })` sets in the e2e rollout test). */
export const otaFactoryVersion = '1.0.0';
/** The platform the chaos run's release lists. */
export const otaPlatform = 'linux-x64';
/** The runner's own version, which the release's min_agent_version is compared with. */
const runnerAgentVersion = '0.1.0';
/**
 * The first retry after a cut waits this long (doubling), not the runner's 500 ms: the short form
 * cuts each download five times or more, and 0.5 + 1 + 2 + 4 + 8 s would outlast its commands.
 */
const retryDelayMs = 20;
/** Requests and stages kept per device (bounds on what is reported; a download may take more requests while each brings new bytes). */
const requestsKeptMax = 200;
const stagesKeptMax = 8;
/** The mock kernel reads no artifact larger than this (the chaos run's is a few hundred KB). */
const artifactBytesMax = 16 * 1024 * 1024;

export interface WorkerOta {
  readonly runner: UpdateRunner;
  /** The mock kernel's artifact source: files under the agent's directory, each read's digest recorded. */
  readonly artifacts: ArtifactSource;
  facts(): Promise<OtaDeviceFacts>;
}

/**
 * The update runner of one worker agent. `kernel` is the agent's bridge itself, not the command
 * path's observed one: an update's kernel calls are counted here, by kind, not as commands'.
 */
export function startWorkerOta(options: {
  identity: AgentIdentity; dir: string; kernel: () => KernelBridge; clock: Clock; random: RandomSource; scheduler: Scheduler; ed25519: Ed25519Provider;
  /** Sends the runner's OTA_REPORT on the agent's session (false without one: sent again with the next notice). */
  send: (report: MessageBody<'OTA_REPORT'>) => boolean;
  healthy: () => boolean;
  /** The agent core's policy bundle check of the rollout's STAGE and COMMIT (UpdateRunnerOptions.checkCommand). */
  checkCommand?: UpdateRunnerOptions['checkCommand'];
  /** Artifact origins besides the control plane's (runAgent's ota.artifactOrigins): the chaos run's artifacts proxy. */
  artifactOrigins?: readonly string[];
}): WorkerOta {
  const { identity, dir } = options;
  const requests: Array<OtaDeviceFacts['requests'][number]> = [];
  const stagedSha256: string[] = [];
  const calls = { stage: 0, commit: 0, rollback: 0 };
  const downloads: Array<OtaDeviceFacts['downloads'][number]> = [];
  const logger: AgentLogger = {
    debug() {}, warn() {}, error() {},
    info(fields, message) {
      // The runner says how each download went: its attempts and the offset each started from.
      if (message !== 'artifact downloaded from its presigned URL') return;
      const f = fields as { attempts?: number; startOffsets?: number[] };
      if (downloads.length < stagesKeptMax) downloads.push({ attempts: f.attempts ?? 0, start_offsets: (f.startOffsets ?? []).slice(0, requestsKeptMax) });
    },
  };
  const kernel = countingKernel(options.kernel, calls);
  const runner = new UpdateRunner({
    deviceId: identity.deviceId, platform: otaPlatform, agentVersion: runnerAgentVersion,
    resolveDirectorKey: pinnedKeyResolver(identity.trust.command_keys), kernel, journal: fileUpdateJournal(dir),
    source: {
      metadataBaseUrl: new URL('/v1/tuf/metadata/', identity.trust.control_plane_url).toString(),
      targetBaseUrl: new URL('/v1/tuf/targets/', identity.trust.control_plane_url).toString(),
      fetcher: createHttpFetcher({ scheduler: options.scheduler, caPem: identity.trust.ca_pem }),
      metadata: directoryStore(join(dir, 'ota', 'metadata')), targets: directoryStore(join(dir, 'ota', 'targets')), targetsDir: join(dir, 'ota', 'targets'),
      download: {
        scheduler: options.scheduler, caPem: identity.trust.ca_pem, retryDelayMs, fetcher: recordingFetcher(createNodeArtifactFetcher({ caPem: identity.trust.ca_pem }), requests),
        // As runAgent sets them: the control plane's origin, then the ones configured.
        artifactOrigins: [new URL(identity.trust.control_plane_url).origin, ...(options.artifactOrigins ?? [])],
      },
    },
    tufCrypto: createNodeTufCrypto(), ed25519: options.ed25519, clock: options.clock, random: options.random, send: options.send,
    healthProbe: async () => options.healthy(), logger,
    ...(options.checkCommand === undefined ? {} : { checkCommand: options.checkCommand }),
  });
  const artifacts = digestRecordingSource(dir, stagedSha256);
  return {
    runner, artifacts,
    async facts() {
      const status = await options.kernel().getStatus();
      const entry = runner.current;
      return {
        deviceId: identity.deviceId, requests: [...requests], downloads: [...downloads], staged_sha256: [...stagedSha256], kernel_calls: { ...calls },
        kernel: { current_version: status.currentVersion, previous_version: status.previousVersion, commits: status.commits, rollbacks: status.rollbacks, stage_failures: status.stageFailures },
        execution: entry === null ? null : { id: entry.executionId, state: entry.state },
      };
    },
  };
}

/** Each GET: the offset its Range asked from (0 without one), the status, and the body bytes handed out before it ended or was cut. */
function recordingFetcher(inner: ArtifactFetcher, requests: Array<OtaDeviceFacts['requests'][number]>): ArtifactFetcher {
  return {
    async get(url, headers, signal) {
      const offset = Number(/^bytes=(\d+)-$/.exec(headers['range'] ?? '')?.[1] ?? 0);
      const record = { offset, status: 0, bytes: 0, cut: false };
      if (requests.length < requestsKeptMax) requests.push(record);
      const response = await inner.get(url, headers, signal).catch((error: unknown) => { record.cut = true; throw error; });
      record.status = response.status;
      return {
        status: response.status, etag: response.etag, contentRange: response.contentRange, contentLength: response.contentLength,
        destroy: (reason) => response.destroy(reason),
        next: async () => {
          try {
            const chunk = await response.next();
            if (chunk !== undefined) record.bytes += chunk.length;
            return chunk;
          } catch (error) {
            record.cut = true;
            throw error;
          }
        },
      };
    },
  };
}

/** Files under the agent's directory, bounded; the SHA-256 of every artifact STAGE read is kept. */
function digestRecordingSource(dir: string, stagedSha256: string[]): ArtifactSource {
  const files = filesUnder(dir, artifactBytesMax);
  return {
    read(path) {
      const bytes = files.read(path);
      if (bytes !== undefined && stagedSha256.length < stagesKeptMax) stagedSha256.push(createHash('sha256').update(bytes).digest('hex'));
      return bytes;
    },
  };
}

/** The agent's bridge with the update's privileged calls counted (a call made twice is what "executed twice" means here). */
function countingKernel(bridge: () => KernelBridge, calls: { stage: number; commit: number; rollback: number }): KernelBridge {
  return {
    get backend() { return bridge().backend; },
    pingKernel: (nonce, auth) => bridge().pingKernel(nonce, auth),
    lockScreen: (auth) => bridge().lockScreen(auth),
    getProcessList: (limit, auth) => bridge().getProcessList(limit, auth),
    stageUpdate: (args, auth) => { calls.stage += 1; return bridge().stageUpdate(args, auth); },
    commitUpdate: (version, auth, options) => { calls.commit += 1; return bridge().commitUpdate(version, auth, options); },
    rollbackUpdate: (auth) => { calls.rollback += 1; return bridge().rollbackUpdate(auth); },
    confirmUpdate: (version, auth) => bridge().confirmUpdate!(version, auth),
    getStatus: (auth) => bridge().getStatus(auth),
    close: () => bridge().close(),
  };
}
