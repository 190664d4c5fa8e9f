import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { SeededRandom } from '../../core/random/prng.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { MemoryStagingStore } from '../../agent/ota/memory-staging-store.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { otaKeys } from '../../server/bus-contract/ota-keys.js';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { OtaServices } from '../../server/ota/ota-service.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from '../../server/ota/test-support.js';
import { observedKernel } from '../observed-agent-parts.js';
import { DeviceUpdates, simControlPlaneUrl, simInstalledVersion, type BrickMode, type CrashPlan } from './device-updates.js';
import { OtaObserver } from './ota-observer.js';
import { SimFetch } from './sim-fetch.js';

type Notice = MessageBody<'OTA_NOTICE'>;
type Report = MessageBody<'OTA_REPORT'>;

// A simulated device's update path end to end, one device at a time: the real control plane
// (sql.js, its TUF repository, its embedded blob store presigning under the simulator's origin),
// a real RolloutService, and on the device the agent's own UpdateRunner on the simulator's ports
// (DeviceUpdates: SimFetch in process, memory staging, a mock kernel reading it), on virtual time.
// What the old simulated updater could not show: the TUF refresh, the presigned download, and the
// kernel's real STAGE/COMMIT/ROLLBACK, seen here in the kernel's own status.

const provider = createNodeEd25519Provider();
const ota = {
  atMs: 0, artifactBytes: 20_000, waves: [], devicesPerMinuteMax: 60, stepTimeoutMs: 30_000, executionTimeoutMs: 120_000, expect: 'completed' as const,
  device: { stepDelayMsMin: 100, stepDelayMsMax: 200, downloadBytesPerSecond: 64_000, downloadChunkBytes: 4_096, retryDelayMs: 500, attemptsMax: 5 },
};

describe('a simulated device runs the real update runner against the control plane', () => {
  let h: Harness & { ota: OtaServices };
  let service: RolloutService;
  const artifact = new Uint8Array(randomBytes(ota.artifactBytes));

  before(async () => {
    const harness = await makeOtaHarness(sqlJsTarget, { otaBlobs: { publicBaseUrl: simControlPlaneUrl } });
    h = harness;
    await publishTestRelease(harness.ota, harness.keys!, { id: 'sim-rel', version: '2.0.0', artifact });
    service = new RolloutService({
      context: h.cp.context, releases: harness.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as Report,
    });
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  /** The device: its mock kernel (provisioned with the command key, at the factory version, reading the staging memory) and its runner. */
  function device(deviceId: string, brick: BrickMode | null, fate: { targetsRoute?: boolean; crash?: CrashPlan } = {}) {
    const time = new VirtualTime(h.clock.nowMs());
    const staging = new MemoryStagingStore();
    const agentSeed = new Uint8Array(randomBytes(32));
    const serviceSeed = new Uint8Array(randomBytes(32));
    const mock = new MockIoctlDevice({
      ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: time, scheduler: time,
      commandKeys: { deviceId, keys: [h.materials.commandSigner.publicKey] }, artifacts: staging, installedVersion: simInstalledVersion,
    });
    const kernel = new IoctlKernelBridge({ device: mock, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: BigInt(time.nowMs()) * 1000n });
    const held = new Set<Promise<unknown>>();
    const observer = new OtaObserver();
    const sent: Report[] = [];
    const fetch = new SimFetch({
      deviceId, app: () => h.cp.app, time, cuts: [], observer, trace: () => undefined, hold: (work) => { held.add(work); void work.finally(() => held.delete(work)).catch(() => undefined); },
      rate: { bytesPerSecond: ota.device.downloadBytesPerSecond, chunkBytes: ota.device.downloadChunkBytes },
    });
    const crashes: number[] = [];
    const updates = new DeviceUpdates({
      deviceId, ota, time, clock: time, random: new SeededRandom(7), staging, fetch, tufCrypto: createNodeTufCrypto(),
      // Through the counting wrapper, as sim/run.ts routes them: the observer counts the update's kernel calls.
      kernel: observedKernel(kernel, (call) => observer.kernelCall(deviceId, call), { withConfirm: true }),
      commandSigner: h.materials.commandSigner, provider, bricks: () => brick, targetsRoute: () => fate.targetsRoute === true, crashes: () => fate.crash ?? null,
      crashAgent: (downMs) => { crashes.push(downMs); }, send: (report) => { sent.push(report); return true; }, observer, trace: () => undefined,
    });
    /** Virtual time forward in 100 ms steps, each followed by the control plane's answers and the promise work they start. */
    const run = async (ms: number) => {
      for (let step = 0; step < ms / 100; step += 1) {
        await time.runUntil(time.nowMs() + 100, async () => {
          for (let round = 0; round < 50 && (held.size > 0 || round < 3); round += 1) {
            await Promise.allSettled([...held]);
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        });
        for (let round = 0; round < 5; round += 1) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    return { kernel, observer, sent, updates, run, crashes };
  }

  async function rollOut(deviceId: string, brick: BrickMode | null, fate: Parameters<typeof device>[2] = {}) {
    await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [deviceId, h.clock.nowMs()]);
    const view = await service.start({
      releaseId: 'sim-rel', platform: 'linux-x64', deviceIds: [deviceId],
      plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 0 } }], devicesPerMinuteMax: 10 },
    }, 'olga');
    const noticeOf = async () => JSON.parse((await h.cp.context.kv.get(otaKeys.notice(deviceId)))!) as Notice;
    const stateOf = async () => (await service.view(view.id)).executions[0]!.state;
    const sim = device(deviceId, brick, fate);
    const first = await noticeOf();
    assert.ok(first.artifact_url?.startsWith(`${simControlPlaneUrl}/`), 'the notice carries a presigned URL under the simulator\'s origin');
    sim.updates.onNotice(first);
    for (let round = 0; round < 20 && !['succeeded', 'rolled_back', 'failed', 'rejected'].includes(await stateOf()); round += 1) {
      await sim.run(1_000);
      for (const report of sim.sent.splice(0)) await service.onReport({ device_id: deviceId, gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify(report) }).catch(() => undefined);
      // The gateway pushes the notice again when it changes (the health nonce), as after an AUTH.
      const notice = await h.cp.context.kv.get(otaKeys.notice(deviceId));
      if (notice !== null && notice !== undefined) sim.updates.onNotice(JSON.parse(notice) as Notice);
    }
    return { sim, state: await stateOf() };
  }

  it('a healthy device: TUF refresh, the presigned download, real STAGE and COMMIT on its kernel, succeeded', async () => {
    const { sim, state } = await rollOut('sim-ok', null);
    assert.equal(state, 'succeeded');
    assert.equal((await sim.kernel.getStatus()).currentVersion, '2.0.0', 'the kernel runs the new version');
    const record = sim.observer.records.get('sim-ok')!;
    assert.deepEqual(record.attempts.map((a) => [a.startOffset, a.status]), [[0, 200]], 'one GET of the blob store by its presigned URL');
    assert.deepEqual(record.downloaded, { sha256: record.downloaded!.sha256, matched: true });
    assert.equal(record.committed, true);
    assert.equal(record.healthy, true);
  });

  it('a bricked device fails its health probe and its kernel rolls back to the factory version', async () => {
    const { sim, state } = await rollOut('sim-brick', 'health_check_fails');
    assert.equal(state, 'rolled_back');
    assert.equal((await sim.kernel.getStatus()).currentVersion, simInstalledVersion);
    assert.equal(sim.observer.records.get('sim-brick')!.healthy, false);
  });

  it('a notice without an artifact URL: the device takes the TUF targets route (no presigned GET) and succeeds', async () => {
    const { sim, state } = await rollOut('sim-targets', null, { targetsRoute: true });
    assert.equal(state, 'succeeded');
    const record = sim.observer.records.get('sim-targets')!;
    assert.deepEqual(record.attempts, [], 'no GET by presigned URL');
    assert.equal(record.targetFetches, 1, 'one request to the targets route');
    assert.equal(record.downloaded?.matched, true);
    assert.equal((await sim.kernel.getStatus()).currentVersion, '2.0.0');
  });

  // A crash at each kernel call, before it reaches the kernel (the restarted runner makes it) and
  // after (the restarted runner asks the kernel and does not make it again): the update resumes
  // (stage, commit) or goes on rolling back (rollback), each kernel call made exactly once.
  const crashCases: Array<{ intent: CrashPlan['intent']; beforeCall: boolean; brick: BrickMode | null; ends: string; version: string }> = [
    { intent: 'stage', beforeCall: true, brick: null, ends: 'succeeded', version: '2.0.0' },
    { intent: 'stage', beforeCall: false, brick: null, ends: 'succeeded', version: '2.0.0' },
    { intent: 'commit', beforeCall: true, brick: null, ends: 'succeeded', version: '2.0.0' },
    { intent: 'commit', beforeCall: false, brick: null, ends: 'succeeded', version: '2.0.0' },
    { intent: 'rollback', beforeCall: true, brick: 'health_check_fails', ends: 'rolled_back', version: simInstalledVersion },
    { intent: 'rollback', beforeCall: false, brick: 'health_check_fails', ends: 'rolled_back', version: simInstalledVersion },
  ];
  for (const { intent, beforeCall, brick, ends, version } of crashCases) {
    const when = beforeCall ? 'before' : 'after';
    it(`the agent crashes ${when} its ${intent} call reaches the kernel: a new runner recovers from the journal and the update ends ${ends}, each kernel call made once`, async () => {
      const deviceId = `sim-crash-${intent}-${when}`;
      const { sim, state } = await rollOut(deviceId, brick, { crash: { intent, beforeCall, downMs: 500 } });
      assert.deepEqual(sim.crashes, [500], 'the agent crashed once');
      assert.equal(state, ends);
      const status = await sim.kernel.getStatus();
      assert.deepEqual([status.currentVersion, status.stagedVersion, status.watchdogArmed], [version, '', false], 'nothing half applied');
      const record = sim.observer.records.get(deviceId)!;
      assert.deepEqual(record.crash, { intent, beforeCall, recovered: true });
      const made = { stageUpdate: record.kernelCalls['stageUpdate'], commitUpdate: record.kernelCalls['commitUpdate'], rollbackUpdate: record.kernelCalls['rollbackUpdate'] };
      assert.deepEqual(made, { stageUpdate: 1, commitUpdate: 1, rollbackUpdate: brick === null ? undefined : 1 });
      assert.equal(sim.updates.current?.intent, null);
    });
  }
});
