// A crash during the reboot step (review h1 (OTA), finding 3). The runner journals 'rebooting'
// before it reboots and 'health_checking' after; a process that stops in the reboot (which a real
// reboot always does) recovered to 'rebooting', for which the state table has no device step, and
// the update stayed there (the control plane too, until its step timed out). Now recover() takes a
// journal at 'rebooting' as the reboot done: it reports `rebooted`, and the health check follows.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { memoryUpdateJournal } from '../../agent/ota/update-journal.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

/** A kernel keeping its slots across agent processes (the device's, not the agent's). */
class SlotsKernel {
  current = '1.0.0';
  previous = '';
  staged = '';
  readonly calls: string[] = [];
  bridge(): KernelBridge {
    return {
      backend: 'mock',
      stageUpdate: async (args) => { this.calls.push('stage'); this.staged = args.version; return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
      commitUpdate: async (version) => { this.calls.push('commit'); this.previous = this.current; this.current = version; this.staged = ''; return { currentVersion: this.current, previousVersion: this.previous }; },
      rollbackUpdate: async () => { this.calls.push('rollback'); this.current = this.previous; this.previous = ''; return { currentVersion: this.current, previousVersion: this.previous }; },
      getStatus: async () => ({ currentVersion: this.current, previousVersion: this.previous, stagedVersion: this.staged }) as KernelServiceStatus,
    } as KernelBridge;
  }
}

let h: OtaHarness;
let service: RolloutService;
before(async () => { ({ h, service } = await openRolloutWorld(['rc-1'], { id: 'rc-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) })); });
after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

it('an agent that stops in the reboot goes on to the health check after its restart, and the update succeeds', async () => {
  const fetcher = controlPlaneFetcher(() => h);
  const { noticeOf, deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'rc-rel');
  const kernel = new SlotsKernel();
  const journal = memoryUpdateJournal();
  const sent: Report[] = [];
  const { view, notice } = await startFor('rc-1');
  let rebooting!: () => void;
  const rebootCalled = new Promise<void>((resolve) => { rebooting = resolve; });
  // The reboot never returns: this process ends in it.
  const first = updateRunnerOn(h, fetcher, sent, { deviceId: 'rc-1', kernel: kernel.bridge(), journal, reboot: () => { rebooting(); return new Promise<void>(() => undefined); } });
  first.onNotice(notice);
  await rebootCalled;
  assert.equal((await journal.load()).current?.state, 'rebooting');
  assert.deepEqual(kernel.calls, ['stage', 'commit']);
  await deliver('rc-1', sent);
  assert.equal(await stateOf(view.id), 'rebooting');

  const second = updateRunnerOn(h, fetcher, sent, { deviceId: 'rc-1', kernel: kernel.bridge(), journal });
  await second.recover();
  await second.idle();
  assert.equal(second.current?.state, 'health_checking');
  assert.deepEqual(sent.map((report) => report.event), ['rebooted']);
  await deliver('rc-1', sent);
  assert.equal(await stateOf(view.id), 'health_checking', 'the control plane issues the health nonce');
  second.onNotice(await noticeOf('rc-1'));
  await second.idle();
  assert.equal(second.current?.state, 'succeeded');
  await deliver('rc-1', sent);
  assert.equal(await stateOf(view.id), 'succeeded');
  assert.deepEqual(kernel.calls, ['stage', 'commit'], 'nothing staged or committed again');
});
