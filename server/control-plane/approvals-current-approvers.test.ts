import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { signingKid } from './signing-keys.js';
import { addAndLogIn, apiCaller, approveAs, makeHarness, personMaker, storePairs, type ApiPerson, type Harness, type StorePair } from './test-support.js';

/**
 * Security review finding 2 (2026-12-05): approvals are counted at release with their approvers
 * as they are now. An approval whose approver was removed, demoted out of the roles the rule
 * accepts, or whose signing key was retired since no longer counts: it is dropped, audited as
 * `command.approval_dropped` with the reason, and the command waits for another. Through the
 * HTTP API on both store pairs.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'two-approvers', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 2, roles: ['approver'] } } },
  ],
});

function suite(pair: StorePair): void {
  describe(`approvals count with their approvers as they are now (review finding 2) on ${pair.name}`, () => {
    let h: Harness;
    const tag = randomBytes(3).toString('hex');
    const device = `apr-${tag}`;
    const people: ApiPerson[] = [];
    const person = personMaker(tag, people);
    const adm = person('adm', 'admin');
    const op = person('op', 'operator');
    const [ap1, ap2, ap3, ap4, ap5, ap6] = ['apa', 'apb', 'apc', 'apd', 'ape', 'apf'].map((name) => person(name, 'approver')) as [ApiPerson, ApiPerson, ApiPerson, ApiPerson, ApiPerson, ApiPerson];
    const [ap7, ap8, ap9] = ['apg', 'aph', 'api'].map((name) => person(name, 'approver')) as [ApiPerson, ApiPerson, ApiPerson];

    const call = apiCaller(() => h);
    const send = async () => {
      const created = await call('POST', '/v1/commands', op.token, { device_id: device, opcode: 'EXEC_LOCK_SCREEN', args: {} });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.json().state, 'pending_approval', created.text);
      return created.json();
    };
    const approve = (by: ApiPerson, command: Record<string, any>) => approveAs(call, by, command);
    const stateOf = async (commandId: string) => (await call('GET', `/v1/commands/${commandId}`, adm.token)).json();
    const dropped = async (commandId: string) => {
      const rows = await h.db.query<{ kind: string; actor: string; payload_json: string }>('SELECT kind, actor, payload_json FROM audit_log WHERE subject = ? ORDER BY seq', [`command:${commandId}`]);
      return rows.filter((row) => row.kind === 'command.approval_dropped').map((row) => ({ actor: row.actor, ...(JSON.parse(row.payload_json) as { approver: string; reason: string; kid: string; role: string }) }));
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy } });
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
      await addAndLogIn(h, call, people, password);
      for (const p of people) {
        // Written as the signing-key store writes it, so this suite does not depend on the route's own rules.
        const publicKey = provider.publicKeyFromSeed(p.seed);
        p.kid = signingKid(publicKey);
        await h.db.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)', [p.kid, p.name, base64urlFromBytes(publicKey), h.clock.nowMs()]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it("the reviewer's scenario: ap1 approves, the admin deletes ap1, ap2 approves: not released on one valid approval; a third releases it", async () => {
      const command = await send();
      const first = await approve(ap1, command);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json().released, false);
      const removed = await call('DELETE', `/v1/users/${ap1.name}`, adm.token);
      assert.equal(removed.status, 200, removed.text);

      const second = await approve(ap2, command);
      assert.equal(second.status, 200, second.text);
      assert.equal(second.json().released, false, 'one approval holds, two are needed');
      assert.equal((await stateOf(command.id)).state, 'pending_approval');
      assert.deepEqual((await dropped(command.id)).map((d) => [d.actor, d.approver, d.reason, d.kid]), [['system', ap1.name, 'approver_removed', ap1.kid]]);

      const third = await approve(ap3, command);
      assert.equal(third.json().released, true, third.text);
      assert.deepEqual(third.json().command.signed.approval.approvals.map((a: { approver: string }) => a.approver).sort(), [ap2.name, ap3.name].sort());
      assert.equal((await dropped(command.id)).length, 1, 'dropped once');
    });

    it('demotion: an approval whose approver no longer holds a role the rule accepts is dropped (role_not_accepted)', async () => {
      const command = await send();
      assert.equal((await approve(ap2, command)).json().released, false);
      const demoted = await call('PUT', `/v1/users/${ap2.name}/role`, adm.token, { role: 'viewer' });
      assert.equal(demoted.status, 200, demoted.text);
      const next = await approve(ap3, command);
      assert.equal(next.status, 200, next.text);
      assert.equal(next.json().released, false, 'ap2 counts no more');
      assert.deepEqual((await dropped(command.id)).map((d) => [d.approver, d.reason, d.role]), [[ap2.name, 'role_not_accepted', 'approver']]);
      assert.equal((await approve(ap4, command)).json().released, true);
    });

    it('key retirement: an approval signed with a key retired since is dropped (signing_key_retired); the approver may approve again with the current key', async () => {
      const command = await send();
      assert.equal((await approve(ap5, command)).json().released, false);
      // ap5 replaces the key: the old one is retired (as SigningKeyStore.register does).
      await h.db.execute('UPDATE user_signing_keys SET retired_at = ? WHERE kid = ?', [h.clock.nowMs(), ap5.kid]);
      const seed = new Uint8Array(randomBytes(32));
      const publicKey = provider.publicKeyFromSeed(seed);
      await h.db.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)', [signingKid(publicKey), ap5.name, base64urlFromBytes(publicKey), h.clock.nowMs()]);
      const oldKid = ap5.kid;

      const next = await approve(ap6, command);
      assert.equal(next.status, 200, next.text);
      assert.equal(next.json().released, false, 'the retired key\'s approval counts no more');
      assert.deepEqual((await dropped(command.id)).map((d) => [d.approver, d.reason, d.kid]), [[ap5.name, 'signing_key_retired', oldKid]]);

      Object.assign(ap5, { seed, kid: signingKid(publicKey) });
      const again = await approve(ap5, command);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json().released, true, again.text);
      const carried = again.json().command.signed.approval.approvals as Array<{ approver: string; kid: string }>;
      assert.deepEqual(carried.map((a) => [a.approver, a.kid]).sort(), [[ap5.name, ap5.kid], [ap6.name, ap6.kid]].sort());
    });

    it('judged again inside the release (review finding 5): a key retired after the check and before the release\'s transaction is not released', async () => {
      const command = await send();
      assert.equal((await approve(ap7, command)).json().released, false);
      // The release's policy evaluation asks the requester's role after the approvals were checked
      // (#holding), just before the release's transaction: ap7's key is retired right there.
      const users = h.cp.auth.users;
      const roleOf = users.roleOf.bind(users);
      let armed = true;
      users.roleOf = async (name) => {
        const role = await roleOf(name);
        if (armed && name === op.name) {
          armed = false;
          await h.db.execute('UPDATE user_signing_keys SET retired_at = ? WHERE kid = ?', [h.clock.nowMs(), ap7.kid]);
        }
        return role;
      };
      let next;
      try {
        next = await approve(ap8, command);
      } finally {
        users.roleOf = roleOf;
      }
      assert.equal(armed, false, 'the key was retired in the gap');
      assert.equal(next.status, 200, next.text);
      assert.equal(next.json().released, false, 'ap7\'s approval no longer holds: one of two');
      assert.equal((await stateOf(command.id)).state, 'pending_approval');
      assert.deepEqual((await dropped(command.id)).map((d) => [d.approver, d.reason, d.kid]), [[ap7.name, 'signing_key_retired', ap7.kid]]);
      const third = await approve(ap9, command);
      assert.equal(third.json().released, true, third.text);
      assert.deepEqual(third.json().command.signed.approval.approvals.map((a: { approver: string }) => a.approver).sort(), [ap8.name, ap9.name].sort());
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) console.log(`# ${skipped}`);
for (const pair of pairs) suite(pair);
