// The kernel's commit watchdog seen from the agent (docs/kernel-contract.md, "Commit watchdog"):
// the update runner (agent/ota/update-runner.ts) against a real image repository and rollout
// coordinator, with the mock kernel service itself behind the typed bridge (signed requests, the
// control plane's signed commands, the kernel's own manual clock). What is tested: an agent that
// dies after COMMIT, before its health check could confirm, is rolled back by the kernel when the
// window runs out, and the restarted agent reports the execution rolled back without a ROLLBACK
// of its own; a healthy agent confirms, and the window passing later changes nothing. The window
// and the digest are the control plane's: signed into the rollout's COMMIT command, taken by the
// kernel from there whatever the agent's own option says, and an agent that sends others is refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { UpdateRunner } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal, type UpdateJournal } from '../../agent/ota/update-journal.js';
import type { TufFileStore } from '../../agent/tuf/driver.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { commandAuthorization } from '../../kernel/command/authorization.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { memoryStore, openRolloutWorld, singleDeviceRollouts, type OtaHarness, type Report } from './support/ota-rollout-driver.js';


const targetsDir = '/device/targets';
const windowMs = 60_000;
const agentSeed = new Uint8Array(32).fill(11);
const serviceSeed = new Uint8Array(32).fill(12);

describe('the kernel commit watchdog under the agent update runner', () => {
  let h: OtaHarness;
  let service: RolloutService;
  const provider = createNodeEd25519Provider();

  before(async () => {
    ({ h, service } = await openRolloutWorld(['wd-1', 'wd-2', 'wd-3', 'wd-4'], { id: 'wd-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(40)) }, { commitWatchdogMs: windowMs }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const fetcher = {
    async fetch(url: string): Promise<FetchOutcome> {
      const answer = await h.cp.app.inject({ method: 'GET', url: new URL(url).pathname });
      if (answer.statusCode !== 200) return { ok: false, status: answer.statusCode, error: new SdcError('TUF_DOWNLOAD_FAILED', `${url}: ${answer.statusCode}`) };
      return { ok: true, bytes: new Uint8Array(answer.rawPayload) };
    },
  };

  /** One device: the mock kernel (running 1.0.0, provisioned with the control plane's command key, on its own manual clock) and the agent's stores. */
  const deviceFor = (deviceId: string) => {
    const targets = memoryStore();
    let elapsedMs = 0;
    const device = new MockIoctlDevice({
      ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed),
      clock: { nowMs: () => h.clock.nowMs() + elapsedMs },
      // The kernel reads the artifact the agent's TUF client verified and wrote.
      artifacts: { read: (path) => [...targets.files].find(([name]) => join(targetsDir, encodeURIComponent(name)) === path || join(targetsDir, name) === path)?.[1] },
      commandKeys: { deviceId, keys: [h.materials.commandSigner.publicKey] },
      installedVersion: '1.0.0',
    });
    let counter = 1n;
    const kernelCalls: string[] = [];
    /** A bridge per agent process; counters continue above the last process's, as wall-clock microseconds would. */
    const bridge = () => {
      const b = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: (counter += 1_000_000n) });
      const commitUpdate = b.commitUpdate.bind(b);
      const rollbackUpdate = b.rollbackUpdate.bind(b);
      const confirmUpdate = b.confirmUpdate.bind(b);
      return Object.assign(b, {
        commitUpdate: (...args: Parameters<typeof commitUpdate>) => { kernelCalls.push('commit'); return commitUpdate(...args); },
        rollbackUpdate: (...args: Parameters<typeof rollbackUpdate>) => { kernelCalls.push('rollback'); return rollbackUpdate(...args); },
        confirmUpdate: (...args: Parameters<typeof confirmUpdate>) => { kernelCalls.push('confirm'); return confirmUpdate(...args); },
      });
    };
    const status = () => bridge().getStatus();
    return { targets, bridge, status, kernelCalls, elapse: (ms: number) => { elapsedMs += ms; } };
  };

  const runnerFor = (deviceId: string, kernel: IoctlKernelBridge, targets: TufFileStore, journal: UpdateJournal, sent: Report[], healthy = true, agentWindowMs = 5_000) => new UpdateRunner({
    deviceId, platform: 'linux-x64', agentVersion: '0.1.0',
    resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
    kernel, journal, commitWatchdogMs: agentWindowMs, healthProbe: async () => healthy,
    source: { metadataBaseUrl: 'https://cp.test/v1/tuf/metadata/', targetBaseUrl: 'https://cp.test/v1/tuf/targets/', fetcher, metadata: memoryStore(), targets, targetsDir },
    tufCrypto: createNodeTufCrypto(), ed25519: provider, clock: h.clock, random: systemRandom,
    send: (report) => { sent.push(report); return true; }, logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const { noticeOf, deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'wd-rel');

  it('an agent that dies after COMMIT, before confirming, is rolled back by the kernel when the window runs out', async () => {
    const d = deviceFor('wd-1');
    const journal = memoryUpdateJournal();
    const sent: Report[] = [];
    const { view, notice } = await startFor('wd-1');
    const first = runnerFor('wd-1', d.bridge(), d.targets, journal, sent);
    first.onNotice(notice);
    await first.idle();
    // Committed, rebooted, waiting for the control plane's nonce: the watchdog is armed for 2.0.0.
    assert.equal(first.current?.state, 'health_checking');
    let status = await d.status();
    assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed], ['2.0.0', '1.0.0', true]);
    // The agent dies here (no more notices reach it). The window runs out on the kernel's clock.
    d.elapse(windowMs);
    await deliver('wd-1', sent);
    const second = runnerFor('wd-1', d.bridge(), d.targets, journal, sent);
    await second.recover();
    await second.idle();
    second.onNotice(await noticeOf('wd-1'));
    await second.idle();
    status = await d.status();
    assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed], ['1.0.0', '', false]);
    assert.deepEqual([status.commits, status.rollbacks, status.watchdogRollbacks, status.confirms], [1, 1, 1, 0]);
    assert.deepEqual(d.kernelCalls, ['commit'], 'no CONFIRM, and no ROLLBACK from the agent: the kernel did it');
    assert.equal(second.current?.state, 'rolled_back');
    const health = sent.find((r) => r.event === 'version_report');
    assert.equal(health?.healthy, false, 'the health check sees the kernel running 1.0.0');
    await deliver('wd-1', sent);
    assert.equal(await stateOf(view.id), 'rolled_back');
  });

  it('a healthy agent confirms after its health check; the window passing later changes nothing', async () => {
    const d = deviceFor('wd-2');
    const sent: Report[] = [];
    const { view, notice } = await startFor('wd-2');
    const runner = runnerFor('wd-2', d.bridge(), d.targets, memoryUpdateJournal(), sent);
    runner.onNotice(notice);
    await runner.idle();
    await deliver('wd-2', sent);
    runner.onNotice(await noticeOf('wd-2'));
    await runner.idle();
    assert.equal(runner.current?.state, 'succeeded');
    assert.deepEqual(d.kernelCalls, ['commit', 'confirm']);
    d.elapse(windowMs * 2);
    const status = await d.status();
    assert.deepEqual([status.currentVersion, status.watchdogArmed, status.confirms, status.rollbacks], ['2.0.0', false, 1, 0]);
    await deliver('wd-2', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
  });

  it('the rollout signs the approved digest and the window into COMMIT; the kernel arms that window, not the agent\'s own', async () => {
    const d = deviceFor('wd-3');
    const sent: Report[] = [];
    const { notice } = await startFor('wd-3');
    const stage = notice.kernel_commands.stage.args;
    assert.deepEqual(notice.kernel_commands.commit.args, { version: '2.0.0', sha256: stage['sha256'], watchdog_ms: windowMs });
    // The agent's own option (5 s) is not what the kernel arms.
    const runner = runnerFor('wd-3', d.bridge(), d.targets, memoryUpdateJournal(), sent, true, 5_000);
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    const status = await d.status();
    assert.deepEqual([status.currentVersion, status.watchdogArmed, status.watchdogRemainingMs], ['2.0.0', true, BigInt(windowMs)]);
  });

  it('a COMMIT with another window, no window or another digest than the signed ones is refused COMMAND_MISMATCH', async () => {
    const d = deviceFor('wd-4');
    const { notice } = await startFor('wd-4');
    const commands = notice.kernel_commands;
    const artifact = new TextEncoder().encode('firmware 2.0.0 '.repeat(40));
    const kernel = d.bridge();
    d.targets.files.set('staged.bin', artifact);
    await kernel.stageUpdate({ path: join(targetsDir, 'staged.bin'), version: '2.0.0', sha256: bytesOfHex(String(commands.stage.args['sha256'])) }, commandAuthorization(commands.stage));
    const sha256 = bytesOfHex(String(commands.commit.args['sha256']));
    const other = new Uint8Array(32).fill(7);
    for (const options of [{ sha256, watchdogMs: 5_000 }, { sha256 }, { sha256: other, watchdogMs: windowMs }]) {
      await assert.rejects(kernel.commitUpdate('2.0.0', commandAuthorization(commands.commit), options), (error: unknown) => SdcError.is(error, 'KERNEL_REFUSED') && error.details['status'] === 'COMMAND_MISMATCH');
    }
    let status = await kernel.getStatus();
    assert.deepEqual([status.currentVersion, status.stagedVersion, status.commits], ['1.0.0', '2.0.0', 0]);
    await kernel.commitUpdate('2.0.0', commandAuthorization(commands.commit), { sha256, watchdogMs: windowMs });
    status = await kernel.getStatus();
    assert.deepEqual([status.currentVersion, status.watchdogArmed, status.commits], ['2.0.0', true, 1]);
  });
});

function bytesOfHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
