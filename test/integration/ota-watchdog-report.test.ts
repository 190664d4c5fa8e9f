// The signed health report after the kernel's watchdog restored the previous image (review h1
// (OTA), finding 9). The report always named the target's release counter, so the control plane
// read an unhealthy target (health_check_fail: rolling_back, then the device's rollback report)
// where the device ran its previous release; core/ota/execution-decisions.ts reportEvent takes the
// previous release counter as watchdog_rollback (rolled_back at once). Now the report names the
// release the device runs: the target, or the previous one when the kernel no longer runs the target.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { memoryUpdateJournal } from '../../agent/ota/update-journal.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

/** A kernel whose watchdog can restore the previous image (as the mock kernel's does when its window runs out). */
class WatchdogKernel {
  current = '1.0.0';
  previous = '';
  readonly calls: string[] = [];
  watchdogFires(): void { this.current = this.previous; this.previous = ''; }
  bridge(): KernelBridge {
    return {
      backend: 'mock',
      stageUpdate: async (args) => { this.calls.push('stage'); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
      commitUpdate: async (version) => { this.calls.push('commit'); this.previous = this.current; this.current = version; return { currentVersion: this.current, previousVersion: this.previous }; },
      rollbackUpdate: async () => { this.calls.push('rollback'); this.current = this.previous; this.previous = ''; return { currentVersion: this.current, previousVersion: this.previous }; },
      getStatus: async () => ({ currentVersion: this.current, previousVersion: this.previous, stagedVersion: '' }) as KernelServiceStatus,
    } as KernelBridge;
  }
}

let h: OtaHarness;
let service: RolloutService;
before(async () => { ({ h, service } = await openRolloutWorld(['wr-1'], { id: 'wr-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) })); });
after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

it('a device its watchdog already restored reports the previous release, and the control plane takes watchdog_rollback', async () => {
  const fetcher = controlPlaneFetcher(() => h);
  const { noticeOf, deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'wr-rel');
  const kernel = new WatchdogKernel();
  const sent: Report[] = [];
  const { view, notice } = await startFor('wr-1');
  const runner = updateRunnerOn(h, fetcher, sent, { deviceId: 'wr-1', kernel: kernel.bridge(), journal: memoryUpdateJournal() });
  runner.onNotice(notice);
  await runner.idle();
  assert.equal(runner.current?.state, 'health_checking');
  const target = runner.current!.approved!.releaseCounter;
  await deliver('wr-1', sent);
  kernel.watchdogFires();
  runner.onNotice(await noticeOf('wr-1'));
  await runner.idle();
  const health = sent.find((report) => report.event === 'version_report')!;
  assert.deepEqual([health.healthy, health.release_counter], [false, 0], `the previous release (installed: 0), not the target (${target})`);
  assert.notEqual(target, 0);
  assert.deepEqual(kernel.calls, ['stage', 'commit'], 'nothing to roll back: the watchdog did');
  assert.equal(runner.current?.state, 'rolled_back');
  // The version report alone ends the execution: watchdog_rollback goes to rolled_back, health_check_fail to rolling_back.
  await deliver('wr-1', [health]);
  assert.equal(await stateOf(view.id), 'rolled_back');
});
