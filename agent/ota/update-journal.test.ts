// The OTA journal in files (review h1 (OTA), findings 1 and 11): read with its own limits and a
// shape check, typed AGENT_OTA_JOURNAL_CORRUPT with the parser's code in details when it does not
// load, never overwritten after that, and the anti-rollback floor kept in a file of its own so that
// removing a journal that does not load does not take the floor with it.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { exampleBodies } from '../../core/protocol/messages/examples.js';
import { fileUpdateJournal, updateJournalLimits, type UpdateJournalState } from './update-journal.js';

const dirs: string[] = [];
after(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }); });

function agentDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sdc-ota-journal-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'ota'), { recursive: true });
  return dir;
}

const notice = exampleBodies.OTA_NOTICE;
const inProgress = (installedReleaseCounter: number): UpdateJournalState => ({
  current: {
    executionId: notice.execution_id, notice, state: 'health_checking', intent: null, cancelRequested: false,
    approved: { version: '2.4.0', file: '/targets/x', releaseCounter: 43, rebootRequired: true }, reports: [exampleBodies.OTA_REPORT],
  },
  installedReleaseCounter,
});

const corruptWith = (cause: string, file = 'ota/journal.json') => (error: unknown) => {
  assert.ok(SdcError.is(error, 'AGENT_OTA_JOURNAL_CORRUPT'), String(error));
  assert.deepEqual([error.details?.['cause'], error.details?.['file']], [cause, file]);
  return true;
};

describe('the OTA journal in files', () => {
  it('round-trips an execution in progress, and keeps the floor in floor.json', async () => {
    const dir = agentDir();
    const journal = fileUpdateJournal(dir);
    assert.deepEqual(await journal.load(), { current: null, installedReleaseCounter: 0 });
    await journal.save(inProgress(42));
    assert.deepEqual(await fileUpdateJournal(dir).load(), inProgress(42));
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ota', 'floor.json'), 'utf8')), { installed_release_counter: 42 });
  });

  it('a journal nested past its depth limit is AGENT_OTA_JOURNAL_CORRUPT (PROTO_JSON_TOO_DEEP) and is never overwritten', async () => {
    const dir = agentDir();
    const text = `${'['.repeat(updateJournalLimits.depthMax + 1)}${']'.repeat(updateJournalLimits.depthMax + 1)}`;
    writeFileSync(join(dir, 'ota', 'journal.json'), text);
    const journal = fileUpdateJournal(dir);
    await assert.rejects(journal.load(), corruptWith('PROTO_JSON_TOO_DEEP'));
    await assert.rejects(journal.save({ current: null, installedReleaseCounter: 0 }), corruptWith('PROTO_JSON_TOO_DEEP'));
    // A journal never loaded loads before its first save: the same refusal, nothing written.
    await assert.rejects(fileUpdateJournal(dir).save({ current: null, installedReleaseCounter: 0 }), corruptWith('PROTO_JSON_TOO_DEEP'));
    assert.equal(readFileSync(join(dir, 'ota', 'journal.json'), 'utf8'), text);
  });

  it('a journal of the wrong shape is AGENT_OTA_JOURNAL_CORRUPT (PROTO_SCHEMA_INVALID), and so are bad JSON and deep command arguments', async () => {
    const cases: Array<[unknown, string]> = [
      [{ ...inProgress(1), current: { ...inProgress(1).current!, state: 'bogus' } }, 'PROTO_SCHEMA_INVALID'],
      [{ current: null, installedReleaseCounter: -1 }, 'PROTO_SCHEMA_INVALID'],
      [{ current: null }, 'PROTO_SCHEMA_INVALID'],
      [{ ...inProgress(1), current: { ...inProgress(1).current!, notice: { ...notice, kernel_commands: { ...notice.kernel_commands, rollback: { ...notice.kernel_commands.rollback, args: { x: [[[1]]] } } } } } }, 'PROTO_SCHEMA_INVALID'],
      [{ ...inProgress(1), current: { ...inProgress(1).current!, reports: [{ event: 'nonsense' }] } }, 'PROTO_SCHEMA_INVALID'],
    ];
    for (const [value, cause] of cases) {
      const dir = agentDir();
      writeFileSync(join(dir, 'ota', 'journal.json'), JSON.stringify(value));
      await assert.rejects(fileUpdateJournal(dir).load(), corruptWith(cause));
    }
    const dir = agentDir();
    writeFileSync(join(dir, 'ota', 'journal.json'), '{"current":null,');
    await assert.rejects(fileUpdateJournal(dir).load(), (error: unknown) => SdcError.is(error, 'AGENT_OTA_JOURNAL_CORRUPT') && String(error.details?.['cause']).startsWith('PROTO_'));
  });

  it('the floor survives the journal: the higher of the two wins, and removing a journal that does not load keeps it', async () => {
    const dir = agentDir();
    await fileUpdateJournal(dir).save(inProgress(7));
    // A journal that says less (restored from an older copy) does not lower the floor.
    writeFileSync(join(dir, 'ota', 'journal.json'), JSON.stringify({ current: null, installedReleaseCounter: 3 }));
    assert.equal((await fileUpdateJournal(dir).load()).installedReleaseCounter, 7);
    // One that says more raises it at its next save.
    writeFileSync(join(dir, 'ota', 'journal.json'), JSON.stringify({ current: null, installedReleaseCounter: 9 }));
    const journal = fileUpdateJournal(dir);
    assert.equal((await journal.load()).installedReleaseCounter, 9);
    await journal.save({ current: null, installedReleaseCounter: 9 });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ota', 'floor.json'), 'utf8')), { installed_release_counter: 9 });
    // The journal does not load, the operator removes it: the floor stays.
    writeFileSync(join(dir, 'ota', 'journal.json'), '[');
    await assert.rejects(fileUpdateJournal(dir).load(), corruptWith('PROTO_JSON_SYNTAX'));
    rmSync(join(dir, 'ota', 'journal.json'));
    assert.deepEqual(await fileUpdateJournal(dir).load(), { current: null, installedReleaseCounter: 9 });
  });

  it('a floor file that does not load is AGENT_OTA_JOURNAL_CORRUPT naming ota/floor.json', async () => {
    const dir = agentDir();
    writeFileSync(join(dir, 'ota', 'floor.json'), '{"installed_release_counter":"7"}');
    await assert.rejects(fileUpdateJournal(dir).load(), corruptWith('PROTO_SCHEMA_INVALID', 'ota/floor.json'));
  });
});
