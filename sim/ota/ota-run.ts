import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Clock, Ed25519Provider } from '../../core/ports/ports.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { ExecutionTimeouts } from '../../core/ota/execution-machine.js';
import { executionActiveStates } from '../../core/ota/execution-machine.js';
import type { RolloutPlan } from '../../core/ota/rollout-decisions.js';
import type { SeededRandom } from '../../core/random/prng.js';
import type { VirtualTime } from '../../core/time/virtual-time.js';
import type { TufCrypto } from '../../core/tuf/crypto-port.js';
import { MemoryStagingStore } from '../../agent/ota/memory-staging-store.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import type { ControlPlane } from '../../server/control-plane/control-plane.js';
import type { ServiceSigner } from '../../server/materials/materials.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from '../../server/ota/repository-init.js';
import type { SqlDatabase } from '../../server/stores/sql/sql-port.js';
import type { OtaCheckerName, OtaViolation } from '../checkers.js';
import type { ScenarioOta } from '../scenario.js';
import { checkCrashRecovered, checkDownloadsResumed, checkFirstWaveOnly, checkPausedInFirstWave, checkRolloutCompleted, checkTargetsRoute, type DeviceEnd, type RolloutFacts } from './ota-checkers.js';
import { OtaObserver } from './ota-observer.js';
import { DeviceUpdates, simInstalledVersion, type BrickMode, type CrashPlan, type DeviceUpdatesOptions } from './device-updates.js';
import { SimFetch, type CutWindow } from './sim-fetch.js';

/**
 * The OTA part of a full-tier run (docs/simulation.md, "OTA rollouts"): an image repository in
 * the control plane's data directory (as `sdc ota init` writes one), a release published at the
 * scenario's time through the real ReleaseService (two release signers) and rolled out by the
 * real coordinator (server/ota/rollouts.ts over core/ota/rollout-decisions.ts) to the whole
 * fleet, in the scenario's waves; each device runs the real agent's update runner on the
 * simulator's ports (device-updates.ts), fetching from the control plane's own TUF repository and
 * blob store in process (sim-fetch.ts). At the end the OTA checkers read the rollout from the stores.
 */
export const otaPlatform = 'linux-x64';

/** What a device's update runner needs of the device: its kernel bridge, its clock, and the memory its kernel reads staged artifacts from. */
export interface OtaDevice {
  /** The update runner's kernel: the device's bridge through the run's counting wrapper (sim/observed-agent-parts.ts). */
  readonly kernel: KernelBridge;
  /** The bridge itself, for the end-of-run check (its reads are no device's calls). */
  readonly rawKernel: KernelBridge;
  readonly clock: Clock;
  readonly staging: MemoryStagingStore;
}

export interface OtaSetup {
  readonly dataDir: string;
  readonly keys: RepositoryKeys;
  /** The release's artifact, drawn from the seed. */
  readonly artifact: Uint8Array;
  readonly cuts: readonly CutWindow[];
  /** One for the run: its key cache spares every device parsing the repository's keys again. */
  readonly tufCrypto: TufCrypto;
  readonly devices: Map<string, OtaDevice>;
  /** Each device's update path, made at its first notice. */
  readonly updaters: Map<string, DeviceUpdates>;
  /** The control plane's routes, set once it started (undefined while it is down). */
  app: () => FastifyInstance | undefined;
  readonly observer: OtaObserver;
  readonly timeouts: ExecutionTimeouts;
  rolloutId: string | undefined;
  startError: string | undefined;
}

/** The repository files and the artifact's bytes (drawn from the seed). TUF keys are not from the seed: nothing in the trace depends on their signatures. */
export async function prepareOta(ota: ScenarioOta, random: SeededRandom, simStartMs: number): Promise<OtaSetup> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-sim-ota-'));
  const keys = generateRepositoryKeys();
  await writeRepositoryFiles(dataDir, keys, initialMetadata(keys, simStartMs));
  const cuts = (ota.downloadCuts ?? []).map((cut) => ({ startMs: simStartMs + cut.atMs, endMs: simStartMs + cut.atMs + cut.durationMs, cutAtPercent: cut.cutAtPercent }));
  const artifact = random.bytes(ota.artifactBytes);
  const stepMs = Object.fromEntries(executionActiveStates.map((state) => [state, ota.stepTimeoutMs])) as ExecutionTimeouts['stepMs'];
  return {
    dataDir, keys, artifact, cuts, tufCrypto: createNodeTufCrypto(), devices: new Map(), updaters: new Map(), app: () => undefined,
    observer: new OtaObserver(), timeouts: { stepMs, executionMs: ota.executionTimeoutMs }, rolloutId: undefined, startError: undefined,
  };
}

export async function disposeOta(setup: OtaSetup): Promise<void> {
  await rm(setup.dataDir, { recursive: true, force: true });
}

/** Who starts the simulator's rollout. */
const simRolloutCreator = 'sim-operator';

/** Publishes the release (create, upload, two signatures, publish), adds the rollout's creator and starts its rollout to the fleet. */
export async function publishAndStart(setup: OtaSetup, ota: ScenarioOta, cp: ControlPlane, fleetDeviceIds: readonly string[], seed: number): Promise<string> {
  const services = cp.ota;
  if (services === undefined) throw new Error('the control plane did not open the image repository');
  const releaseId = `rel-sim-${seed}`;
  const bytes = setup.artifact;
  await services.releases.create({
    id: releaseId, version: '2.0.0', artifact_name: 'agent.bin', platforms: [otaPlatform], min_agent_version: '0.1.0',
    reboot_required: true, health_check: { timeout_ms: ota.stepTimeoutMs, probes: ['kernel_status'] },
  }, 'sim-releaser');
  await services.releases.upload(releaseId, (async function* () { yield bytes; })(), { sha256: createHash('sha256').update(bytes).digest('hex') }, 'sim-releaser');
  const proposal = await services.releases.proposal(releaseId);
  for (const [index, signer] of ['sim-signer-1', 'sim-signer-2'].entries()) {
    const key = setup.keys.targets[index]!.key;
    await services.releases.addSignature(releaseId, { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, signer);
  }
  await services.releases.publish(releaseId, 'sim-releaser');
  const plan: RolloutPlan = {
    devicesPerMinuteMax: ota.devicesPerMinuteMax,
    waves: ota.waves.map((wave) => ({ selector: { percent: wave.percent }, successThreshold: wave.successThreshold, errorThreshold: wave.errorThreshold })),
  };
  // The rollout's creator is a user: each device is judged against the command policy as that
  // user's command when its turn comes (the built-in policy lets approvers stage and commit updates).
  await cp.auth.users.add({ name: simRolloutCreator, role: 'approver', password: 'sim rollout creator, never logs in', nowMs: cp.context.clock.nowMs() });
  const view = await services.rollouts.start({ releaseId, platform: otaPlatform, deviceIds: fleetDeviceIds, plan }, simRolloutCreator);
  return view.id;
}

export { brickSelector, crashPlanner, ratioSelector } from './selectors.js';

/**
 * A device's part in the rollout, made with its kernel: the memory its update runner stages
 * artifacts in, which is also where its mock kernel reads STAGE's file, and the factory version
 * the kernel starts at (so a bricked update has one to roll back to). `attach` registers the
 * device's kernel bridge for its runner. Nothing without a rollout.
 */
export function otaDeviceParts(setup: OtaSetup | undefined, deviceId: string, clock: Clock): {
  readonly kernelOptions: { artifacts?: MemoryStagingStore; installedVersion?: string };
  /** `kernel`: the bridge through the run's counting wrapper, which the runner calls; `rawKernel`: the bridge. */
  attach(kernel: KernelBridge, rawKernel: KernelBridge): void;
} {
  if (setup === undefined) return { kernelOptions: {}, attach: () => undefined };
  const staging = new MemoryStagingStore();
  return {
    kernelOptions: { artifacts: staging, installedVersion: simInstalledVersion },
    attach: (kernel, rawKernel) => { setup.devices.set(deviceId, { kernel, rawKernel, clock, staging }); },
  };
}

/** The device's update runner on the simulator's ports (device-updates.ts); its kernel must have been registered in setup.devices. */
export function createUpdater(setup: OtaSetup, options: {
  deviceId: string; ota: ScenarioOta; time: VirtualTime; random: SeededRandom; commandSigner: ServiceSigner; provider: Ed25519Provider;
  bricks: () => BrickMode | null; targetsRoute: () => boolean; crashes: (brick: BrickMode | null) => CrashPlan | null; crashAgent: (downMs: number) => void;
  send: (report: MessageBody<'OTA_REPORT'>) => boolean; trace: (kind: string, detail: string) => void; hold: (work: Promise<unknown>) => void;
  checkCommand?: DeviceUpdatesOptions['checkCommand'];
}): DeviceUpdates {
  const device = setup.devices.get(options.deviceId);
  if (device === undefined) throw new Error(`device ${options.deviceId} has no kernel registered for its updates`);
  const fetch = new SimFetch({
    deviceId: options.deviceId, app: () => setup.app(), time: options.time, cuts: setup.cuts, observer: setup.observer, trace: options.trace, hold: options.hold,
    rate: { bytesPerSecond: options.ota.device.downloadBytesPerSecond, chunkBytes: options.ota.device.downloadChunkBytes },
  });
  const updater = new DeviceUpdates({
    deviceId: options.deviceId, ota: options.ota, time: options.time, clock: device.clock, random: options.random, kernel: device.kernel, staging: device.staging,
    fetch, tufCrypto: setup.tufCrypto, commandSigner: options.commandSigner, provider: options.provider, bricks: options.bricks,
    targetsRoute: options.targetsRoute, crashes: options.crashes, crashAgent: options.crashAgent, send: options.send,
    observer: setup.observer, trace: options.trace, ...(options.checkCommand === undefined ? {} : { checkCommand: options.checkCommand }),
  });
  setup.updaters.set(options.deviceId, updater);
  return updater;
}

/** Each device's update as its journal ends the run, beside its kernel's status (read from the bridge itself). */
export async function readDeviceEnds(setup: OtaSetup): Promise<DeviceEnd[]> {
  const ends: DeviceEnd[] = [];
  for (const [deviceId, updater] of setup.updaters) {
    const entry = updater.current;
    const kernel = setup.devices.get(deviceId)?.rawKernel;
    if (entry === null || kernel === undefined) continue;
    const status = await kernel.getStatus();
    ends.push({
      deviceId, executionId: entry.executionId, state: entry.state, intent: entry.intent, targetVersion: entry.approved?.version ?? null,
      kernel: { currentVersion: status.currentVersion, stagedVersion: status.stagedVersion, watchdogArmed: status.watchdogArmed === true },
    });
  }
  return ends;
}

/** The rollout as the stores hold it: its record, its executions and its status changes in the audit log. */
export async function readRolloutFacts(cp: ControlPlane, sql: SqlDatabase, rolloutId: string): Promise<RolloutFacts> {
  const view = await cp.ota!.rollouts.view(rolloutId);
  const rows = await sql.query<{ kind: string; payload_json: string }>(
    "SELECT kind, payload_json FROM audit_log WHERE subject = ? AND kind LIKE 'ota.rollout.%' ORDER BY seq ASC", [`rollout:${rolloutId}`]);
  const history = rows.map((row) => ({ status: row.kind.slice('ota.rollout.'.length), wave: Number((JSON.parse(row.payload_json) as { wave?: number }).wave ?? 0) }));
  return {
    status: view.status, pauseReason: view.pause_reason, waveIndex: view.wave_index, waves: view.waves.map((w) => w.devices),
    executions: view.executions.map((e) => ({ deviceId: e.device_id, wave: e.wave, state: e.state })), history, updatedAtMs: view.updated_at_ms,
  };
}

/** The checkers the scenario's expectation names, and their violations. */
export function checkOta(setup: OtaSetup, ota: ScenarioOta, rollout: RolloutFacts | undefined, fleetSize: number, ends: readonly DeviceEnd[]): { checked: OtaCheckerName[]; violations: OtaViolation[] } {
  const records = [...setup.observer.records.values()];
  const violations: OtaViolation[] = [];
  const downloads = checkDownloadsResumed(records, (ota.downloadCuts ?? []).length > 0);
  // Every run holds the update path to these two; a scenario that plans crashes or URL-less notices must also show them happening.
  const paths = [
    ...checkTargetsRoute(records, (ota.targetsRoute?.ratio.numerator ?? 0) > 0),
    ...checkCrashRecovered(records, ends, { crashesExpected: (ota.crashes?.ratio.numerator ?? 0) > 0, installedVersion: simInstalledVersion }),
  ];
  const always: OtaCheckerName[] = ['ota_download_resumed', 'ota_targets_route', 'ota_crash_recovered'];
  if (ota.expect === 'paused_in_first_wave') {
    violations.push(...checkPausedInFirstWave(rollout), ...(rollout === undefined ? [] : checkFirstWaveOnly(rollout, records)), ...downloads, ...paths);
    return { checked: ['ota_first_wave_only', 'ota_paused_in_first_wave', ...always], violations };
  }
  violations.push(...checkRolloutCompleted(rollout, fleetSize), ...downloads, ...paths);
  return { checked: ['ota_rollout_completed', ...always], violations };
}
