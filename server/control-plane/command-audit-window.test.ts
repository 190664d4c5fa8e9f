// Issue 17: with a commandAuditWindowMs (a deployment's default), a command's create and
// transitions commit their audit input with their change and ask for one drain within the
// window, shared by every input committed before it fires, instead of awaiting a drain each (at
// 20 commands/s on MySQL, five drains of three round trips per command). Nothing is lost or
// reordered: every input is chained by the window's drain, in record order, and a read of the
// chain through the API drains first, so it never sees the lag. Without a window (the library's
// default) each still awaits its own drain. Both store pairs (sql.js + embedded kv; MySQL + Redis
// with MYSQL_URL and REDIS_URL), the control plane's timers on virtual time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { makeHarness, storePairs, watchAuditDrains, type Harness, type StorePair } from './test-support.js';

const windowMs = 50;
const actor = { name: 'op', role: 'operator' as const };

function suite(pair: StorePair): void {
  describe(`a command's audit inputs drained once per window on ${pair.name}`, () => {
    let h: Harness;
    const time = new VirtualTime(0);
    const device = `caw-${randomBytes(3).toString('hex')}`;
    /** Per store call that chains outbox inputs: how many it chained. */
    const drainCalls: number[] = [];
    const ours = (subject: string, ids: readonly string[]): boolean => ids.some((id) => subject === `command:${id}`);

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { scheduler: time, commandAuditWindowMs: windowMs } });
      watchAuditDrains(h.cp.auditStore, (entries) => drainCalls.push(entries.length));
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const create = async () => (await h.cp.commands.create({ actor, deviceId: device, opcode: 'EXEC_PING_KERNEL', args: {}, ttlMs: 60_000 })).command;

    it('creates and transitions answer before any drain; the window\'s one drain chains all their inputs in record order', async () => {
      drainCalls.length = 0;
      const ids: string[] = [];
      for (let i = 0; i < 3; i += 1) ids.push((await create()).id);
      for (const id of ids) assert.deepEqual(await h.cp.commands.transition(id, 'time_out', h.clock.nowMs()), { applied: true, from: 'queued', to: 'timed_out' });
      const recorded = (await h.db.query<{ subject: string; kind: string }>('SELECT subject, kind FROM audit_outbox ORDER BY id ASC')).filter((row) => ours(row.subject, ids));
      assert.deepEqual(recorded.map((row) => row.kind), ['command.created', 'command.created', 'command.created', 'command.state', 'command.state', 'command.state'],
        'each commit recorded its input with its change');
      assert.deepEqual(drainCalls, [], 'no create or transition awaited a drain');
      assert.equal((await h.cp.auditStore.scan(1, 10_000)).filter((entry) => ours(entry.subject, ids)).length, 0, 'nothing chained yet');

      time.advance(windowMs - 1);
      await h.cp.sweepsSettled();
      assert.deepEqual(drainCalls, [], 'the window has not ended');
      time.advance(1);
      await h.cp.sweepsSettled();
      assert.deepEqual(drainCalls, [recorded.length], 'one drain chained all six');
      const chained = (await h.cp.auditStore.scan(1, 10_000)).filter((entry) => ours(entry.subject, ids));
      assert.deepEqual(chained.map((entry) => [entry.subject, entry.kind]), recorded.map((row) => [row.subject, row.kind]), 'chained in the order recorded');
      assert.equal(await h.cp.auditStore.recordedCount(), 0, 'the outbox is empty');
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('a read of the chain through the API drains first: a command created a moment ago is in /v1/audit and counted by /v1/audit/verify', async () => {
      const name = `caw-admin-${randomBytes(2).toString('hex')}`;
      await h.cp.auth.users.add({ name, role: 'admin', password: 'correct horse battery staple', nowMs: h.clock.nowMs() });
      const { token } = await h.cp.auth.login(name, 'correct horse battery staple');
      const call = async (url: string) => h.cp.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      const before = (await h.cp.context.audit.verify());
      const { id } = await create();
      assert.equal(await h.cp.auditStore.recordedCount(), 1, 'recorded, not chained: the window is open');
      const verify = await call('/v1/audit/verify');
      assert.equal(verify.statusCode, 200, verify.body);
      assert.equal(verify.json().ok, true);
      assert.equal(verify.json().count, (before.ok ? before.count : 0) + 1, 'the verification counted the entry created a moment ago');
      const page = await call('/v1/audit?from_seq=1&limit=500');
      assert.deepEqual(page.json().items.filter((entry: { subject: string }) => entry.subject === `command:${id}`).map((entry: { kind: string }) => entry.kind), ['command.created']);
      // The window's timer still fires; its drain finds nothing left.
      time.advance(windowMs);
      await h.cp.sweepsSettled();
      assert.equal(await h.cp.auditStore.recordedCount(), 0);
    });

    // Last: the control plane stays stopped (the harness's close stops it again, which is a no-op).
    it('stop chains what a window still holds', async () => {
      const { id } = await create();
      assert.equal(await h.cp.auditStore.recordedCount(), 1);
      await h.cp.stop();
      assert.equal(await h.cp.auditStore.recordedCount(), 0, 'chained at stop, not left for the next start');
      assert.deepEqual((await h.cp.auditStore.scan(1, 10_000)).filter((entry) => entry.subject === `command:${id}`).map((entry) => entry.kind), ['command.created']);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) describe('a command\'s audit inputs drained once per window on mysql + redis', { skip: skipped }, () => undefined);
for (const pair of pairs) suite(pair);
