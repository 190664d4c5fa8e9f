// An OTA journal that does not load (review h1 (OTA), findings 1 and 11). Before, recover()
// rejected with the parser's raw code (PROTO_JSON_TOO_DEEP), agent-runtime only logged it, and the
// runner went on with no execution and an installed release counter of 0: the next notice was
// taken, its first save overwrote the journal, and the anti-rollback floor was gone for good (a
// committed update in the lost journal was never health-checked or rolled back either). Now the
// failure is AGENT_OTA_JOURNAL_CORRUPT with the parser's code in details, the runner refuses every
// new execution (AGENT_OTA_JOURNAL_UNUSABLE, reported `refuse`) without writing, and the floor,
// kept in ota/floor.json beside the journal, survives the operator's removal of the journal.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { fileUpdateJournal, updateJournalLimits } from '../../agent/ota/update-journal.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

describe('an OTA journal that does not load', () => {
  let h: OtaHarness;
  let service: RolloutService;
  const dirs: string[] = [];

  before(async () => {
    ({ h, service } = await openRolloutWorld(['ju-1', 'ju-2'], { id: 'ju-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const { deliver, noticeOf, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'ju-rel');
  const fetcher = controlPlaneFetcher(() => h);
  const agentDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-ju-'));
    dirs.push(dir);
    return dir;
  };
  const tooDeep = `{"current":${'['.repeat(updateJournalLimits.depthMax)}${']'.repeat(updateJournalLimits.depthMax)},"installedReleaseCounter":0}`;

  it('makes the runner refuse new executions, typed, without a kernel call or a write', async () => {
    const dir = agentDir();
    const path = join(dir, 'ota', 'journal.json');
    await fileUpdateJournal(dir).save({ current: null, installedReleaseCounter: 0 });
    writeFileSync(path, tooDeep);
    const calls: string[] = [];
    const sent: Report[] = [];
    const runner = updateRunnerOn(h, fetcher, sent, { deviceId: 'ju-2', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    await assert.rejects(runner.recover(), (error: unknown) => SdcError.is(error, 'AGENT_OTA_JOURNAL_CORRUPT') && error.details?.['cause'] === 'PROTO_JSON_TOO_DEEP');
    assert.equal(runner.journalFailure?.code, 'AGENT_OTA_JOURNAL_CORRUPT');
    const { view, notice } = await startFor('ju-2');
    runner.onNotice(notice);
    await runner.idle();
    assert.deepEqual(sent.map((report) => `${report.event}:${report.error?.code ?? ''}`), ['refuse:AGENT_OTA_JOURNAL_UNUSABLE']);
    assert.match(sent[0]!.error!.message, /PROTO_JSON_TOO_DEEP/);
    assert.deepEqual(calls, []);
    assert.equal(runner.current, null);
    assert.equal(readFileSync(path, 'utf8'), tooDeep, 'the journal is not overwritten');
    await deliver('ju-2', sent);
    assert.equal(await stateOf(view.id), 'rejected');
  });

  it('keeps the installed release counter when the operator removes it', async () => {
    const dir = agentDir();
    const sent: Report[] = [];
    const calls: string[] = [];
    const first = updateRunnerOn(h, fetcher, sent, { deviceId: 'ju-1', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    await first.recover();
    const { view, notice } = await startFor('ju-1');
    first.onNotice(notice);
    await first.idle();
    await deliver('ju-1', sent);
    first.onNotice(await noticeOf('ju-1'));
    await first.idle();
    await deliver('ju-1', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
    const floor = first.installedReleaseCounter;
    assert.ok(floor > 0);
    // The journal becomes unreadable; the agent restarts and refuses; the operator removes the journal.
    writeFileSync(join(dir, 'ota', 'journal.json'), tooDeep);
    const second = updateRunnerOn(h, fetcher, sent, { deviceId: 'ju-1', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    await assert.rejects(second.recover(), (error: unknown) => SdcError.is(error, 'AGENT_OTA_JOURNAL_CORRUPT'));
    rmSync(join(dir, 'ota', 'journal.json'));
    const third = updateRunnerOn(h, fetcher, sent, { deviceId: 'ju-1', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    await third.recover();
    assert.equal(third.journalFailure, undefined);
    assert.equal(third.installedReleaseCounter, floor, 'the anti-rollback floor survives the journal');
  });
});
