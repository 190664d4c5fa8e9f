// Issue 16.1 over the real sockets: four loops send logins whose name holds a lone surrogate while
// an operator creates commands that a real agent runs. Every create is answered 201, every
// command has its command.created and one audit entry per state change, and the chain verifies.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { e2eWaitMsMin, pairAgent, rawApi, startE2e, storeTargets, waitOnline, waitTerminal, type CommandRecord, type E2eSystem } from './support/e2e-harness.js';

const loginLoops = 4;
const commandsCount = 24;
/** The body as a hostile client writes it: JSON's \ud800 escape decodes to a lone surrogate. */
const loneSurrogateLogin = '{"name":"\\ud800x","password":"any password at all"}';

/** Every audit entry, page by page (the route returns at most 500 per call). */
async function wholeAudit(system: E2eSystem): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (let page = 0; page < 1_000; page += 1) {
    const { items } = await system.api<{ items: AuditEntry[] }>('GET', `/v1/audit?from_seq=${(entries.at(-1)?.seq ?? 0) + 1}&limit=500`);
    entries.push(...items);
    if (items.length < 500) return entries;
  }
  throw new Error('more audit entries than this test writes');
}

for (const target of storeTargets()) {
  describe(`audit atomicity under lone-surrogate logins on ${target.name} stores`, () => {
    let system: E2eSystem;
    before(async () => {
      system = await startE2e({ target });
    });
    after(async () => {
      await system?.stop();
    });

    it('answers every operator command 201 and audits each with command.created and one entry per state change', async () => {
      const deviceId = `e2e-audit-${system.tag}`;
      await pairAgent(system, deviceId);
      await waitOnline(system, [deviceId]);

      let creating = true;
      const loginAnswers: Array<{ status: number; code: string | undefined }> = [];
      const loop = async (): Promise<void> => {
        while (creating) {
          const answer = await rawApi(system, 'POST', '/v1/auth/login', { body: loneSurrogateLogin });
          loginAnswers.push({ status: answer.status, code: answer.body.error?.code });
        }
      };
      const loops = Array.from({ length: loginLoops }, () => loop());
      const creates = await Promise.all(Array.from({ length: commandsCount }, (_, i) => rawApi(system, 'POST', '/v1/commands', {
        token: system.token, headers: { 'idempotency-key': `audit-${system.tag}-${i}` },
        body: { device_id: deviceId, opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 5 } },
      })));
      creating = false;
      await Promise.all(loops);

      assert.deepEqual(creates.map((c) => c.status), creates.map(() => 201), JSON.stringify(creates.filter((c) => c.status !== 201).map((c) => c.body)));
      // A typed refusal (API_LOGIN_NOT_UNICODE, or the body parser's own code), or the login rate limit; never a 5xx or a canonicalization code.
      assert.ok(loginAnswers.some((a) => a.status === 400), JSON.stringify(loginAnswers.slice(0, 5)));
      for (const answer of loginAnswers) {
        assert.ok((answer.status === 400 || answer.status === 429) && answer.code?.startsWith('API_') === true, JSON.stringify(answer));
      }

      const ids = creates.map((c) => c.body.id as string);
      await Promise.all(ids.map((id) => waitTerminal(system, id, 30_000)));
      // A terminal state can still change once: a late device-signed result refines dead_lettered or
      // unknown (core/protocol/command-machine.ts), with its history row and audit entry in one
      // transaction. So the commands are read before and after the audit, and compared only when
      // no history moved in between (a busy machine makes such late results common).
      // The entry commits with its change in the audit outbox and joins the chain (what /v1/audit
      // reads) just after the commit, or at the periodic drain (5 s) if that settle failed: a read
      // between the two sees the history row before its entry. So the chain may lag, never lead:
      // the reads are repeated until it caught up, and an entry that never comes fails the test.
      const readAll = async (): Promise<CommandRecord[]> => Promise.all(ids.map((id) => system.api<CommandRecord>('GET', `/v1/commands/${id}`)));
      const kindsOf = (entries: readonly AuditEntry[], id: string): string[] => entries.filter((e) => e.subject === `command:${id}`).map((e) => e.kind);
      // Generous (only a chain that never catches up waits it out): at 15 s a busy machine could
      // run out while the 5 s drain was merely late.
      const chainLagWaitMs = e2eWaitMsMin;
      const deadline = Date.now() + chainLagWaitMs;
      let settled: { finals: CommandRecord[]; entries: AuditEntry[] } | undefined;
      for (let caughtUp = false; !caughtUp;) {
        const before = await readAll();
        const entries = await wholeAudit(system);
        const after = await readAll();
        if (!before.every((c, i) => c.history.length === after[i]!.history.length)) {
          if (Date.now() > deadline) break;
          continue;
        }
        settled = { finals: after, entries };
        for (const command of after) {
          assert.ok(kindsOf(entries, command.id).length <= command.history.length, `${command.id}: more entries than state changes`);
        }
        caughtUp = after.every((c) => kindsOf(entries, c.id).length === c.history.length) || Date.now() > deadline;
        if (!caughtUp) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(settled !== undefined, 'the commands kept changing while the audit was read');
      const { finals, entries } = settled;
      for (const command of finals) {
        const kinds = kindsOf(entries, command.id);
        assert.equal(kinds[0], 'command.created', `${command.id}: ${kinds.join(',')}`);
        assert.equal(kinds.length, command.history.length, `${command.id}: ${kinds.join(',')} for ${command.history.map((h) => h.state).join(',')}`);
      }
      const verdict = await system.api<{ ok: boolean }>('GET', '/v1/audit/verify');
      assert.equal(verdict.ok, true, JSON.stringify(verdict));
    });
  });
}
