import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { rolloutApprovalSubjectHash, type RolloutApprovalSubject } from '../../core/ota/rollout-approval.js';
import { signApproval, type ApprovalDecision } from '../../core/protocol/approvals.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { PolicyRole } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { OtaServices } from './ota-service.js';
import type { RepositoryKeys } from './repository-init.js';
import { serviceKid, type ServiceSigner } from '../materials/materials.js';
import { SigningKeyStore } from '../control-plane/signing-keys.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { RolloutService } from './rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from './test-support.js';

/**
 * Rollouts that need approvals (docs/ota.md "Rollouts that need approvals"), through the HTTP API
 * of a control plane as `sdc serve` wires it, on sql.js and on MySQL when set: a rollout the policy
 * lets its creator start only with two approvals waits `pending_approval` with no execution and no
 * notice; approvers sign the ordinary approval statement over the rollout's id and the hash of its
 * exact content; the requester's own approval, a second one by the same approver and one signed
 * over altered content are refused; the second distinct approval starts it and its devices are
 * notified, judged with the approvals. A rejection, an expired window (by the sweep, or at the next
 * decision) and an operator's abort end it with their state and code, nothing sent. Two races
 * driven step by step (review h16, bcc145d): an operator's abort whose read saw the rollout waiting
 * but whose own transaction comes after the last approval started it applies to the running
 * rollout; a start judged by a control plane whose command key was rotated during the wait is
 * refused APPROVAL_STATEMENT_MISMATCH (the approvers signed the old key's id as the issuer).
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const artifact = new TextEncoder().encode('firmware 4.0.0 '.repeat(32));

const policy = {
  version: 1,
  rules: [
    { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    {
      id: 'updates-four-eyes', effect: 'allow', roles: ['operator', 'approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*',
      conditions: { approval: { count: 2, roles: ['approver', 'admin'] } },
    },
  ],
};

interface Person { readonly name: string; readonly role: PolicyRole; readonly seed: Uint8Array; token: string; kid: string }
type Json = Record<string, any>;

for (const pair of storePairs().pairs) {
  describe(`rollouts waiting for approvals (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    const tag = Math.random().toString(16).slice(2, 8);
    const device = (name: string) => `ra-${tag}-${name}`;
    const releaseId = `rela-${tag}`;
    const people: Person[] = [];
    const person = (name: string, role: PolicyRole): Person => {
      const p = { name: `${name}-${tag}`, role, seed: new Uint8Array(randomBytes(32)), token: '', kid: '' };
      people.push(p);
      return p;
    };
    // The creator is an approver: the route lets approvers start rollouts, so self-approval is a real attempt.
    const rhea = person('rhea', 'approver');
    const ap1 = person('ap1', 'approver');
    const ap2 = person('ap2', 'approver');
    const adm = person('adm', 'admin');
    const op = person('op', 'operator');

    const call = async (method: 'GET' | 'POST' | 'PUT', url: string, token: string | undefined, body?: unknown) => {
      const response = await h.cp.app.inject({
        method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }),
      });
      return { status: response.statusCode, json: () => response.json() as Json, text: response.body };
    };
    const notice = async (deviceId: string): Promise<MessageBody<'OTA_NOTICE'> | undefined> => {
      const text = await h.cp.context.kv.get(otaKeys.notice(deviceId));
      return text === null ? undefined : JSON.parse(text) as MessageBody<'OTA_NOTICE'>;
    };
    const start = async (names: string[], extra: Json = {}) => {
      const ids = names.map(device);
      const created = await call('POST', '/v1/rollouts', rhea.token, {
        release_id: releaseId, platform: 'linux-x64', device_ids: ids, devices_per_minute_max: 100,
        waves: [{ device_ids: ids, success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 100 } }],
        ...extra,
      });
      assert.equal(created.status, 201, created.text);
      return created.json();
    };
    /** An approver's signed decision as the CLI sends it; `signed` changes what is signed, `sent` what is sent. */
    const decide = async (by: Person, rollout: Json, decision: ApprovalDecision, change: { signedSha?: string; sentSha?: string; expiresAtMs?: number } = {}) => {
      const sha = rolloutApprovalSubjectHash(rollout.approval.subject as RolloutApprovalSubject, nobleSha256);
      const expiresAtMs = change.expiresAtMs ?? rollout.approval.expires_at_ms as number;
      const reason = decision === 'reject' ? 'not this week' : undefined;
      const signature = signApproval({
        statement: {
          command_id: rollout.id, command_sha256: change.signedSha ?? sha, decision, approver: by.name, kid: by.kid, expires_at: expiresAtMs, ...(reason === undefined ? {} : { reason }),
        },
        seed: by.seed, provider,
      });
      return call('POST', `/v1/rollouts/${rollout.id}/${decision}`, by.token, {
        rollout_sha256: change.sentSha ?? change.signedSha ?? sha, kid: by.kid, expires_at_ms: expiresAtMs, signature, ...(reason === undefined ? {} : { reason }),
      });
    };
    const refusedWith = (response: { json: () => Json; text: string }, code: string) => assert.equal(response.json().error?.code, code, response.text);
    const audited = async (kind: string, rolloutId: string) => {
      const rows = await h.db.query<{ payload_json: string }>('SELECT payload_json FROM audit_log WHERE kind = ? AND subject = ? ORDER BY seq ASC', [kind, `rollout:${rolloutId}`]);
      return rows.map((row) => JSON.parse(row.payload_json) as Json);
    };

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      const nowMs = h.clock.nowMs();
      for (const name of ['a1', 'a2', 'b1', 'c1', 'd1', 'e1', 'f1', 'g1', 'g2', 'i1', 'i2', 'i3']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device(name), nowMs]);
      await publishTestRelease(h.ota, h.keys!, { id: releaseId, version: '4.0.0', artifact });
      const { revision } = await h.cp.policy.current();
      await h.cp.policy.set({ document: policy, expectedRevision: revision, actor: 'user:test' });
      for (const p of people) {
        await h.cp.auth.users.add({ name: p.name, role: p.role, password, nowMs });
        p.token = (await call('POST', '/v1/auth/login', undefined, { name: p.name, password })).json().token as string;
        const registered = await call('PUT', '/v1/users/me/signing-key', p.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(p.seed)), current_password: password });
        assert.equal(registered.status, 200, registered.text);
        p.kid = registered.json().kid as string;
      }
    });
    after(async () => { await h?.close(); await pair.sql.cleanup(); });

    it('waits pending_approval until two distinct approvers sign its exact content, then starts and notifies its devices', async () => {
      const rollout = await start(['a1', 'a2']);
      assert.equal(rollout.status, 'pending_approval');
      assert.deepEqual(rollout.executions, [], 'no execution while it waits');
      assert.equal(rollout.approval.count, 2);
      assert.equal(rollout.approval.rule_id, 'updates-four-eyes');
      assert.equal(rollout.approval.subject_sha256, rolloutApprovalSubjectHash(rollout.approval.subject, nobleSha256), 'the hash is the shown subject\'s');
      const release = await h.ota.releases.get(releaseId);
      assert.equal(rollout.approval.subject.target.sha256, release.artifact!.sha256, 'the subject names the artifact');
      assert.deepEqual(rollout.approval.subject.waves[0].devices, [device('a1'), device('a2')]);
      assert.equal(await notice(device('a1')), undefined);
      assert.equal((await audited('ota.rollout.approval_requested', rollout.id)).length, 1);
      // Listed for approvers by status.
      const listed = await call('GET', '/v1/rollouts?status=pending_approval', ap1.token);
      assert.ok(listed.json().items.some((r: Json) => r.id === rollout.id), listed.text);

      const first = await decide(ap1, rollout, 'approve');
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json().started, false);
      assert.equal(first.json().rollout.status, 'pending_approval');
      assert.deepEqual(first.json().rollout.executions, [], 'one approval is not enough');
      assert.deepEqual(first.json().rollout.approval.decisions.map((d: Json) => d.approver), [ap1.name]);

      refusedWith(await decide(ap1, rollout, 'approve'), 'APPROVAL_DUPLICATE');
      refusedWith(await decide(rhea, rollout, 'approve'), 'APPROVAL_BY_REQUESTER');
      // Signed over other content (a wave without a2): refused whether the altered hash or the real one is sent.
      const altered = { ...rollout.approval.subject, waves: [{ ...rollout.approval.subject.waves[0], devices: [device('a1')] }] } as RolloutApprovalSubject;
      const alteredSha = rolloutApprovalSubjectHash(altered, nobleSha256);
      refusedWith(await decide(ap2, rollout, 'approve', { signedSha: alteredSha }), 'APPROVAL_STATEMENT_MISMATCH');
      refusedWith(await decide(ap2, rollout, 'approve', { signedSha: alteredSha, sentSha: rollout.approval.subject_sha256 }), 'APPROVAL_SIGNATURE_INVALID');
      refusedWith(await decide(ap2, rollout, 'approve', { expiresAtMs: rollout.approval.expires_at_ms + 1 }), 'APPROVAL_EXPIRY_TOO_LONG');
      assert.equal((await call('GET', `/v1/rollouts/${rollout.id}`, ap1.token)).json().status, 'pending_approval', 'refusals count for nothing');

      const second = await decide(adm, rollout, 'approve');
      assert.equal(second.status, 200, second.text);
      assert.equal(second.json().started, true);
      const running = second.json().rollout;
      assert.equal(running.status, 'running');
      assert.deepEqual(running.approval.outcome.approvers, [ap1.name, adm.name]);
      assert.deepEqual(running.executions.map((e: Json) => e.state), ['notified', 'notified'], 'judged with the approvals, each device is notified');
      const sent = (await notice(device('a1')))!;
      assert.deepEqual(sent.kernel_commands.stage.requester, { name: rhea.name, role: 'approver' });
      assert.deepEqual((await audited('ota.rollout.approved', rollout.id)).map((p) => p.approver), [ap1.name, adm.name]);
      const [started] = await audited('ota.rollout.started', rollout.id);
      assert.deepEqual(started?.approvers, [ap1.name, adm.name]);
      assert.equal(started?.subject_sha256, rollout.approval.subject_sha256);
      refusedWith(await decide(ap2, rollout, 'approve'), 'APPROVAL_NOT_PENDING');
    });

    it('the Approvals inbox (GET /v1/approvals/rollouts) lists only waiting rollouts the caller may still decide, newest first', async () => {
      const awaiting = async (by: Person) => {
        const listed = await call('GET', '/v1/approvals/rollouts', by.token);
        assert.equal(listed.status, 200, listed.text);
        return (listed.json().items as Json[]).map((r) => r.id as string);
      };
      const older = await start(['i1']);
      h.clock.advance(1_000);
      const newer = await start(['i2']);
      h.clock.advance(1_000);
      // One whose rule takes only admins' approvals (the policy when it was started fixes its roles).
      const { revision } = await h.cp.policy.current();
      const adminsOnly = structuredClone(policy);
      adminsOnly.rules[1]!.conditions!.approval.roles = ['admin'];
      await h.cp.policy.set({ document: adminsOnly, expectedRevision: revision, actor: 'user:test' });
      const forAdmins = await start(['i3']);
      await h.cp.policy.set({ document: policy, expectedRevision: revision + 1, actor: 'user:test' });
      assert.deepEqual(forAdmins.approval.roles, ['admin']);
      const mine = (ids: string[]) => ids.filter((id) => [older.id, newer.id, forAdmins.id].includes(id));

      assert.deepEqual(mine(await awaiting(ap1)), [newer.id, older.id], 'newest first; not the one for admins only');
      assert.deepEqual(mine(await awaiting(adm)), [forAdmins.id, newer.id, older.id]);
      assert.deepEqual(mine(await awaiting(rhea)), [], 'never the requester\'s own');
      // One decision per approver: decided, it leaves that approver's inbox and stays in the others'.
      assert.equal((await decide(ap1, older, 'approve')).status, 200);
      assert.deepEqual(mine(await awaiting(ap1)), [newer.id]);
      assert.deepEqual(mine(await awaiting(ap2)), [newer.id, older.id]);
      // Ended (rejected), it leaves every inbox.
      assert.equal((await decide(ap2, newer, 'reject')).status, 200);
      assert.deepEqual(mine(await awaiting(adm)), [forAdmins.id, older.id]);
      // Each item is the rollout as GET /v1/rollouts shows it, subject and decisions included.
      const item = ((await call('GET', '/v1/approvals/rollouts', adm.token)).json().items as Json[]).find((r) => r.id === older.id)!;
      assert.deepEqual(item, (await call('GET', `/v1/rollouts/${older.id}`, adm.token)).json());
      // The decision routes' floor: an operator is refused.
      refusedWith(await call('GET', '/v1/approvals/rollouts', op.token), 'API_FORBIDDEN');
      refusedWith(await call('GET', '/v1/approvals/rollouts?limit=0', adm.token), 'API_VALIDATION');
      for (const rollout of [older, forAdmins]) assert.equal((await call('POST', `/v1/rollouts/${rollout.id}/abort`, rhea.token)).status, 200);
      assert.deepEqual(mine(await awaiting(adm)), []);
    });

    it('a rejection ends it rejected with OTA_ROLLOUT_APPROVAL_REJECTED; nothing is sent and later approvals are refused', async () => {
      const rollout = await start(['b1']);
      await decide(ap1, rollout, 'approve');
      const rejected = await decide(ap2, rollout, 'reject');
      assert.equal(rejected.status, 200, rejected.text);
      assert.equal(rejected.json().rollout.status, 'rejected');
      assert.equal(rejected.json().rollout.approval.outcome.code, 'OTA_ROLLOUT_APPROVAL_REJECTED');
      assert.deepEqual(rejected.json().rollout.executions, []);
      refusedWith(await decide(adm, rollout, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.equal(await notice(device('b1')), undefined);
      assert.equal((await audited('ota.rollout.approval_rejected', rollout.id))[0]?.reason, 'not this week');
      // The coordinator's sweep does not touch it.
      await h.ota.rollouts.sweep();
      assert.deepEqual((await h.ota.rollouts.view(rollout.id)).executions, []);
    });

    it('an approval window that closes ends it expired with OTA_ROLLOUT_APPROVAL_EXPIRED; an expired approval does not count', async () => {
      const swept = await start(['c1'], { approval_window_ms: 60_000 });
      const other = await start(['d1'], { approval_window_ms: 120_000 });
      // ap1's approval of `other` lasts 10 s only: by the time adm approves it no longer counts.
      await decide(ap1, other, 'approve', { expiresAtMs: h.clock.nowMs() + 10_000 });
      await decide(ap1, swept, 'approve');
      h.clock.advance(20_000);
      const late = await decide(adm, other, 'approve');
      assert.equal(late.json().started, false, late.text);
      assert.equal(late.json().rollout.status, 'pending_approval');

      h.clock.advance(41_000);
      await h.ota.rollouts.sweep();
      const ended = await h.ota.rollouts.view(swept.id);
      assert.equal(ended.status, 'expired');
      assert.equal(ended.approval?.outcome?.code, 'OTA_ROLLOUT_APPROVAL_EXPIRED');
      assert.deepEqual(ended.executions, []);
      refusedWith(await decide(adm, swept, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.equal((await audited('ota.rollout.approval_expired', swept.id)).length, 1);

      // Past its window, the next decision ends it and says why (no sweep ran).
      h.clock.advance(60_000);
      refusedWith(await decide(ap2, other, 'approve'), 'OTA_ROLLOUT_APPROVAL_EXPIRED');
      assert.equal((await h.ota.rollouts.view(other.id)).status, 'expired');
      assert.equal(await notice(device('d1')), undefined);
    });

    it('an operator\'s abort ends a waiting rollout aborted', async () => {
      const rollout = await start(['e1']);
      const aborted = await call('POST', `/v1/rollouts/${rollout.id}/abort`, rhea.token);
      assert.equal(aborted.status, 200, aborted.text);
      assert.equal(aborted.json().status, 'aborted');
      assert.equal(aborted.json().approval.outcome.state, 'aborted');
      refusedWith(await decide(ap1, rollout, 'approve'), 'APPROVAL_NOT_PENDING');
      refusedWith(await call('POST', `/v1/rollouts/${rollout.id}/resume`, rhea.token), 'OTA_ROLLOUT_STATE');
    });

    /**
     * A RolloutService on the same stores, as another control plane process (or this one after a
     * restart) has one: `signer` its command key, `beforeTransaction` run once before its first
     * transaction begins (after the reads that precede it).
     */
    const otherControlPlane = (options: { signer?: ServiceSigner; beforeTransaction?: () => Promise<void> } = {}): RolloutService => {
      const db = h.cp.context.db;
      let hook = options.beforeTransaction;
      const racing = new Proxy(db, {
        get(target, property) {
          if (property === 'transaction') {
            return async <T>(fn: Parameters<SqlDatabase['transaction']>[0]): Promise<T> => {
              const run = hook;
              hook = undefined;
              if (run !== undefined) await run();
              return target.transaction(fn) as Promise<T>;
            };
          }
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      return new RolloutService({
        context: { ...h.cp.context, db: racing }, releases: h.ota.releases, signer: options.signer ?? h.materials.commandSigner,
        policy: rolloutPolicyOf(h.cp, (name) => people.find((p) => p.name === name)?.role as never),
        verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
        approvals: { signingKeys: new SigningKeyStore({ db: h.db, audit: h.cp.context.audit }) },
      });
    };

    it('an operator\'s abort that loses the race with the last approval applies to the running rollout, not refused APPROVAL_NOT_PENDING', async () => {
      const rollout = await start(['f1']);
      assert.equal((await decide(ap1, rollout, 'approve')).json().started, false);
      // The abort reads the rollout waiting; the last approval starts it before the abort's own transaction begins.
      let last: { status: number; json: () => Json; text: string } | undefined;
      const other = otherControlPlane({ beforeTransaction: async () => { last = await decide(adm, rollout, 'approve'); } });
      const aborted = await other.act(rollout.id, 'abort', rhea.name);
      assert.equal(last?.json().started, true, last?.text);
      assert.equal(aborted.status, 'aborted');
      assert.equal(aborted.approval?.outcome?.state, 'started', 'the approvals started it; the abort ended the run');
      // As any running rollout's abort: no later wave starts; the execution already notified goes on (emergency_abort cancels it).
      assert.deepEqual(aborted.executions.map((e) => e.state), ['notified']);
      assert.deepEqual(await audited('ota.rollout.abort', rollout.id), [{ cancel: 0, wave: 0 }], 'audited as a running rollout\'s abort, not as the end of a wait');
      assert.equal((await audited('ota.rollout.started', rollout.id)).length, 1);
    });

    it('a start judged after a command-key rotation during the wait is refused APPROVAL_STATEMENT_MISMATCH; nothing starts', async () => {
      const rollout = await start(['g1', 'g2']);
      assert.equal(rollout.approval.subject.issuer, h.materials.commandSigner.kid, 'the approvers are shown the key that will sign');
      assert.equal((await decide(ap1, rollout, 'approve')).json().started, false);
      // The control plane restarted with a rotated command key (rotateCommandSigningKey): another key signs from now on.
      const seed = new Uint8Array(randomBytes(32));
      const publicKey = provider.publicKeyFromSeed(seed);
      const rotated = otherControlPlane({ signer: { kid: serviceKid('cp', publicKey), seed, publicKey } });
      const sha = rolloutApprovalSubjectHash(rollout.approval.subject as RolloutApprovalSubject, nobleSha256);
      const expiresAtMs = rollout.approval.expires_at_ms as number;
      const signature = signApproval({
        statement: { command_id: rollout.id, command_sha256: sha, decision: 'approve', approver: adm.name, kid: adm.kid, expires_at: expiresAtMs },
        seed: adm.seed, provider,
      });
      await assert.rejects(
        rotated.decide({ actor: { name: adm.name, role: adm.role }, rolloutId: rollout.id, decision: 'approve', subjectSha256: sha, kid: adm.kid, expiresAtMs, signature }),
        (error: unknown) => (error as { code?: string }).code === 'APPROVAL_STATEMENT_MISMATCH',
      );
      const view = await h.ota.rollouts.view(rollout.id);
      assert.equal(view.status, 'pending_approval', 'not started');
      assert.deepEqual(view.executions, []);
      assert.equal(await notice(device('g1')), undefined, 'nothing signed with the new key reached a device');
      assert.equal((await audited('ota.rollout.started', rollout.id)).length, 0);
    });

    it('a rollout started with approvals and paused on its error threshold is not resumed without them: its creator and an operator are refused OTA_ROLLOUT_APPROVAL_REQUIRED (403), an admin resumes it', async () => {
      for (const name of ['r1', 'r2']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device(name), h.clock.nowMs()]);
      const strict = (name: string) => ({
        device_ids: [device(name)], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 },
      });
      const rollout = await start(['r1', 'r2'], { waves: [strict('r1'), strict('r2')] });
      await decide(ap1, rollout, 'approve');
      assert.equal((await decide(adm, rollout, 'approve')).json().started, true);
      // The first wave's device refuses the update (reports taken as verified on this service): over the threshold, paused.
      const first = (await notice(device('r1')))!;
      await otherControlPlane().onReport({
        device_id: device('r1'), gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify({ execution_id: first.execution_id, event: 'refuse', report_id: `r-${tag}` }),
      });
      const paused = (await call('GET', `/v1/rollouts/${rollout.id}`, rhea.token)).json();
      assert.deepEqual([paused.status, paused.pause_reason], ['paused', 'error_threshold']);
      for (const by of [rhea, op]) {
        const refused = await call('POST', `/v1/rollouts/${rollout.id}/resume`, by.token);
        assert.equal(refused.status, 403, refused.text);
        refusedWith(refused, 'OTA_ROLLOUT_APPROVAL_REQUIRED');
      }
      assert.equal(await notice(device('r2')), undefined, 'the second wave is told nothing');
      assert.deepEqual((await audited('ota.rollout.resume_denied', rollout.id)).map((p) => [p.code, p.safety_stop]),
        [['OTA_ROLLOUT_APPROVAL_REQUIRED', 'error_threshold'], ['OTA_ROLLOUT_APPROVAL_REQUIRED', 'error_threshold']]);
      const resumed = await call('POST', `/v1/rollouts/${rollout.id}/resume`, adm.token);
      assert.equal(resumed.status, 200, resumed.text);
      assert.equal(resumed.json().status, 'running');
      assert.ok(await notice(device('r2')), 'resumed by an admin, whom the policy lets start it without approvals');
    });
  });
}
