import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { rolloutResumeSubjectHash, type RolloutResumeSubject } from '../../core/ota/rollout-resume-approval.js';
import { signApproval, type ApprovalDecision } from '../../core/protocol/approvals.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { PolicyRole } from '../../core/protocol/policy.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import { SigningKeyStore } from '../control-plane/signing-keys.js';
import type { OtaServices } from './ota-service.js';
import type { RepositoryKeys } from './repository-init.js';
import { RolloutService } from './rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from './test-support.js';

/**
 * Approvals for a resume past a safety stop (decision 0019, docs/ota.md "Resuming after a safety
 * stop"), through the HTTP API of a control plane as `sdc serve` wires it, on sql.js and on MySQL
 * when set. A rollout started by an admin pauses on its error threshold; the policy lets operators
 * and approvers update only with two approvals. Their plain resume is refused
 * OTA_ROLLOUT_APPROVAL_REQUIRED; a resume request waits with the stop it waives; the requester's own
 * approval and a second one by the same approver are refused; the second distinct approval resumes
 * it. A request whose stop changed (the wave's figures, a resume by an admin) never resumes it
 * (OTA_ROLLOUT_RESUME_STALE, APPROVAL_NOT_PENDING); an abort ends the request; a requester the policy
 * denies beyond approvals is refused OTA_ROLLOUT_POLICY_DENIED; a rejection and an expired window
 * end it with the rollout still paused. Every step is in the audit log.
 */

const provider = createNodeEd25519Provider();
const password = 'correct horse battery staple';
const artifact = new TextEncoder().encode('firmware 5.0.0 '.repeat(32));

const policy = {
  version: 1,
  rules: [
    { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'no-updates-lab', effect: 'deny', roles: ['operator', 'approver'], opcodes: ['EXEC_STAGE_UPDATE'], devices: { tags: ['lab'] } },
    {
      id: 'updates-four-eyes', effect: 'allow', roles: ['operator', 'approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*',
      conditions: { approval: { count: 2, roles: ['approver', 'admin'] } },
    },
  ],
};

interface Person { readonly name: string; readonly role: PolicyRole; readonly seed: Uint8Array; token: string; kid: string }
type Json = Record<string, any>;

for (const pair of storePairs().pairs) {
  describe(`resuming a rollout past a safety stop with approvals (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    let reporter: RolloutService;
    const tag = Math.random().toString(16).slice(2, 8);
    const device = (name: string) => `rr-${tag}-${name}`;
    const releaseId = `relr-${tag}`;
    const people: Person[] = [];
    const person = (name: string, role: PolicyRole): Person => {
      const p = { name: `${name}-${tag}`, role, seed: new Uint8Array(randomBytes(32)), token: '', kid: '' };
      people.push(p);
      return p;
    };
    // The requester is an approver the rule covers, so approving their own request is a real attempt.
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
    const refusedWith = (response: { json: () => Json; text: string }, code: string) => assert.equal(response.json().error?.code, code, response.text);
    const notice = async (deviceId: string): Promise<MessageBody<'OTA_NOTICE'> | undefined> => {
      const text = await h.cp.context.kv.get(otaKeys.notice(deviceId));
      return text === null ? undefined : JSON.parse(text) as MessageBody<'OTA_NOTICE'>;
    };
    const refuse = async (name: string) => {
      const first = (await notice(device(name)))!;
      await reporter.onReport({
        device_id: device(name), gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify({ execution_id: first.execution_id, event: 'refuse', report_id: `r-${name}-${tag}` }),
      });
    };
    const wave = (names: string[]) => ({
      device_ids: names.map(device), success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 },
    });
    /** A rollout by the admin (no approvals needed) whose first wave's first device refuses: paused on its error threshold. */
    const pausedOnErrors = async (waves: string[][]) => {
      const names = waves.flat();
      for (const name of names) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device(name), h.clock.nowMs()]);
      const created = await call('POST', '/v1/rollouts', adm.token, {
        release_id: releaseId, platform: 'linux-x64', device_ids: names.map(device), devices_per_minute_max: 100, waves: waves.map(wave),
      });
      assert.equal(created.status, 201, created.text);
      await refuse(waves[0]![0]!);
      const paused = await view(created.json().id as string);
      assert.deepEqual([paused.status, paused.pause_reason], ['paused', 'error_threshold']);
      return paused;
    };
    const view = async (id: string) => (await call('GET', `/v1/rollouts/${id}`, op.token)).json();
    const ask = (by: Person, id: string, extra: Json = {}) => call('POST', `/v1/rollouts/${id}/resume-request`, by.token, { reason: 'the refusal was a lab cable', ...extra });
    /** An approver's signed decision on the rollout's resume request as shown in `rollout`. */
    const decide = async (by: Person, rollout: Json, decision: ApprovalDecision) => {
      const request = rollout.resume_request;
      const sha = rolloutResumeSubjectHash(request.subject as RolloutResumeSubject, nobleSha256);
      const reason = decision === 'reject' ? 'find out why first' : undefined;
      const signature = signApproval({
        statement: {
          command_id: request.id, command_sha256: sha, decision, approver: by.name, kid: by.kid, expires_at: request.expires_at_ms, ...(reason === undefined ? {} : { reason }),
        },
        seed: by.seed, provider,
      });
      return call('POST', `/v1/rollouts/${rollout.id}/resume-request/${decision}`, by.token, {
        request_id: request.id, subject_sha256: sha, kid: by.kid, expires_at_ms: request.expires_at_ms, signature, ...(reason === undefined ? {} : { reason }),
      });
    };
    const audited = async (kind: string, rolloutId: string) => {
      const rows = await h.db.query<{ actor: string; payload_json: string }>('SELECT actor, payload_json FROM audit_log WHERE kind = ? AND subject = ? ORDER BY seq ASC', [kind, `rollout:${rolloutId}`]);
      return rows.map((row): Json => ({ actor: row.actor, ...JSON.parse(row.payload_json) as Json }));
    };
    const inbox = async (by: Person) => ((await call('GET', '/v1/approvals/rollouts', by.token)).json().items as Json[]).map((r) => r.id as string);

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      const nowMs = h.clock.nowMs();
      await publishTestRelease(h.ota, h.keys!, { id: releaseId, version: '5.0.0', artifact });
      const { revision } = await h.cp.policy.current();
      await h.cp.policy.set({ document: policy, expectedRevision: revision, actor: 'user:test' });
      for (const p of people) {
        await h.cp.auth.users.add({ name: p.name, role: p.role, password, nowMs });
        p.token = (await call('POST', '/v1/auth/login', undefined, { name: p.name, password })).json().token as string;
        const registered = await call('PUT', '/v1/users/me/signing-key', p.token, { public_key: base64urlFromBytes(provider.publicKeyFromSeed(p.seed)), current_password: password });
        assert.equal(registered.status, 200, registered.text);
        p.kid = registered.json().kid as string;
      }
      // Reports taken as verified: the same stores, another coordinator (the control plane's verifies device-signed frames).
      reporter = new RolloutService({
        context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner,
        policy: rolloutPolicyOf(h.cp, (name) => people.find((p) => p.name === name)?.role as never),
        verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
        approvals: { signingKeys: new SigningKeyStore({ db: h.db, audit: h.cp.context.audit }) },
      });
    });
    after(async () => { await h?.close(); await pair.sql.cleanup(); });

    it('a resume the policy allows only with approvals waits for two distinct approvers other than the requester, then resumes; audited', async () => {
      const paused = await pausedOnErrors([['a1'], ['a2']]);
      refusedWith(await call('POST', `/v1/rollouts/${paused.id}/resume`, rhea.token), 'OTA_ROLLOUT_APPROVAL_REQUIRED');
      assert.deepEqual((await call('GET', `/v1/rollouts/${paused.id}/resume-authority`, rhea.token)).json(),
        (await call('GET', `/v1/rollouts/${paused.id}/resume-authority`, op.token)).json(), 'the same rule covers both');
      const authority = (await call('GET', `/v1/rollouts/${paused.id}/resume-authority`, rhea.token)).json();
      assert.deepEqual([authority.verdict, authority.safety_stop, authority.code], ['approval_required', 'error_threshold', 'OTA_ROLLOUT_APPROVAL_REQUIRED']);
      assert.equal((await call('GET', `/v1/rollouts/${paused.id}/resume-authority`, adm.token)).json().verdict, 'allowed');

      const asked = await ask(rhea, paused.id);
      assert.equal(asked.status, 201, asked.text);
      const rollout = asked.json();
      const request = rollout.resume_request;
      assert.equal(rollout.status, 'paused');
      assert.equal(request.waiting, true);
      assert.match(request.id, /^rr-[0-9a-f]{32}$/);
      assert.deepEqual([request.count, request.rule_id, request.outcome], [2, 'updates-four-eyes', null]);
      assert.deepEqual([request.subject.requested_by, request.subject.reason, request.subject.wave, request.subject.safety_stop, request.subject.wave_stats],
        [rhea.name, 'the refusal was a lab cable', 0, 'error_threshold', { size: 1, executed: 1, failed: 1, succeeded: 0 }]);
      assert.equal(request.subject_sha256, rolloutResumeSubjectHash(request.subject, nobleSha256), 'the hash is the shown subject\'s');
      refusedWith(await ask(op, paused.id), 'OTA_ROLLOUT_RESUME_PENDING');
      assert.ok((await inbox(ap1)).includes(paused.id), 'the Approvals inbox lists the request');
      assert.ok(!(await inbox(rhea)).includes(paused.id), 'not to its requester');

      refusedWith(await decide(rhea, rollout, 'approve'), 'APPROVAL_BY_REQUESTER');
      const first = await decide(ap1, rollout, 'approve');
      assert.equal(first.status, 200, first.text);
      assert.deepEqual([first.json().resumed, first.json().rollout.status], [false, 'paused'], 'one approval of two');
      assert.equal(await notice(device('a2')), undefined, 'nothing sent yet');
      refusedWith(await decide(ap1, rollout, 'approve'), 'APPROVAL_DUPLICATE');
      assert.ok(!(await inbox(ap1)).includes(paused.id), 'decided: out of ap1\'s inbox');
      const second = await decide(ap2, rollout, 'approve');
      assert.equal(second.status, 200, second.text);
      assert.deepEqual([second.json().resumed, second.json().rollout.status], [true, 'running']);
      assert.ok(await notice(device('a2')), 'the next wave is notified');
      const ended = second.json().rollout.resume_request;
      assert.deepEqual([ended.waiting, ended.outcome.state, ended.outcome.approvers], [false, 'resumed', [ap1.name, ap2.name]]);
      assert.ok(!(await inbox(adm)).includes(paused.id));

      assert.deepEqual((await audited('ota.rollout.resume_requested', paused.id)).map((a) => [a.actor, a.request_id, a.safety_stop, a.wave_stats]),
        [[`user:${rhea.name}`, request.id, 'error_threshold', { size: 1, executed: 1, failed: 1, succeeded: 0 }]]);
      assert.deepEqual((await audited('ota.rollout.resume_approved', paused.id)).map((a) => [a.approver, a.request_id]), [[ap1.name, request.id], [ap2.name, request.id]]);
      const [resumed] = await audited('ota.rollout.resume', paused.id);
      assert.deepEqual([resumed?.actor, resumed?.request_id, resumed?.approvers, resumed?.released_by], [`user:${rhea.name}`, request.id, [ap1.name, ap2.name], ap2.name]);
    });

    it('a resume request where no approval is needed is refused OTA_ROLLOUT_RESUME_NOT_NEEDED and stores nothing', async () => {
      const paused = await pausedOnErrors([['n1'], ['n2']]);
      // The policy lets an admin resume past this stop directly: asking approvers would only delay it.
      refusedWith(await ask(adm, paused.id), 'OTA_ROLLOUT_RESUME_NOT_NEEDED');
      assert.equal((await view(paused.id)).resume_request ?? null, null, 'no request stored');
      assert.deepEqual(await audited('ota.rollout.resume_requested', paused.id), []);
    });

    it('a request for a stop whose figures changed ends stale and resumes nothing; a request for the stop as it is now does', async () => {
      const paused = await pausedOnErrors([['b1', 'b2'], ['b3']]);
      const rollout = (await ask(op, paused.id)).json();
      assert.equal(rollout.resume_request.subject.wave_stats.failed, 1);
      assert.equal((await decide(ap1, rollout, 'approve')).json().resumed, false);
      await refuse('b2'); // still in flight when asked: now two failures, which nobody approved waiving
      refusedWith(await decide(ap2, rollout, 'approve'), 'OTA_ROLLOUT_RESUME_STALE');
      const after = await view(paused.id);
      assert.deepEqual([after.status, after.resume_request.waiting, after.resume_request.outcome.state, after.resume_request.outcome.code],
        ['paused', false, 'stale', 'OTA_ROLLOUT_RESUME_STALE']);
      assert.equal(await notice(device('b3')), undefined);
      refusedWith(await decide(adm, rollout, 'approve'), 'APPROVAL_NOT_PENDING');

      const again = (await ask(op, paused.id)).json();
      assert.notEqual(again.resume_request.id, rollout.resume_request.id);
      assert.deepEqual(again.resume_request.subject.wave_stats, { size: 2, executed: 2, failed: 2, succeeded: 0 });
      await decide(ap1, again, 'approve');
      assert.equal((await decide(adm, again, 'approve')).json().resumed, true);
      assert.ok(await notice(device('b3')));
      assert.deepEqual((await audited('ota.rollout.resume_request_ended', paused.id)).map((a) => [a.state, a.code]), [['stale', 'OTA_ROLLOUT_RESUME_STALE']]);
    });

    it('an approval of an older stop never resumes a later one: a resume by an admin ends the waiting request superseded', async () => {
      const paused = await pausedOnErrors([['c1'], ['c2'], ['c3']]);
      const older = (await ask(op, paused.id)).json();
      await decide(ap1, older, 'approve');
      assert.equal((await call('POST', `/v1/rollouts/${paused.id}/resume`, adm.token)).json().status, 'running');
      const superseded = await view(paused.id);
      assert.deepEqual([superseded.resume_request.waiting, superseded.resume_request.outcome.state, superseded.resume_request.outcome.by], [false, 'superseded', adm.name]);
      await refuse('c2'); // the second wave stops too: a later stop
      assert.deepEqual([(await view(paused.id)).status, (await view(paused.id)).wave_index], ['paused', 1]);
      refusedWith(await decide(ap2, older, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.equal((await view(paused.id)).status, 'paused');
      assert.equal(await notice(device('c3')), undefined, 'the third wave is told nothing');
    });

    it('an abort while a resume request waits ends it aborted; later approvals are refused, nothing is sent', async () => {
      const paused = await pausedOnErrors([['d1'], ['d2']]);
      const rollout = (await ask(op, paused.id)).json();
      await decide(ap1, rollout, 'approve');
      const aborted = await call('POST', `/v1/rollouts/${paused.id}/abort`, op.token);
      assert.equal(aborted.json().status, 'aborted', aborted.text);
      assert.deepEqual([aborted.json().resume_request.waiting, aborted.json().resume_request.outcome.state], [false, 'aborted']);
      refusedWith(await decide(ap2, rollout, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.equal((await view(paused.id)).status, 'aborted');
      assert.equal(await notice(device('d2')), undefined);
      assert.deepEqual((await audited('ota.rollout.resume_request_ended', paused.id)).map((a) => [a.actor, a.state]), [[`user:${op.name}`, 'aborted']]);
      assert.ok(!(await inbox(ap2)).includes(paused.id));
    });

    it('a requester the policy denies beyond approvals is refused OTA_ROLLOUT_POLICY_DENIED, audited, no request stored; a rejection ends a request, the rollout stays paused', async () => {
      const paused = await pausedOnErrors([['e1'], ['e2']]);
      await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [device('e2'), 'lab']);
      refusedWith(await ask(op, paused.id), 'OTA_ROLLOUT_POLICY_DENIED');
      assert.equal((await view(paused.id)).resume_request, null);
      assert.equal((await call('GET', `/v1/rollouts/${paused.id}/resume-authority`, op.token)).json().verdict, 'denied');
      const [denied] = await audited('ota.rollout.resume_denied', paused.id);
      assert.deepEqual([denied?.actor, denied?.code, denied?.safety_stop], [`user:${op.name}`, 'OTA_ROLLOUT_POLICY_DENIED', 'error_threshold']);
      await h.db.execute('DELETE FROM device_tags WHERE device_id = ?', [device('e2')]);

      const rollout = (await ask(op, paused.id)).json();
      const rejected = await decide(ap1, rollout, 'reject');
      assert.deepEqual([rejected.json().resumed, rejected.json().rollout.status, rejected.json().rollout.resume_request.outcome.state], [false, 'paused', 'rejected']);
      refusedWith(await decide(ap2, rollout, 'approve'), 'APPROVAL_NOT_PENDING');
      assert.deepEqual((await audited('ota.rollout.resume_rejected', paused.id)).map((a) => [a.approver, a.reason]), [[ap1.name, 'find out why first']]);
      assert.equal(await notice(device('e2')), undefined);
    });

    it('a request whose window closed ends expired (at a decision, or by the sweep); the rollout stays paused and may be asked again', async () => {
      const paused = await pausedOnErrors([['f1'], ['f2']]);
      refusedWith(await ask(op, paused.id, { approval_window_ms: 30_000 }), 'API_VALIDATION');
      const rollout = (await ask(op, paused.id, { approval_window_ms: 60_000 })).json();
      h.clock.advance(60_000);
      refusedWith(await decide(ap1, rollout, 'approve'), 'OTA_ROLLOUT_RESUME_EXPIRED');
      assert.deepEqual([(await view(paused.id)).status, (await view(paused.id)).resume_request.outcome.state], ['paused', 'expired']);
      const next = (await ask(op, paused.id, { approval_window_ms: 60_000 })).json();
      assert.equal(next.resume_request.waiting, true);
      h.clock.advance(60_000);
      await h.ota.rollouts.sweep();
      assert.equal((await view(paused.id)).resume_request.outcome.state, 'expired');
      assert.deepEqual((await audited('ota.rollout.resume_request_ended', paused.id)).map((a) => [a.actor, a.state]), [['system', 'expired'], ['system', 'expired']]);
    });
  });
}
