import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { CommandJournal, CommandResultBody, JournalLimits } from './command-journal.js';

export interface JournalContractTarget {
  /** A fresh, empty journal with these limits. */
  create(limits: Partial<JournalLimits>): Promise<CommandJournal>;
  /** Closes `journal` and opens it again over the same durable state (a restart). */
  reopen(journal: CommandJournal, limits: Partial<JournalLimits>): Promise<CommandJournal>;
}

export function testCommand(seq: number, id = `cmd-${seq}`): SignedCommand {
  return {
    id, device_id: 'dev-1', opcode: 'EXEC_PING_KERNEL', args: {}, issued_at: 1_000, expires_at: 61_000,
    device_seq: seq, issuer: 'test', sig: { alg: 'Ed25519', kid: 'cp:test', value: 'A'.repeat(86) },
  };
}

export function testResult(command: SignedCommand, status: CommandResultBody['status'] = 'succeeded'): CommandResultBody {
  return { command_id: command.id, device_seq: command.device_seq, status, output: { n: command.device_seq }, finished_at: 2_000 };
}

function isCode(code: string): (error: unknown) => boolean {
  return (error) => SdcError.is(error) && error.code === code;
}

/** The behaviour every CommandJournal must have; memory and file both run it. */
export function runJournalContract(name: string, target: JournalContractTarget): void {
  describe(`CommandJournal contract: ${name}`, () => {
    it('walks a command through received, executing, finished, confirmed', async () => {
      const journal = await target.create({});
      const command = testCommand(1);
      await journal.received(command);
      assert.equal(journal.get(command.id)?.stage, 'received');
      assert.equal(journal.highestExecutedSeq(), 0);
      await journal.executing(command.id);
      assert.equal(journal.get(command.id)?.stage, 'executing');
      assert.equal(journal.highestExecutedSeq(), 1);
      await journal.finished(command.id, testResult(command));
      assert.deepEqual(journal.get(command.id)?.result, testResult(command));
      assert.equal(journal.get(command.id)?.confirmed, false);
      await journal.confirmed([command.id]);
      assert.equal(journal.get(command.id)?.confirmed, true);
      await journal.close();
    });

    it('refuses illegal transitions without changing state', async () => {
      const journal = await target.create({});
      const command = testCommand(1);
      await assert.rejects(journal.executing(command.id), isCode('AGENT_JOURNAL_CORRUPT'));
      await journal.received(command);
      await assert.rejects(journal.received(command), isCode('AGENT_JOURNAL_CORRUPT'));
      await journal.finished(command.id, testResult(command, 'failed'));
      await assert.rejects(journal.executing(command.id), isCode('AGENT_JOURNAL_CORRUPT'));
      await assert.rejects(journal.finished(command.id, testResult(command)), isCode('AGENT_JOURNAL_CORRUPT'));
      assert.equal(journal.get(command.id)?.result?.status, 'failed');
      await journal.close();
    });

    it('refuses a command when unfinishedMax are open, and takes it once one finishes', async () => {
      const journal = await target.create({ unfinishedMax: 2 });
      await journal.received(testCommand(1));
      await journal.received(testCommand(2));
      await assert.rejects(journal.received(testCommand(3)), isCode('AGENT_JOURNAL_FULL'));
      assert.equal(journal.get('cmd-3'), undefined);
      await journal.finished('cmd-1', testResult(testCommand(1)));
      await journal.received(testCommand(3));
      assert.deepEqual(journal.entries().map((e) => e.command.id), ['cmd-1', 'cmd-2', 'cmd-3']);
      await journal.close();
    });

    it('keeps finishedRetain finished entries, dropping the oldest confirmed first, and keeps the watermark', async () => {
      const limits = { finishedRetain: 3, unfinishedMax: 8 };
      let journal = await target.create(limits);
      for (let seq = 1; seq <= 6; seq++) {
        const command = testCommand(seq);
        await journal.received(command);
        await journal.executing(command.id);
        await journal.finished(command.id, testResult(command));
        // Odd commands are confirmed; even ones stay unconfirmed and must outlive them.
        if (seq % 2 === 1) await journal.confirmed([command.id]);
      }
      assert.deepEqual(journal.entries().map((e) => e.command.id), ['cmd-2', 'cmd-4', 'cmd-6']);
      for (let seq = 7; seq <= 10; seq++) {
        const command = testCommand(seq);
        await journal.received(command);
        await journal.finished(command.id, testResult(command));
      }
      // Past twice the retention, unconfirmed entries go too, oldest first: the bound always holds.
      assert.deepEqual(journal.entries().map((e) => e.command.id), ['cmd-4', 'cmd-6', 'cmd-7', 'cmd-8', 'cmd-9', 'cmd-10']);
      journal = await target.reopen(journal, limits);
      assert.deepEqual(journal.entries().map((e) => e.command.id), ['cmd-4', 'cmd-6', 'cmd-7', 'cmd-8', 'cmd-9', 'cmd-10']);
      assert.equal(journal.highestExecutedSeq(), 6);
      await journal.close();
    });

    it('keeps every stage across a restart', async () => {
      let journal = await target.create({});
      const [a, b, c, d] = [testCommand(1), testCommand(2), testCommand(3), testCommand(4)];
      await journal.received(a);
      await journal.received(b);
      await journal.executing(b.id);
      await journal.received(c);
      await journal.executing(c.id);
      await journal.finished(c.id, testResult(c));
      await journal.received(d);
      await journal.executing(d.id);
      await journal.finished(d.id, testResult(d));
      await journal.confirmed([d.id]);
      const before = journal.entries();
      journal = await target.reopen(journal, {});
      assert.deepEqual(journal.entries(), before);
      assert.deepEqual(journal.entries().map((e) => [e.command.id, e.stage, e.confirmed]), [
        ['cmd-1', 'received', false], ['cmd-2', 'executing', false], ['cmd-3', 'finished', false], ['cmd-4', 'finished', true],
      ]);
      assert.equal(journal.highestExecutedSeq(), 4);
      await journal.close();
    });

    it('knows which seqs have run, out of order too, across compaction and restarts', async () => {
      const limits = { finishedRetain: 1 };
      let journal = await target.create(limits);
      const run = async (seq: number) => {
        const command = testCommand(seq);
        await journal.received(command);
        await journal.executing(command.id);
        await journal.finished(command.id, testResult(command));
        await journal.confirmed([command.id]);
      };
      for (const seq of [1, 2, 5, 7]) await run(seq);
      const doneNow = () => [1, 2, 3, 4, 5, 6, 7, 8].filter((seq) => journal.isSeqDone(seq));
      assert.deepEqual(doneNow(), [1, 2, 5, 7], 'gaps below the highest stay open');
      assert.equal(journal.highestExecutedSeq(), 7);
      journal = await target.reopen(journal, limits);
      assert.deepEqual(doneNow(), [1, 2, 5, 7], 'compaction and reopen keep the run seqs, not only entries');
      await run(3);
      await run(4);
      assert.deepEqual(doneNow(), [1, 2, 3, 4, 5, 7]);
      journal = await target.reopen(journal, limits);
      assert.deepEqual(doneNow(), [1, 2, 3, 4, 5, 7]);
      await journal.close();
    });

    it("keeps a command's traceparent across a restart, and drops one that is not a traceparent", async () => {
      const traced = testCommand(1);
      const untraced = testCommand(2);
      const forged = testCommand(3);
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      let journal = await target.create({});
      await journal.received(traced, traceparent);
      await journal.received(untraced);
      await journal.received(forged, 'not a traceparent');
      assert.equal(journal.get(traced.id)?.traceparent, traceparent);
      journal = await target.reopen(journal, {});
      assert.equal(journal.get(traced.id)?.traceparent, traceparent, 'a recovered command keeps its trace');
      assert.equal(journal.get(untraced.id)?.traceparent, undefined);
      assert.equal(journal.get(forged.id)?.traceparent, undefined);
      assert.equal(journal.get(forged.id)?.stage, 'received', 'the command itself is kept');
      await journal.close();
    });

    it('refuses mutations after close', async () => {
      const journal = await target.create({});
      await journal.close();
      await assert.rejects(journal.received(testCommand(1)), isCode('AGENT_STATE_INVALID'));
    });
  });
}
