// The kernel's commit watchdog seen from the agent (docs/kernel-contract.md, "Commit watchdog"):
// the update runner (agent/ota/update-runner.ts) against a real image repository and rollout
// coordinator, with the mock kernel service itself behind the typed bridge (signed requests, the
// control plane's signed commands, the kernel's own manual clock). What is tested: an agent that
// dies after COMMIT, before its health check could confirm, is rolled back by the kernel when the
// window runs out, and the restarted agent reports the execution rolled back without a ROLLBACK
// of its own; a healthy agent confirms, and the window passing later changes nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import type { FetchOutcome } from '../../core/tuf/updater.js';
import { UpdateRunner } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal, type UpdateJournal } from '../../agent/ota/update-journal.js';
import type { TufFileStore } from '../../agent/tuf/driver.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
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
    ({ h, service } = await openRolloutWorld(['wd-1', 'wd-2'], { id: 'wd-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(40)) }));
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

  const runnerFor = (deviceId: string, kernel: IoctlKernelBridge, targets: TufFileStore, journal: UpdateJournal, sent: Report[], healthy = true) => new UpdateRunner({
    deviceId, platform: 'linux-x64', agentVersion: '0.1.0',
    resolveDirectorKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined),
    kernel, journal, commitWatchdogMs: windowMs, healthProbe: async () => healthy,
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
});
