// What the OTA integration tests share: an in-memory TUF file store for the agent, an update runner
// fetching from the control plane's HTTP app, and a driver of one single-device rollout through the
// real RolloutService (start it, read the device's notice from the key/value store, hand the
// agent's reports back, read the execution's state).
import { SdcError } from '../../../core/errors/index.js';
import type { KernelBridge } from '../../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../../kernel/payloads.js';
import type { MessageBody } from '../../../core/protocol/messages/catalog.js';
import type { FetchOutcome } from '../../../core/tuf/updater.js';
import { memoryUpdateJournal } from '../../../agent/ota/update-journal.js';
import { UpdateRunner, type UpdateRunnerOptions } from '../../../agent/ota/update-runner.js';
import type { TufFileStore } from '../../../agent/tuf/driver.js';
import type { TufFetcher } from '../../../agent/tuf/http-fetcher.js';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import { systemRandom } from '../../../runtime/system.js';
import { createNodeTufCrypto } from '../../../runtime/tuf-crypto-node.js';
import { otaKeys } from '../../../server/bus-contract/ota-keys.js';
import { sqlJsTarget, type Harness } from '../../../server/control-plane/test-support.js';
import type { OtaServices } from '../../../server/ota/ota-service.js';
import type { RepositoryKeys } from '../../../server/ota/repository-init.js';
import { RolloutService, type RolloutServiceOptions } from '../../../server/ota/rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from '../../../server/ota/test-support.js';

export type Notice = MessageBody<'OTA_NOTICE'>;
export type Report = MessageBody<'OTA_REPORT'>;

export function memoryStore(): TufFileStore & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return { files, async read(name) { return files.get(name); }, async write(name, bytes) { files.set(name, bytes); }, async delete(name) { files.delete(name); } };
}

/**
 * Serves the TUF client's requests from the control plane's HTTP app (inject). A target download
 * first waits for what `gate` returns (the tests hold it so that a notice comes in the middle of a
 * step); while `tamper` returns true a byte of every target served is flipped (a tampered mirror).
 */
export function controlPlaneFetcher(harness: () => Harness, options: { gate?: () => Promise<void> | undefined; tamper?: () => boolean } = {}): TufFetcher {
  return {
    async fetch(url: string): Promise<FetchOutcome> {
      const target = url.includes('/v1/tuf/targets/');
      if (target) await options.gate?.();
      const answer = await harness().cp.app.inject({ method: 'GET', url: new URL(url).pathname });
      if (answer.statusCode !== 200) return { ok: false, status: answer.statusCode, error: new SdcError('TUF_DOWNLOAD_FAILED', `${url}: ${answer.statusCode}`) };
      const bytes = new Uint8Array(answer.rawPayload);
      if (target && options.tamper?.() === true) bytes[0] = bytes[0]! ^ 1;
      return { ok: true, bytes };
    },
  };
}

const ed25519 = createNodeEd25519Provider();

/**
 * An agent's update runner on the control plane `h` (its image repository through `fetcher`, its
 * command key as the director's), its reports pushed on `sent`; a journal in memory and a silent
 * logger unless `options` gives them.
 */
export function updateRunnerOn(h: Harness, fetcher: TufFetcher, sent: Report[], options: Pick<UpdateRunnerOptions, 'deviceId' | 'kernel'> & Partial<UpdateRunnerOptions>): UpdateRunner {
  return new UpdateRunner({
    platform: 'linux-x64', agentVersion: '0.1.0',
    resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
    journal: memoryUpdateJournal(),
    source: { metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', fetcher, metadata: memoryStore(), targets: memoryStore(), targetsDir: '/nonexistent' },
    tufCrypto: createNodeTufCrypto(), ed25519, clock: h.clock, random: systemRandom,
    send: (report) => { sent.push(report); return true; }, logger: { debug() {}, info() {}, warn() {}, error() {} },
    ...options,
  });
}

/** `harness` and `service` are read at each call: the tests make them in `before`. */
export function singleDeviceRollouts(harness: () => Harness, service: () => RolloutService, releaseId: string) {
  const noticeOf = async (deviceId: string): Promise<Notice> => JSON.parse((await harness().cp.context.kv.get(otaKeys.notice(deviceId)))!) as Notice;
  /** The reports the agent sent, in order; a refused one is the coordinator's business, not the test's. */
  const deliver = async (deviceId: string, reports: Report[]): Promise<void> => {
    for (const report of reports.splice(0)) {
      await service().onReport({ device_id: deviceId, gateway_id: 'gw-1', at_ms: harness().clock.nowMs(), frame: JSON.stringify(report) }).catch(() => undefined);
    }
  };
  const startFor = async (deviceId: string) => {
    const view = await service().start({
      releaseId, platform: 'linux-x64', deviceIds: [deviceId],
      plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 0 } }], devicesPerMinuteMax: 10 },
    }, 'olga');
    return { view, notice: await noticeOf(deviceId) };
  };
  const stateOf = async (rolloutId: string) => (await service().view(rolloutId)).executions[0]!.state;
  return { noticeOf, deliver, startFor, stateOf };
}

export type OtaHarness = Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };

/**
 * A control plane on sql.js with the given devices enrolled and one published release (version
 * 2.0.0), and a RolloutService over it that takes the agent's reports as plain JSON (the tests
 * drive the runner directly; the signature is the gateway's business).
 */
export async function openRolloutWorld(
  deviceIds: readonly string[], release: { id: string; artifact: Uint8Array }, options: Pick<RolloutServiceOptions, 'commitWatchdogMs'> = {},
): Promise<{ h: OtaHarness; service: RolloutService }> {
  const h = await makeOtaHarness(sqlJsTarget);
  for (const id of deviceIds) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
  await publishTestRelease(h.ota, h.keys!, { id: release.id, version: '2.0.0', artifact: release.artifact });
  const service = new RolloutService({
    context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
    verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as Report, ...options,
  });
  return { h, service };
}

/** A kernel that keeps its update slots and records its calls. */
export function slotKernel(calls: string[]): KernelBridge {
  let current = '1.0.0';
  let previous = '';
  return {
    backend: 'mock',
    stageUpdate: async (args) => { calls.push('stage'); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
    commitUpdate: async (version) => { calls.push('commit'); previous = current; current = version; return { currentVersion: current, previousVersion: previous }; },
    rollbackUpdate: async () => { calls.push('rollback'); current = previous; previous = ''; return { currentVersion: current, previousVersion: previous }; },
    getStatus: async () => ({ currentVersion: current, previousVersion: previous, stagedVersion: '' }) as KernelServiceStatus,
  } as KernelBridge;
}
