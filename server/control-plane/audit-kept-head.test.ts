// Security review 2026-12-05, finding 6: GET /v1/audit/verify could not check against a head the
// operator kept, so a removed tail, or a chain rewritten whole with every hash recomputed, checked
// as valid. With head_seq/head_hash the chain must still reach the kept seq with the same hash;
// the answer names the current head to keep. Both store pairs (sql.js + embedded kv; MySQL +
// Redis with MYSQL_URL and REDIS_URL).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { auditEntryHash } from '../../core/protocol/audit-chain.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest());
const password = 'correct horse battery staple';

interface VerifyAnswer {
  ok: boolean; count?: number; headSeq?: number; headHash?: string; firstBrokenSeq?: number; reason?: string; detail?: string;
  head: { seq: number; hash: string } | null; keptHead?: { seq: number; hash: string };
}

function suite(pair: StorePair): void {
  describe(`audit verification against a kept head on ${pair.name}`, () => {
    let h: Harness;
    let token: string;
    const verify = async (query = '') => {
      const answer = await h.cp.app.inject({ method: 'GET', url: `/v1/audit/verify${query}`, headers: { authorization: `Bearer ${token}` } });
      return { status: answer.statusCode, body: answer.json() as VerifyAnswer & { error?: { code: string } } };
    };
    const addUsers = async (count: number) => {
      // Through the API: each is audited (user.created).
      for (let i = 0; i < count; i += 1) {
        const answer = await h.cp.app.inject({
          method: 'POST', url: '/v1/users', headers: { authorization: `Bearer ${token}` }, payload: { name: `akh-${randomBytes(3).toString('hex')}`, role: 'viewer', password },
        });
        assert.equal(answer.statusCode, 201, answer.body);
      }
    };

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      const admin = `akh-admin-${randomBytes(2).toString('hex')}`;
      await h.cp.auth.users.add({ name: admin, role: 'admin', password, nowMs: h.clock.nowMs() });
      token = (await h.cp.auth.login(admin, password)).token;
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('answers the current head; the chain grown past a kept head still verifies against it', async () => {
      await addUsers(3);
      const first = await verify();
      assert.equal(first.status, 200);
      assert.equal(first.body.ok, true);
      assert.ok(first.body.head !== null);
      assert.deepEqual(first.body.head, { seq: first.body.headSeq, hash: first.body.headHash });
      const kept = first.body.head;
      await addUsers(2);
      const later = await verify(`?head_seq=${kept.seq}&head_hash=${kept.hash}`);
      assert.equal(later.status, 200);
      assert.equal(later.body.ok, true, later.body.detail);
      assert.deepEqual(later.body.keptHead, kept);
      assert.ok(later.body.head!.seq > kept.seq);
    });

    it('refuses half a kept head and a malformed one (API_VALIDATION)', async () => {
      for (const query of ['?head_seq=3', `?head_hash=${'a'.repeat(64)}`, `?head_seq=0&head_hash=${'a'.repeat(64)}`, '?head_seq=3&head_hash=XYZ']) {
        const answer = await verify(query);
        assert.equal(answer.status, 400, query);
        assert.equal(answer.body.error?.code, 'API_VALIDATION', query);
      }
    });

    it('a chain rewritten whole (every hash recomputed) verifies alone, and not against the kept head', async () => {
      const kept = (await verify()).body.head!;
      // The writer's rewrite: entry 2's actor changed, and every hash from there on recomputed,
      // so the chain is internally valid.
      const entries = await h.cp.auditStore.scan(1, 10_000);
      let prevHash = entries[0]!.hash;
      for (const entry of entries.slice(1)) {
        const changed = { ...entry, actor: entry.seq === 2 ? 'user:mallory' : entry.actor, prev_hash: prevHash };
        const hash = auditEntryHash(changed, sha256);
        await h.db.execute('UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?', [changed.actor, prevHash, hash, entry.seq]);
        prevHash = hash;
      }
      const alone = await verify();
      assert.equal(alone.body.ok, true, 'without a kept head the rewrite is not visible');
      const against = await verify(`?head_seq=${kept.seq}&head_hash=${kept.hash}`);
      assert.equal(against.status, 200);
      assert.equal(against.body.ok, false);
      assert.equal(against.body.reason, 'head_mismatch');
      assert.equal(against.body.firstBrokenSeq, kept.seq);
      assert.match(against.body.detail!, /rewritten/);
      assert.deepEqual(against.body.head, { seq: kept.seq, hash: prevHash }, 'the answer names the head the store holds now');
    });

    it('a removed tail verifies alone, and not against the kept head', async () => {
      const kept = (await verify()).body.head!;
      await h.db.execute('DELETE FROM audit_log WHERE seq > ?', [kept.seq - 2]);
      const alone = await verify();
      assert.equal(alone.body.ok, true, 'without a kept head the shorter chain is valid');
      assert.equal(alone.body.headSeq, kept.seq - 2);
      const against = await verify(`?head_seq=${kept.seq}&head_hash=${kept.hash}`);
      assert.equal(against.body.ok, false);
      assert.equal(against.body.reason, 'head_mismatch');
      assert.equal(against.body.firstBrokenSeq, kept.seq - 1);
      assert.match(against.body.detail!, /tail was removed/);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('audit verification against a kept head on mysql + redis', { skip: skipped }, () => {});
