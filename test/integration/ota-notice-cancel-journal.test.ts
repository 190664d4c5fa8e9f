// The OTA journal's cancel is forward-only (agent/ota/update-runner.ts, withLaterFields): once a
// notice for the execution said cancel, a later notice for it that does not (an unsigned copy a
// gateway relays, which needs no signed state as it asserts nothing) must not write cancel back
// to false in the journaled notice. The runner's own flags (cancelRequested, the in-memory cancel
// ids) never reset, so the update still rolls back either way; what this checks is the journal,
// read after a restart. To reach the journal write at all, the write of the cancel itself fails
// once (a full disk): the runner holds the cancel in memory and takes the copy next.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { memoryUpdateJournal, type UpdateJournalState } from '../../agent/ota/update-journal.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

describe('the journaled OTA cancel is forward-only', () => {
  let h: OtaHarness;
  let service: RolloutService;

  before(async () => {
    ({ h, service } = await openRolloutWorld(['nc-1'], { id: 'nc-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const fetcher = controlPlaneFetcher(() => h);
  const { noticeOf, deliver, startFor } = singleDeviceRollouts(() => h, () => service, 'nc-rel');

  it('an unsigned later notice without cancel does not set the journaled cancel back to false', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const inner = memoryUpdateJournal();
    const written: UpdateJournalState[] = [];
    let failCancelWrite = true;
    const journal = {
      load: () => inner.load(),
      async save(state: UpdateJournalState) {
        if (failCancelWrite && state.current?.cancelRequested === true) {
          failCancelWrite = false;
          throw new Error('ENOSPC: no space left on device');
        }
        written.push(structuredClone(state));
        await inner.save(state);
      },
    };
    const { view, notice } = await startFor('nc-1');
    const runner = updateRunnerOn(h, fetcher, sent, { deviceId: 'nc-1', kernel: slotKernel(calls), journal });
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    await deliver('nc-1', sent);
    // The operator cancels (after the commit: a rollback), signed; then a copy without cancel or nonce, unsigned.
    await service.act(view.id, 'emergency_abort', 'olga');
    const canceled = await noticeOf('nc-1');
    assert.equal(canceled.cancel, true);
    const { notice_state: _state, health_nonce: _nonce, ...rest } = canceled;
    const copy: Notice = { ...rest, cancel: false };
    const before = written.length;
    runner.onNotice(canceled);
    runner.onNotice(copy);
    await runner.idle();
    assert.equal(failCancelWrite, false, 'the cancel\'s own write failed once');
    assert.equal(runner.current?.state, 'rolled_back', 'the runner\'s flag rolled it back');
    assert.deepEqual(calls, ['stage', 'commit', 'rollback']);
    const after = written.slice(before);
    assert.ok(after.length > 0);
    assert.deepEqual(after.map((state) => state.current?.notice.cancel), after.map(() => true), 'every journal write after the cancel keeps it');
    assert.equal((await inner.load()).current?.notice.cancel, true, 'the journal a restart reads says canceled');
    assert.equal((await inner.load()).current?.cancelRequested, true);
  });
});
