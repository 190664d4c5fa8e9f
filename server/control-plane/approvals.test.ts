import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gatewayCommandStream, kvKeys } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { approvalSubjectHash, signApproval, verifyCommandApprovals, type ApprovalDecision, type ApproverKey } from '../../core/protocol/approvals.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { parsePolicy, type PolicyRole } from '../../core/protocol/policy.js';
import { verifyCommand } from '../../core/protocol/signed-command.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * The approval flow end to end through the HTTP API (issue 12): a command the policy allows only
 * with two approvals waits `pending_approval` (unsigned, not delivered), is listed for approvers,
 * and reaches the device's gateway stream only once two distinct approvers signed; the command
 * that arrives carries both approvals and passes the device's checks (verifyCommand and
 * verifyCommandApprovals). Each bad approval is refused with its own code; a rejection ends the
 * command; an unapproved command expires. On sql.js + embedded kv, and MySQL + Redis when set.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const device = 'appr-dev-1';

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'status', effect: 'allow', roles: ['operator', 'approver'], opcodes: ['EXEC_GET_STATUS'], devices: '*' },
    { id: 'two-eyes', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 2, roles: ['approver', 'admin'] } } },
    { id: 'admins-only', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_PING_KERNEL'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
  ],
});

interface Person { readonly name: string; readonly role: PolicyRole; readonly seed: Uint8Array; token: string; kid: string }

function suite(pair: StorePair): void {
  describe(`approvals on ${pair.name}`, () => {
    let h: Harness;
    const people: Record<string, Person> = {};
    const person = (name: string, role: PolicyRole) => (people[name] = { name, role, seed: new Uint8Array(randomBytes(32)), token: '', kid: '' });
    const req = person('req', 'approver');
    const ap1 = person('ap1', 'approver');
    const ap2 = person('ap2', 'approver');
    const adm = person('adm', 'admin');
    const op = person('op', 'operator');

    const call = async (method: 'GET' | 'POST' | 'PUT', url: string, token: string | undefined, body?: unknown) => {
      const response = await h.cp.app.inject({
        method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
    };
    const send = async (opcode: string, ttlMs?: number) => {
      const created = await call('POST', '/v1/commands', req.token, { device_id: device, opcode, args: {}, ...(ttlMs === undefined ? {} : { ttl_ms: ttlMs }) });
      assert.equal(created.status, 201, created.text);
      return created.json();
    };
    /** The approver's signed decision as the CLI sends it; `change` spoils one part. */
    const decide = async (by: Person, command: Record<string, any>, decision: ApprovalDecision, change: { sha?: string; expiresAtMs?: number; kid?: string; signWith?: Uint8Array; reason?: string; signedReason?: string } = {}) => {
      const commandSha256 = change.sha ?? command.approval.command_sha256 as string;
      const expiresAtMs = change.expiresAtMs ?? command.expires_at_ms as number;
      const kid = change.kid ?? by.kid;
      const reason = decision === 'reject' ? change.reason ?? 'not now' : undefined;
      // The reason is signed with the decision; `signedReason` signs another one than is sent.
      const signedReason = change.signedReason ?? reason;
      const signature = signApproval({
        statement: { command_id: command.id, command_sha256: commandSha256, decision, approver: by.name, kid, expires_at: expiresAtMs, ...(signedReason === undefined ? {} : { reason: signedReason }) },
        seed: change.signWith ?? by.seed, provider,
      });
      const body = { command_sha256: commandSha256, kid, expires_at_ms: expiresAtMs, signature, ...(reason === undefined ? {} : { reason }) };
      return call('POST', `/v1/commands/${command.id}/${decision}`, by.token, body);
    };
    const refusedWith = (response: { status: number; json: () => Record<string, any>; text: string }, code: string) => {
      assert.equal(response.json().error?.code, code, response.text);
    };
    const appendedIds = async (): Promise<string[]> => {
      const group = `probe-${randomBytes(4).toString('hex')}`;
      await h.bus.ensureGroup(gatewayCommandStream('gw1'), group, '0');
      const entries = await h.bus.readGroup(gatewayCommandStream('gw1'), group, 'probe', { count: 1000 });
      return entries.map((entry) => (JSON.parse(entry.fields.data!) as { command: { id: string } }).command.id);
    };
    const deliveredCommand = async (id: string): Promise<SignedCommand | undefined> => {
      const group = `probe-${randomBytes(4).toString('hex')}`;
      await h.bus.ensureGroup(gatewayCommandStream('gw1'), group, '0');
      const entries = await h.bus.readGroup(gatewayCommandStream('gw1'), group, 'probe', { count: 1000 });
      return entries.map((entry) => (JSON.parse(entry.fields.data!) as { command: SignedCommand }).command).find((c) => c.id === id);
    };

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { policy } });
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
      await h.cp.context.kv.set(kvKeys.presence(device), JSON.stringify({ gateway_id: 'gw1' }));
      for (const p of Object.values(people)) {
        await h.cp.auth.users.add({ name: p.name, role: p.role, password, nowMs: h.clock.nowMs() });
        p.token = (await call('POST', '/v1/auth/login', undefined, { name: p.name, password })).json().token as string;
        const registered = await call('PUT', '/v1/users/me/signing-key', p.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(p.seed)), current_password: password });
        assert.equal(registered.status, 200, registered.text);
        p.kid = registered.json().kid as string;
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('a command needing two approvals reaches the device only after two distinct approvers sign, carrying both', async () => {
      const created = await send('EXEC_LOCK_SCREEN');
      assert.equal(created.state, 'pending_approval');
      assert.equal(created.signed, null);
      assert.equal(created.device_seq, null);
      assert.equal(created.approval.count, 2);
      assert.equal(created.approval.command_sha256, approvalSubjectHash(created.approval.subject, nobleSha256), 'the hash is the subject\'s');
      assert.ok(!(await appendedIds()).includes(created.id), 'not delivered while pending');

      const listed = await call('GET', '/v1/approvals', ap1.token);
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(listed.json().items.map((c: { id: string }) => c.id), [created.id]);
      refusedWith(await call('GET', '/v1/approvals', op.token), 'API_FORBIDDEN');

      const first = await decide(ap1, created, 'approve');
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json().released, false);
      assert.equal(first.json().command.state, 'pending_approval');
      assert.ok(!(await appendedIds()).includes(created.id), 'one approval is not enough');
      assert.deepEqual((await call('GET', '/v1/approvals', ap2.token)).json().items[0].decisions.map((d: { approver: string }) => d.approver), ['ap1']);

      const second = await decide(adm, created, 'approve');
      assert.equal(second.status, 200, second.text);
      assert.equal(second.json().released, true);
      assert.equal(second.json().command.state, 'queued');
      assert.equal(typeof second.json().command.device_seq, 'number');

      // What the device receives passes the device's checks.
      const delivered = await deliveredCommand(created.id);
      assert.ok(delivered !== undefined, 'delivered once released');
      assert.deepEqual(delivered.approval?.approvals.map((a) => a.approver), ['ap1', 'adm']);
      verifyCommand({ command: delivered, deviceId: device, resolveKey: (kid) => (kid === h.materials.commandSigner.kid ? h.materials.commandSigner.publicKey : undefined), provider, nowMs: h.clock.nowMs() });
      const keys = new Map<string, ApproverKey>(Object.values(people).map((p) => [p.kid, { approver: p.name, role: p.role, publicKey: provider.publicKeyFromSeed(p.seed) }]));
      assert.deepEqual(verifyCommandApprovals({ command: delivered, condition: { count: 2, roles: ['approver', 'admin'] }, resolveApproverKey: (kid) => keys.get(kid), provider, sha256: nobleSha256 }),
        { valid: true, approvers: ['ap1', 'adm'] });

      const kinds = (await h.db.query<{ kind: string }>('SELECT kind FROM audit_log WHERE subject = ? ORDER BY seq', [`command:${created.id}`])).map((r) => r.kind);
      assert.deepEqual(kinds, ['command.approval_requested', 'command.approved', 'command.approved', 'command.released']);
      refusedWith(await decide(ap2, created, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.deepEqual((await call('GET', '/v1/approvals', ap1.token)).json().items, []);
    });

    it('refuses each bad approval with its own code and stores none of them', async () => {
      const created = await send('EXEC_LOCK_SCREEN');
      refusedWith(await decide(req, created, 'approve'), 'APPROVAL_BY_REQUESTER');
      refusedWith(await decide(ap1, created, 'approve', { signWith: ap2.seed }), 'APPROVAL_SIGNATURE_INVALID');
      refusedWith(await decide(ap1, created, 'approve', { sha: '0'.repeat(64) }), 'APPROVAL_STATEMENT_MISMATCH');
      refusedWith(await decide(ap1, created, 'approve', { expiresAtMs: h.clock.nowMs() }), 'APPROVAL_EXPIRED');
      refusedWith(await decide(ap1, created, 'approve', { expiresAtMs: created.expires_at_ms + 1 }), 'APPROVAL_EXPIRY_TOO_LONG');
      refusedWith(await decide(ap1, created, 'approve', { kid: ap2.kid }), 'APPROVAL_KEY_UNKNOWN');
      refusedWith(await decide(ap1, created, 'approve', { kid: 'uk-none' }), 'APPROVAL_KEY_UNKNOWN');
      refusedWith(await decide(op, created, 'approve'), 'API_FORBIDDEN');
      const count = async () => (await h.db.query('SELECT approver FROM command_approvals WHERE command_id = ?', [created.id])).length;
      assert.equal(await count(), 0);
      assert.equal((await decide(ap1, created, 'approve')).status, 200);
      refusedWith(await decide(ap1, created, 'approve'), 'APPROVAL_DUPLICATE');
      refusedWith(await decide(ap1, created, 'reject'), 'APPROVAL_DUPLICATE');
      assert.equal(await count(), 1);
      // A rule that takes approvals from admins only.
      const adminsOnly = await send('EXEC_PING_KERNEL');
      refusedWith(await decide(ap1, adminsOnly, 'approve'), 'APPROVAL_ROLE_NOT_ALLOWED');
      const released = await decide(adm, adminsOnly, 'approve');
      assert.equal(released.json().released, true, released.text);
      // A command that never needed approvals.
      const plain = await call('POST', '/v1/commands', op.token, { device_id: device, opcode: 'EXEC_GET_STATUS', args: {} });
      assert.equal(plain.json().state, 'queued');
      refusedWith(await call('POST', `/v1/commands/${plain.json().id}/approve`, ap1.token, { command_sha256: '0'.repeat(64), kid: ap1.kid, expires_at_ms: h.clock.nowMs() + 1000, signature: 'A'.repeat(86) }), 'APPROVAL_NOT_PENDING');
    });

    it('two approvals submitted at once release the command exactly once', async () => {
      const created = await send('EXEC_LOCK_SCREEN');
      const answers = await Promise.all([decide(ap1, created, 'approve'), decide(ap2, created, 'approve')]);
      for (const answer of answers) assert.equal(answer.status, 200, answer.text);
      assert.equal(answers.filter((a) => a.json().released === true).length, 1, 'one of them released it');
      assert.equal((await h.cp.commands.get(created.id)).state, 'queued');
      assert.equal((await appendedIds()).filter((id) => id === created.id).length, 1);
      assert.equal((await deliveredCommand(created.id))?.approval?.approvals.length, 2);
    });

    it('a rejection ends the command rejected, never delivered; an unapproved command expires', async () => {
      const created = await send('EXEC_LOCK_SCREEN');
      // The reason is signed: a reason other than the one signed (or an empty one) is not the approver's word.
      refusedWith(await decide(ap2, created, 'reject', { reason: 'change freeze', signedReason: 'ok later' }), 'APPROVAL_SIGNATURE_INVALID');
      refusedWith(await decide(ap2, created, 'reject', { reason: 'change freeze', signedReason: '' }), 'APPROVAL_SIGNATURE_INVALID');
      const rejected = await decide(ap2, created, 'reject', { reason: 'change freeze' });
      assert.equal(rejected.status, 200, rejected.text);
      const detail = (await call('GET', `/v1/commands/${created.id}`, ap1.token)).json();
      assert.equal(detail.state, 'rejected');
      assert.deepEqual(detail.history.at(-1).detail, { event: 'approval_reject', by: 'ap2', reason: 'change freeze' });
      refusedWith(await decide(ap1, created, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.ok(!(await appendedIds()).includes(created.id));

      const waiting = await send('EXEC_LOCK_SCREEN', 60_000);
      assert.equal((await decide(ap1, waiting, 'approve')).status, 200);
      h.clock.advance(60_001);
      assert.ok(await h.cp.commands.expireDue() >= 1);
      assert.equal((await h.cp.commands.get(waiting.id)).state, 'expired');
      assert.ok(!(await appendedIds()).includes(waiting.id));
      assert.ok(!(await call('GET', '/v1/approvals', ap1.token)).json().items.some((c: { id: string }) => c.id === waiting.id));
    });

    it('signing keys: the same key again changes nothing, another user\'s key is refused, a new key retires the old one', async () => {
      const publicKey = base64urlFromBytes(provider.publicKeyFromSeed(ap2.seed));
      const again = await call('PUT', '/v1/users/me/signing-key', ap2.token, { public_key: publicKey });
      assert.equal(again.json().kid, ap2.kid);
      assert.equal((await call('GET', '/v1/users/me/signing-key', ap2.token)).json().kid, ap2.kid);
      refusedWith(await call('PUT', '/v1/users/me/signing-key', ap1.token, { public_key: publicKey }), 'API_VALIDATION');
      refusedWith(await call('PUT', '/v1/users/me/signing-key', ap1.token, { public_key: 'A'.repeat(42) }), 'API_VALIDATION');
      const created = await send('EXEC_LOCK_SCREEN');
      const oldSeed = ap2.seed;
      const rotated = { ...ap2, seed: new Uint8Array(randomBytes(32)) };
      // Registering a key needs the current password (security review 2026-12-05, finding 4; signing-key-replacement.test.ts).
      refusedWith(await call('PUT', '/v1/users/me/signing-key', ap2.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(rotated.seed)) }), 'APPROVAL_KEY_PROOF_REQUIRED');
      const registered = await call('PUT', '/v1/users/me/signing-key', ap2.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(rotated.seed)), current_password: password });
      assert.notEqual(registered.json().kid, ap2.kid);
      refusedWith(await decide(ap2, created, 'approve', { signWith: oldSeed }), 'APPROVAL_KEY_UNKNOWN');
      const withNew = await decide({ ...rotated, kid: registered.json().kid as string }, created, 'approve');
      assert.equal(withNew.status, 200, withNew.text);
      const kinds = (await h.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE kind = 'user.signing_key_registered' AND subject = 'user:ap2'"));
      assert.equal(Number(kinds[0]!.n), 2, 'registered once at the start and once rotated; the repeat is not audited');
    });

    it('a repeated Idempotency-Key answers the same pending command', async () => {
      const body = { device_id: device, opcode: 'EXEC_LOCK_SCREEN', args: {} };
      h.clock.advance(1); // newer than every command above (the test clock stands still otherwise)
      const first = await h.cp.app.inject({ method: 'POST', url: '/v1/commands', headers: { authorization: `Bearer ${req.token}`, 'idempotency-key': 'pending-1' }, payload: body });
      const second = await h.cp.app.inject({ method: 'POST', url: '/v1/commands', headers: { authorization: `Bearer ${req.token}`, 'idempotency-key': 'pending-1' }, payload: body });
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(second.statusCode, 200, second.body);
      assert.equal(second.json().id, first.json().id);
      assert.equal(second.json().state, 'pending_approval');
      // Paged, newest first: the pending commands left by the tests above come after this one.
      const page1 = (await call('GET', '/v1/approvals?limit=1', ap1.token)).json();
      assert.deepEqual(page1.items.map((c: { id: string }) => c.id), [first.json().id]);
      assert.equal(typeof page1.next_cursor, 'string');
      const page2 = (await call('GET', `/v1/approvals?limit=1&cursor=${page1.next_cursor}`, ap1.token)).json();
      assert.equal(page2.items.length, 1);
      assert.notEqual(page2.items[0].id, first.json().id);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) describe('approvals on mysql + redis', { skip: skipped }, () => undefined);
for (const pair of pairs) suite(pair);
