import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { makeHarness, storePairs, type Harness } from './test-support.js';

/**
 * The users store's changes behind `sdc user remove|set-role|passwd`: the last admin stays, also
 * when two admins demote each other at once, and a password is hashed as `add` hashes it. On
 * sql.js and, with MYSQL_URL and REDIS_URL, on MySQL (a database of its own per run).
 */
const { pairs, skipped } = storePairs();
if (skipped) it(`users store on MySQL: skipped (${skipped})`, { skip: skipped }, () => undefined);

const refusedWith = (code: string) => (error: unknown) => SdcError.is(error) && error.code === code;

for (const pair of pairs) {
  describe(`users store (${pair.name})`, () => {
    let h: Harness;
    const add = (name: string, role: string) => h.cp.auth.users.add({ name, role, password: `${name} password 1`, nowMs: h.clock.nowMs() });

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv ? { kv: pair.kv } : {});
    });
    after(async () => {
      await h?.close();
      await pair.sql.cleanup();
    });

    it('a hash of a lower cost than new hashes get is replaced at the next successful login, and still verifies until then', async () => {
      await add('olda', 'viewer');
      const { hashPassword, verifyPassword } = await import('./passwords.js');
      const { systemRandom } = await import('../../runtime/system.js');
      // The harness hashes with N = 1024; a hash made with N = 512 stands for one made before the cost was raised.
      const old = await hashPassword('olda password 1', systemRandom, { N: 512, r: 8, p: 1 });
      await h.db.execute('UPDATE users SET password_hash = ? WHERE name = ?', [old, 'olda']);
      const stored = async () => (await h.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE name = ?', ['olda']))[0]!.password_hash;

      try {
        await assert.rejects(h.cp.auth.users.authenticate('olda', 'olda password 2'), refusedWith('API_LOGIN_FAILED'));
        assert.equal(await stored(), old, 'a wrong password rehashes nothing');
        assert.equal((await h.cp.auth.users.authenticate('olda', 'olda password 1')).name, 'olda');
        const upgraded = await stored();
        assert.match(upgraded, /^scrypt\$1024\$8\$1\$/);
        assert.equal(await verifyPassword('olda password 1', upgraded), true);
        assert.equal((await h.cp.auth.users.authenticate('olda', 'olda password 1')).name, 'olda');
        assert.equal(await stored(), upgraded, 'a hash at the current cost is kept');
      } finally {
        await h.cp.auth.users.remove({ name: 'olda' });
      }
    });

    it('lists by name in pages, without password hashes', async () => {
      for (const name of ['carol', 'alice', 'bob@example.org']) await add(name, 'viewer');
      const first = await h.cp.auth.users.list({ limit: 2 });
      assert.deepEqual(first.items.map((u) => u.name), ['alice', 'bob@example.org']);
      assert.ok(first.next_cursor);
      // The cursor ends on a name with an '@', which user names may hold.
      const second = await h.cp.auth.users.list({ limit: 2, cursor: first.next_cursor });
      assert.deepEqual(second.items.map((u) => u.name), ['carol']);
      assert.equal(second.next_cursor, null);
      assert.ok(!JSON.stringify(first).includes('scrypt'));
      await assert.rejects(h.cp.auth.users.list({ cursor: 'not*a*cursor' }), refusedWith('API_CURSOR_INVALID'));
    });

    it('refuses to remove or demote the last admin, and allows it once another admin exists', async () => {
      await add('root', 'admin');
      await assert.rejects(h.cp.auth.users.remove({ name: 'root' }), refusedWith('API_LAST_ADMIN'));
      await assert.rejects(h.cp.auth.users.setRole({ name: 'root', role: 'operator' }), refusedWith('API_LAST_ADMIN'));
      assert.equal(await h.cp.auth.users.roleOf('root'), 'admin');
      // Promoting is never refused, and the same role again changes nothing.
      assert.equal((await h.cp.auth.users.setRole({ name: 'alice', role: 'admin' })).changed, true);
      assert.equal((await h.cp.auth.users.setRole({ name: 'alice', role: 'admin' })).changed, false);
      const demoted = await h.cp.auth.users.setRole({ name: 'root', role: 'operator' });
      assert.deepEqual([demoted.from, demoted.user.role, demoted.changed], ['admin', 'operator', true]);
      await assert.rejects(h.cp.auth.users.remove({ name: 'alice' }), refusedWith('API_LAST_ADMIN'));
      await assert.rejects(h.cp.auth.users.remove({ name: 'nobody' }), refusedWith('API_USER_NOT_FOUND'));
      await assert.rejects(h.cp.auth.users.setRole({ name: 'root', role: 'superuser' }), refusedWith('API_VALIDATION'));
      assert.equal((await h.cp.auth.users.remove({ name: 'root' })).name, 'root');
      assert.equal(await h.cp.auth.users.roleOf('root'), undefined);
    });

    it('two admins demoting each other at once: one wins, the other is refused, one admin is left', async () => {
      await add('ann', 'admin');
      await h.cp.auth.users.setRole({ name: 'alice', role: 'viewer' });
      const outcomes = await Promise.allSettled([
        h.cp.auth.users.setRole({ name: 'alice', role: 'viewer' }).then(() => h.cp.auth.users.setRole({ name: 'ann', role: 'viewer' })),
        h.cp.auth.users.remove({ name: 'ann' }),
      ]);
      // Whichever order the transactions ran in, ann was the only admin: both are refused.
      assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
      await add('ben', 'admin');
      const race = await Promise.allSettled([h.cp.auth.users.setRole({ name: 'ann', role: 'viewer' }), h.cp.auth.users.remove({ name: 'ben' })]);
      assert.equal(race.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(race.map((o) => o.status)));
      const refused = race.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refusedWith('API_LAST_ADMIN')(refused.reason), String(refused.reason));
      const admins = (await h.cp.auth.users.list({ limit: 500 })).items.filter((u) => u.role === 'admin');
      assert.equal(admins.length, 1);
    });

    it('sets a password: the old one stops working, the new one logs in; the current one is checked when given', async () => {
      await add('dave', 'operator');
      await assert.rejects(h.cp.auth.users.setPassword({ name: 'dave', password: 'short' }), refusedWith('API_VALIDATION'));
      await assert.rejects(h.cp.auth.users.setPassword({ name: 'dave', password: 'a new password 1', currentPassword: 'not the password' }), refusedWith('API_CURRENT_PASSWORD_WRONG'));
      await h.cp.auth.users.authenticate('dave', 'dave password 1');
      await h.cp.auth.users.setPassword({ name: 'dave', password: 'a new password 1', currentPassword: 'dave password 1' });
      await assert.rejects(h.cp.auth.users.authenticate('dave', 'dave password 1'), refusedWith('API_LOGIN_FAILED'));
      assert.equal((await h.cp.auth.users.authenticate('dave', 'a new password 1')).name, 'dave');
      await h.cp.auth.users.setPassword({ name: 'dave', password: 'set by an admin 1' });
      assert.equal((await h.cp.auth.users.authenticate('dave', 'set by an admin 1')).role, 'operator');
      await assert.rejects(h.cp.auth.users.setPassword({ name: 'nobody', password: 'set by an admin 1' }), refusedWith('API_USER_NOT_FOUND'));
      const [row] = await h.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE name = ?', ['dave']);
      assert.match(row!.password_hash, /^scrypt\$1024\$8\$1\$/);
    });
  });
}
