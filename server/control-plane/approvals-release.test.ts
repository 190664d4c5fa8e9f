import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kvKeys } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { addAndLogIn, apiCaller, approveAs, makeHarness, personMaker, storePairs, type ApiPerson, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 12, the approval flow's remaining gaps, through the HTTP API on both store pairs:
 * - release re-evaluates the policy with the facts admission used (policy-facts.ts `atRelease`):
 *   the device's tags, its posture as it is now, the stated reason, and the rate counts the
 *   command's places were reserved at. Before, release judged a bare request (no tags, no
 *   reason, no counts), so a tag-selected, reason-requiring or rate-limited approval rule could
 *   never release, and a device that went offline while the command waited still got it;
 * - POST /v1/commands/{id}/cancel: the requester or an admin ends a pending command `rejected`,
 *   audited; anyone else is refused APPROVAL_CANCEL_FORBIDDEN, and a command no longer pending
 *   APPROVAL_NOT_PENDING.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    // Tag-selected, needs a stated reason, rate-limited per actor, the device online, and one admin's approval.
    {
      id: 'lab-lock', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: { tags: ['lab'] },
      conditions: { approval: { count: 1, roles: ['admin'] }, reasonRequired: true, rateLimit: { per: ['actor'], count: 3, windowMs: 3_600_000 }, posture: { online: true } },
    },
  ],
});

function suite(pair: StorePair): void {
  describe(`approval release and cancel on ${pair.name}`, () => {
    let h: Harness;
    const tag = randomBytes(3).toString('hex');
    const device = `rel-${tag}`;
    const people: ApiPerson[] = [];
    const person = personMaker(tag, people);
    const op = person('op', 'operator');
    const op2 = person('optwo', 'operator');
    const adm = person('adm', 'admin');

    const call = apiCaller(() => h);
    const send = async (by: ApiPerson, reason?: string) => {
      const created = await call('POST', '/v1/commands', by.token, { device_id: device, opcode: 'EXEC_LOCK_SCREEN', args: {}, ...(reason === undefined ? {} : { reason }) });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.json().state, 'pending_approval', created.text);
      return created.json();
    };
    const approve = (by: ApiPerson, command: Record<string, any>) => approveAs(call, by, command);
    const auditKinds = async (commandId: string): Promise<Array<{ kind: string; payload: Record<string, unknown> }>> => {
      const rows = await h.db.query<{ kind: string; payload_json: string }>('SELECT kind, payload_json FROM audit_log WHERE subject = ? ORDER BY seq', [`command:${commandId}`]);
      return rows.map((row) => ({ kind: row.kind, payload: JSON.parse(row.payload_json) as Record<string, unknown> }));
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy } });
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
      await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [device, 'lab']);
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      await addAndLogIn(h, call, people, password);
      for (const p of people) {
        const registered = await call('PUT', '/v1/users/me/signing-key', p.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(p.seed)), current_password: password });
        p.kid = registered.json().kid as string;
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('release judges the tags, the stated reason and the reserved rate counts admission used', async () => {
      const created = await send(op, 'screen left unlocked in the lab');
      const approved = await approve(adm, created);
      assert.equal(approved.status, 200, approved.text);
      assert.equal(approved.json().released, true, approved.text);
      assert.equal(approved.json().command.state, 'queued');
      // The requester and the role the release was judged with travel signed, for the device's bundle check.
      assert.deepEqual(approved.json().command.signed.requester, { name: op.name, role: 'operator' });
      const direct = await call('POST', '/v1/commands', adm.token, { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} });
      assert.deepEqual(direct.json().signed?.requester, { name: adm.name, role: 'admin' }, direct.text);
      const released = (await auditKinds(created.id)).find((entry) => entry.kind === 'command.released');
      assert.equal((released?.payload['policy'] as Record<string, unknown>)['rule_id'], 'lab-lock');
    });

    it('the command holds its rate place: the third of three releases, and a fourth is refused at admission', async () => {
      // This actor's first command above counted once; two more fill the limit of three and both release.
      for (let i = 0; i < 2; i += 1) {
        const created = await send(op, `reason ${i}`);
        const approved = await approve(adm, created);
        assert.equal(approved.json().released, true, approved.text);
      }
      const fourth = await call('POST', '/v1/commands', op.token, { device_id: device, opcode: 'EXEC_LOCK_SCREEN', args: {}, reason: 'one too many' });
      assert.equal(fourth.json().error?.code, 'COMMAND_RATE_LIMITED', fourth.text);
    });

    it('posture is read again at release: a device gone offline while the command waited does not get it', async () => {
      const created = await send(op2, 'going offline next');
      await h.cp.context.kv.del(kvKeys.presence(device));
      try {
        const approved = await approve(adm, created);
        assert.equal(approved.json().error?.code, 'COMMAND_POLICY_DENIED', approved.text);
        assert.equal((await call('GET', `/v1/commands/${created.id}`, op2.token)).json().state, 'pending_approval');
      } finally {
        await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      }
      const again = await call('POST', `/v1/commands/${created.id}/approve`, adm.token, {});
      assert.equal(again.status, 400, 'a bodiless approval is a validation error, not a release');
    });

    it('the requester or an admin cancels a pending command; it ends rejected, audited; others are refused', async () => {
      const mine = await send(op2, 'changed my mind later');
      const forbidden = await call('POST', `/v1/commands/${mine.id}/cancel`, op.token, { reason: 'not yours' });
      assert.equal(forbidden.status, 403, forbidden.text);
      assert.equal(forbidden.json().error?.code, 'APPROVAL_CANCEL_FORBIDDEN');
      const cancelled = await call('POST', `/v1/commands/${mine.id}/cancel`, op2.token, { reason: 'wrong device' });
      assert.equal(cancelled.status, 200, cancelled.text);
      assert.equal(cancelled.json().command.state, 'rejected');
      assert.deepEqual(cancelled.json().command.history.at(-1).detail, { event: 'cancel', by: op2.name, reason: 'wrong device' });
      const audit = (await auditKinds(mine.id)).find((entry) => entry.kind === 'command.approval_cancelled');
      assert.deepEqual(audit?.payload, { by: op2.name, role: 'operator', requested_by: op2.name, reason: 'wrong device' });
      const twice = await call('POST', `/v1/commands/${mine.id}/cancel`, op2.token, {});
      assert.equal(twice.json().error?.code, 'APPROVAL_NOT_PENDING', twice.text);
      assert.equal((await approve(adm, mine)).json().error?.code, 'APPROVAL_NOT_PENDING');

      const theirs = await send(op2, 'an admin will cancel it');
      // The body is optional: a bare POST cancels too.
      const byAdmin = await call('POST', `/v1/commands/${theirs.id}/cancel`, adm.token);
      assert.equal(byAdmin.status, 200, byAdmin.text);
      assert.equal(byAdmin.json().command.state, 'rejected');
      const unknown = await call('POST', '/v1/commands/c_nope/cancel', adm.token, {});
      assert.equal(unknown.status, 404, unknown.text);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) describe('approval release and cancel on mysql + redis', { skip: skipped }, () => undefined);
for (const pair of pairs) suite(pair);
