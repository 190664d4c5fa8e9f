import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { MemoryCommandJournal, type CommandJournal } from './command-journal.js';
import { FileCommandJournal, type JournalFile, type JournalFiles } from './command-journal-file.js';
import { writeFileAtomic } from '../runtime/atomic-file.js';
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

/** Faults to inject, each counted down by the call it fails. */
interface Faults { halfAppends: number; truncates: number; atomicWrites: number }

/** Node's files, except that the next `faults` calls fail as a full disk would. */
function faultyFiles(faults: Faults): JournalFiles {
  const full = () => Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  return {
    openForAppend: async (path) => {
      const real = await open(path, 'a', 0o600);
      const file: JournalFile = {
        appendFile: async (data) => {
          if (faults.halfAppends === 0) return real.appendFile(data);
          faults.halfAppends -= 1;
          // What a full disk does: part of the record reaches the file, then the write fails.
          await real.appendFile(data.subarray(0, Math.floor(data.length / 2)));
          throw full();
        },
        sync: () => real.sync(),
        truncate: async (bytes) => {
          if (faults.truncates === 0) return real.truncate(bytes);
          faults.truncates -= 1;
          throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        },
        stat: () => real.stat(),
        close: () => real.close(),
      };
      return file;
    },
    writeAtomic: async (path, text) => {
      if (faults.atomicWrites === 0) return writeFileAtomic(path, text, { mode: 0o600 });
      faults.atomicWrites -= 1;
      throw full();
    },
  };
}

const hasCode = (code: string) => (e: unknown) => SdcError.is(e) && e.code === code;

describe('file command journal: failed writes and its size bound (review h16)', () => {
  it('refuses a size bound that leaves no room for entries, AGENT_STATE_INVALID, before it touches the disk', async () => {
    const path = await tempPath();
    await assert.rejects(FileCommandJournal.open({ path, fileBytesMax: 1024 }), hasCode('AGENT_STATE_INVALID'));
    await assert.rejects(stat(path), (error: NodeJS.ErrnoException) => error.code === 'ENOENT');
  });
  it('a failed append is cut off: the next record is durable on its own line and a command that reached executing never runs again', async () => {
    const path = await tempPath();
    const faults = { halfAppends: 0, truncates: 0, atomicWrites: 0 };
    const journal = await FileCommandJournal.open({ path, files: faultyFiles(faults) });
    await journal.received(testCommand(2));
    faults.halfAppends = 1;
    await assert.rejects(journal.received(testCommand(3)), hasCode('AGENT_JOURNAL_WRITE_FAILED'));
    assert.equal(journal.get('cmd-3'), undefined, 'memory never runs ahead of the disk');
    await journal.executing('cmd-2');
    await journal.received(testCommand(4));
    await journal.close();
    let torn = 0;
    const reopened = await FileCommandJournal.open({ path, onTornTail: (bytes) => { torn = bytes; } });
    assert.equal(torn, 0, 'nothing of the failed write is left');
    assert.equal(reopened.get('cmd-2')?.stage, 'executing');
    assert.equal(reopened.isSeqDone(2), true, 'recovery reports it interrupted, never runs it again');
    assert.equal(reopened.get('cmd-3'), undefined);
    assert.equal(reopened.get('cmd-4')?.stage, 'received');
    await reopened.close();
  });

  it('a failed append that cannot be cut off closes the journal for good (AGENT_JOURNAL_UNUSABLE); a restart drops the partial record', async () => {
    const path = await tempPath();
    const faults = { halfAppends: 1, truncates: 1, atomicWrites: 0 };
    const journal = await FileCommandJournal.open({ path, files: faultyFiles(faults) });
    await assert.rejects(journal.received(testCommand(1)), hasCode('AGENT_JOURNAL_UNUSABLE'));
    // Were it to append now, the next record would join the partial one on a line a crash leaves torn.
    await assert.rejects(journal.received(testCommand(2)), hasCode('AGENT_JOURNAL_UNUSABLE'));
    await journal.close();
    let torn = 0;
    const reopened = await FileCommandJournal.open({ path, onTornTail: (bytes) => { torn = bytes; } });
    assert.ok(torn > 0);
    assert.deepEqual(reopened.entries(), []);
    await reopened.received(testCommand(2));
    await reopened.close();
  });

  it('a failed compaction keeps the journal open on the old file: the record that triggered it and the next ones are durable, and it is tried again later', async () => {
    const path = await tempPath();
    const faults = { halfAppends: 0, truncates: 0, atomicWrites: 0 };
    const failures: string[] = [];
    const options = { path, compactionRecords: 8, finishedRetain: 1, files: faultyFiles(faults), onCompactionFailed: (e: SdcError) => { failures.push(e.code); } };
    const journal = await FileCommandJournal.open(options);
    faults.atomicWrites = 1;
    for (let seq = 1; seq <= 3; seq++) {
      const command = testCommand(seq);
      await journal.received(command);
      await journal.executing(command.id);
      await journal.finished(command.id, testResult(command));
    }
    assert.deepEqual(failures, ['AGENT_JOURNAL_WRITE_FAILED']);
    await journal.received(testCommand(4));
    // Retried after compactionRetryRecords (64) more records: the file shrinks again.
    for (let seq = 5; seq <= 30; seq++) {
      const command = testCommand(seq);
      await journal.received(command);
      await journal.executing(command.id);
      await journal.finished(command.id, testResult(command));
    }
    const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 0);
    assert.ok(lines.length < 40, `file has ${lines.length} records`);
    const before = journal.entries();
    await journal.close();
    const reopened = await FileCommandJournal.open({ path, finishedRetain: 1 });
    assert.deepEqual(reopened.entries(), before);
    assert.equal(reopened.get('cmd-4')?.stage, 'received');
    assert.deepEqual([1, 2, 3, 5, 30].map((seq) => reopened.isSeqDone(seq)), [true, true, true, true, true]);
    await reopened.close();
  });

  it('the file stays within fileBytesMax with large unconfirmed results, and reopens', async () => {
    const path = await tempPath();
    const fileBytesMax = 512 * 1024;
    let journal = await FileCommandJournal.open({ path, fileBytesMax });
    const bigResult = (seq: number) => ({ ...testResult(testCommand(seq)), output: { processes: 'p'.repeat(2_000) } });
    let largest = 0;
    for (let seq = 1; seq <= 300; seq++) {
      const command = testCommand(seq);
      await journal.received(command);
      await journal.executing(command.id);
      await journal.finished(command.id, bigResult(seq));
      largest = Math.max(largest, (await stat(path)).size);
    }
    assert.ok(largest <= fileBytesMax, `the file reached ${largest} bytes`);
    const before = journal.entries();
    assert.ok(before.length < 300 && before.length > 10, `${before.length} entries kept`);
    assert.deepEqual(before.at(-1)?.result, bigResult(300), 'the oldest results go first');
    journal = await (async () => { await journal.close(); return FileCommandJournal.open({ path, fileBytesMax }); })();
    assert.deepEqual(journal.entries(), before);
    assert.equal(journal.isSeqDone(1), true, 'a dropped entry still counts as run');
    // One command larger than what unfinished commands may take is back-pressure, not a write.
    const huge = { ...testCommand(301), args: { pad: 'x'.repeat(fileBytesMax / 8) } };
    await assert.rejects(journal.received(huge), hasCode('AGENT_JOURNAL_FULL'));
    await journal.close();
  });
});
