import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { MemoryCommandJournal, type CommandJournal } from './command-journal.js';
import { FileCommandJournal } from './command-journal-file.js';
import { runJournalContract, testCommand, testResult } from './command-journal-contract.js';

runJournalContract('memory', {
  create: async (limits) => new MemoryCommandJournal(limits),
  reopen: async (journal) => {
    await journal.close();
    return (journal as MemoryCommandJournal).reopen();
  },
});

const tempDirs: string[] = [];
// A hook, not a test: removing the files proves nothing, and a hook runs even after a failure.
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});
async function tempPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-journal-'));
  tempDirs.push(dir);
  return join(dir, 'state', 'journal.jsonl');
}
const paths = new WeakMap<CommandJournal, string>();

runJournalContract('file', {
  create: async (limits) => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path, ...limits });
    paths.set(journal, path);
    return journal;
  },
  reopen: async (journal, limits) => {
    await journal.close();
    const path = paths.get(journal)!;
    const reopened = await FileCommandJournal.open({ path, ...limits });
    paths.set(reopened, path);
    return reopened;
  },
});

describe('file command journal', () => {
  // Security review 2026-12-05, finding 7: a missing file means the record of what ran is gone.
  // Review h8, finding 3: its floor is not the device's clock at creation but pending until the
  // agent's first session records it (settleIssuedFloor, agent-core #settleIssuedFloor).
  it('a file created where none was has its issued floor pending, kept across reopening and compaction, until settleIssuedFloor records it; an existing file gets none', async () => {
    const path = await tempPath();
    let created = 0;
    const journal = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true, onCreated: () => { created += 1; }, compactionRecords: 4 });
    assert.equal(created, 1);
    assert.equal(journal.issuedFloorPending(), true);
    assert.equal(journal.issuedFloorMs(), 0);
    await journal.close();
    // Restarted before any session: still pending (the file exists now, so nothing would mark it again).
    const restarted = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true, onCreated: () => { created += 1; } });
    assert.equal(created, 1);
    assert.equal(restarted.issuedFloorPending(), true);
    assert.equal(await restarted.settleIssuedFloor(1_700_000_000_000), true);
    assert.equal(restarted.issuedFloorPending(), false);
    assert.equal(restarted.issuedFloorMs(), 1_700_000_000_000);
    assert.equal(await restarted.settleIssuedFloor(1_700_000_500_000), false, 'a floor in the past stands');
    await restarted.close();
    const compacting = await FileCommandJournal.open({ path, compactionRecords: 4 });
    for (const seq of [95, 96, 97]) {
      const command = testCommand(seq);
      await compacting.received(command);
      await compacting.executing(command.id);
      await compacting.finished(command.id, testResult(command));
    }
    await compacting.close();
    const reopened = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true });
    assert.equal(reopened.issuedFloorMs(), 1_700_000_000_000, 'kept across compaction');
    assert.equal(reopened.issuedFloorPending(), false);
    // A floor later than now (an older file's, taken on a clock that ran ahead) is lowered to now.
    assert.equal(await reopened.settleIssuedFloor(1_600_000_000_000), true);
    assert.equal(reopened.issuedFloorMs(), 1_600_000_000_000);
    await reopened.close();
    const durable = await FileCommandJournal.open({ path });
    assert.equal(durable.issuedFloorMs(), 1_600_000_000_000, 'durable');
    await durable.close();
    // Lost again (deleted, an older image): pending again; the seq record went with the file.
    await rm(path);
    const again = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true });
    assert.equal(again.issuedFloorPending(), true);
    assert.equal(again.isSeqDone(97), false, 'the seq record went with the file: the floor is what stands');
    await again.close();
    // Without issuedFloorWhenCreated a missing file starts with no floor, as before.
    const plain = await FileCommandJournal.open({ path: await tempPath() });
    assert.equal(plain.issuedFloorMs(), 0);
    assert.equal(plain.issuedFloorPending(), false);
    assert.equal(await plain.settleIssuedFloor(1_700_000_000_000), false);
    await plain.close();
  });

  it('creates the file 0600 in a 0700 directory', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(path, '..'))).mode & 0o777, 0o700);
    await journal.close();
  });

  it('drops a torn last line (no newline) and keeps everything before it', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1));
    await journal.executing('cmd-1');
    await journal.close();
    await appendFile(path, '{"r":"finished","id":"cmd-1","res');
    let torn = 0;
    const reopened = await FileCommandJournal.open({ path, onTornTail: (bytes) => { torn = bytes; } });
    assert.ok(torn > 0);
    assert.equal(reopened.get('cmd-1')?.stage, 'executing');
    // The tail is gone from the file: the next append starts on a clean line.
    await reopened.finished('cmd-1', testResult(testCommand(1)));
    await reopened.close();
    const again = await FileCommandJournal.open({ path });
    assert.equal(again.get('cmd-1')?.stage, 'finished');
    await again.close();
  });

  it('drops a garbage last line that does end in a newline', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1));
    await journal.close();
    await appendFile(path, '\u0000\u0000\u0000\n');
    const reopened = await FileCommandJournal.open({ path });
    assert.equal(reopened.get('cmd-1')?.stage, 'received');
    await reopened.close();
  });

  it('keeps a received command whose stored traceparent was altered on disk, without the trace', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    await journal.received(testCommand(2));
    await journal.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    const altered = lines.map((line) => line.replace('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x'.repeat(600)));
    assert.notDeepEqual(altered, lines, 'the trace was on disk');
    await writeFile(path, altered.join('\n'));
    const reopened = await FileCommandJournal.open({ path });
    assert.equal(reopened.get('cmd-1')?.stage, 'received');
    assert.equal(reopened.get('cmd-1')?.traceparent, undefined);
    assert.equal(reopened.get('cmd-2')?.stage, 'received');
    await reopened.close();
  });

  it('refuses a damaged line before the last one', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1));
    await journal.received(testCommand(2));
    await journal.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[1] = 'not json';
    await writeFile(path, lines.join('\n'));
    await assert.rejects(FileCommandJournal.open({ path }), (e: unknown) => SdcError.is(e) && e.code === 'AGENT_JOURNAL_CORRUPT');
  });

  it('compacts: the file stays bounded and the state survives', async () => {
    const path = await tempPath();
    const limits = { finishedRetain: 4, unfinishedMax: 4, compactionRecords: 40 };
    const journal = await FileCommandJournal.open({ path, ...limits });
    for (let seq = 1; seq <= 60; seq++) {
      const command = testCommand(seq);
      await journal.received(command);
      await journal.executing(command.id);
      await journal.finished(command.id, testResult(command));
      await journal.confirmed([command.id]);
    }
    const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 0);
    assert.ok(lines.length < 40, `file has ${lines.length} records`);
    const before = journal.entries();
    await journal.close();
    const reopened = await FileCommandJournal.open({ path, ...limits });
    assert.deepEqual(reopened.entries(), before);
    assert.equal(reopened.highestExecutedSeq(), 60);
    await reopened.close();
  });

  it('a crash at any byte of the last append loses at most that record (property)', async () => {
    const path = await tempPath();
    const journal = await FileCommandJournal.open({ path });
    await journal.received(testCommand(1));
    await journal.executing('cmd-1');
    await journal.received(testCommand(2));
    await journal.close();
    const full = await readFile(path, 'utf8');
    const lastStart = full.lastIndexOf('\n', full.length - 2) + 1;
    await fc.assert(fc.asyncProperty(fc.integer({ min: lastStart, max: full.length }), async (cut) => {
      await writeFile(path, full.slice(0, cut));
      const reopened = await FileCommandJournal.open({ path });
      assert.equal(reopened.get('cmd-1')?.stage, 'executing');
      assert.equal(reopened.get('cmd-2')?.stage, cut === full.length ? 'received' : undefined);
      await reopened.close();
    }), { numRuns: 60 });
  });
});
