// The agent's update path (agent/ota/update-runner.ts) against a real control plane's image
// repository and rollout coordinator, in one process: the TUF client fetches through the HTTP app
// (inject), the kernel is a small fake whose calls can hang (a crash in the middle of one), the
// journal is in memory and outlives the runner (a restart). What is tested: a crash at a kernel
// call resumes without calling the kernel twice or rolls forward when the call never ran;
// cancellation is seen before the next step, not only at commit; a director document for another
// device is refused with its code and nothing reaches the kernel.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { UpdateRunnerOptions } from '../../agent/ota/update-runner.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { memoryUpdateJournal, type UpdateJournal } from '../../agent/ota/update-journal.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';


/** A kernel that keeps update slots and can be made to hang in a call, before or after it takes effect. */
class FakeKernel {
  current = '1.0.0';
  previous = '';
  staged = '';
  calls: string[] = [];
  hang: { call: 'stage' | 'commit' | 'rollback'; when: 'before' | 'after' } | undefined;

  bridge(): KernelBridge {
    const step = async (call: 'stage' | 'commit' | 'rollback', apply: () => void) => {
      this.calls.push(call);
      if (this.hang?.call === call && this.hang.when === 'before') return new Promise<never>(() => undefined);
      apply();
      if (this.hang?.call === call) return new Promise<never>(() => undefined);
      return undefined;
    };
    return {
      backend: 'mock',
      stageUpdate: async (args) => { await step('stage', () => { this.staged = args.version; }); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
      commitUpdate: async (version) => { await step('commit', () => { this.previous = this.current; this.current = version; this.staged = ''; }); return { currentVersion: this.current, previousVersion: this.previous }; },
      rollbackUpdate: async () => { await step('rollback', () => { this.current = this.previous; this.previous = ''; }); return { currentVersion: this.current, previousVersion: this.previous }; },
      getStatus: async () => ({ currentVersion: this.current, previousVersion: this.previous, stagedVersion: this.staged }) as KernelServiceStatus,
    } as KernelBridge;
  }
}

describe('the agent update runner against a real image repository', () => {
  let h: OtaHarness;
  let service: RolloutService;
  let gateDownload: Promise<void> | undefined;
  /** Flips a byte of every artifact served (a tampered mirror). */
  let tamper = false;

  before(async () => {
    ({ h, service } = await openRolloutWorld(['ur-1', 'ur-2', 'ur-3', 'ur-4', 'ur-5', 'ur-6'], { id: 'ur-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const fetcher = controlPlaneFetcher(() => h, { gate: () => gateDownload, tamper: () => tamper });

  const runnerFor = (deviceId: string, kernel: FakeKernel, journal: UpdateJournal, sent: Report[], extra: Partial<UpdateRunnerOptions> = {}) =>
    updateRunnerOn(h, fetcher, sent, { deviceId, kernel: kernel.bridge(), journal, ...extra });
  const { noticeOf, deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'ur-rel');

  it('a crash after the kernel committed resumes without committing twice, and ends succeeded', async () => {
    const kernel = new FakeKernel();
    const journal = memoryUpdateJournal();
    const sent: Report[] = [];
    const { view, notice } = await startFor('ur-1');
    kernel.hang = { call: 'commit', when: 'after' };
    const first = runnerFor('ur-1', kernel, journal, sent);
    first.onNotice(notice);
    await waitFor(() => kernel.calls.includes('commit'));
    assert.equal((await journal.load()).current?.intent, 'commit', 'the intent was journaled before the kernel call');
    // The process dies here; a new runner starts from the journal with the same kernel.
    kernel.hang = undefined;
    const second = runnerFor('ur-1', kernel, journal, sent);
    await second.recover();
    await second.idle();
    assert.deepEqual(kernel.calls, ['stage', 'commit'], 'COMMIT is not sent again: the kernel says it happened');
    assert.equal(second.current?.state, 'health_checking', 'waits for the control plane\'s nonce');
    await deliver('ur-1', sent);
    assert.equal(await stateOf(view.id), 'health_checking');
    second.onNotice(await noticeOf('ur-1'));
    await second.idle();
    await deliver('ur-1', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
    assert.equal(second.installedReleaseCounter, 1);
  });

  it('a crash before the kernel call ran retries it once and goes on', async () => {
    const kernel = new FakeKernel();
    const journal = memoryUpdateJournal();
    const sent: Report[] = [];
    const { notice } = await startFor('ur-2');
    kernel.hang = { call: 'stage', when: 'before' };
    runnerFor('ur-2', kernel, journal, sent).onNotice(notice);
    await waitFor(() => kernel.calls.includes('stage'));
    kernel.hang = undefined;
    const second = runnerFor('ur-2', kernel, journal, sent);
    await second.recover();
    await second.idle();
    assert.deepEqual(kernel.calls, ['stage', 'stage', 'commit']);
    assert.equal(kernel.current, '2.0.0');
  });

  it('a cancel that arrives during the download stops the update before STAGE', async () => {
    const kernel = new FakeKernel();
    const sent: Report[] = [];
    const { view, notice } = await startFor('ur-3');
    let open!: () => void;
    gateDownload = new Promise((resolve) => { open = resolve; });
    const runner = runnerFor('ur-3', kernel, memoryUpdateJournal(), sent);
    runner.onNotice(notice);
    await waitFor(() => runner.current?.state === 'downloading');
    // The operator's cancel: the control plane moves the execution, then its notice says cancel with its signed state
    // (a cancel the gateway made up is refused: ota-notice-state.test.ts).
    await service.act(view.id, 'emergency_abort', 'olga');
    runner.onNotice(await noticeOf('ur-3'));
    open();
    gateDownload = undefined;
    await runner.idle();
    assert.equal(runner.current?.state, 'canceled');
    assert.deepEqual(kernel.calls, [], 'nothing reached the kernel');
    assert.equal(sent.at(-1)?.event, 'canceled');
    await deliver('ur-3', sent);
    assert.equal(await stateOf(view.id), 'canceled');
  });

  it('a tampered artifact is refused by the TUF client before the kernel sees it, and the execution fails', async () => {
    const kernel = new FakeKernel();
    const sent: Report[] = [];
    const { view, notice } = await startFor('ur-5');
    tamper = true;
    const runner = runnerFor('ur-5', kernel, memoryUpdateJournal(), sent);
    runner.onNotice(notice);
    await runner.idle();
    tamper = false;
    assert.equal(runner.current?.state, 'failed');
    assert.match(sent.at(-1)?.error?.code ?? '', /^TUF_/);
    assert.deepEqual(kernel.calls, []);
    await deliver('ur-5', sent);
    assert.equal(await stateOf(view.id), 'failed');
  });

  it('reports lost on a session that stays up go again while the runner waits, at most resendsMax times, and the rollout goes on', async () => {
    const time = new VirtualTime(0);
    const sent: Report[] = [];
    let lost = true;
    // The frame leaves, the session stays up, and nothing arrives (no acknowledgement says so).
    const dropping: Report[] = [];
    const runner = runnerFor('ur-6', new FakeKernel(), memoryUpdateJournal(), dropping, {
      send: (report) => { if (!lost) sent.push(report); return true; },
      reportResend: { scheduler: time, intervalMs: 10_000, resendsMax: 3 },
    });
    const { view, notice } = await startFor('ur-6');
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking', 'waits for the nonce');
    assert.equal(await stateOf(view.id), 'notified', 'the control plane heard nothing');
    lost = false;
    time.advance(9_999);
    await runner.idle();
    assert.equal(sent.length, 0, 'not before the interval');
    time.advance(1);
    await runner.idle();
    assert.deepEqual(sent.map((r) => r.event), ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'], 'every journaled report, in order');
    await deliver('ur-6', sent);
    assert.equal(await stateOf(view.id), 'health_checking');
    runner.onNotice(await noticeOf('ur-6'));
    await runner.idle();
    await deliver('ur-6', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
    // Ended: only the last report goes again, and the re-sends stop at resendsMax (one was spent above).
    for (let i = 0; i < 5; i++) { time.advance(10_000); await runner.idle(); }
    assert.deepEqual(sent.map((r) => r.event), ['version_report', 'version_report']);
  });

  it('a director document for another device is refused with OTA_DIRECTOR_WRONG_BINDING, and reported', async () => {
    const kernel = new FakeKernel();
    const sent: Report[] = [];
    const { view, notice } = await startFor('ur-4');
    const runner = runnerFor('ur-1', kernel, memoryUpdateJournal(), sent);
    runner.onNotice(notice);
    await runner.idle();
    // Refused with the notice's kernel commands (also for ur-4) before it is journaled (review h1 (OTA), finding 2).
    assert.equal(runner.current, null);
    assert.deepEqual([sent[0]?.event, sent[0]?.error?.code], ['refuse', 'OTA_DIRECTOR_WRONG_BINDING']);
    assert.deepEqual(kernel.calls, []);
    await deliver('ur-4', sent);
    assert.equal(await stateOf(view.id), 'rejected');
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), 'condition not reached');
}
