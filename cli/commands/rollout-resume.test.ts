import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { otaKeys } from '../../server/bus-contract/ota-keys.js';
import { SigningKeyStore } from '../../server/control-plane/signing-keys.js';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { OtaServices } from '../../server/ota/ota-service.js';
import type { RepositoryKeys } from '../../server/ota/repository-init.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from '../../server/ota/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';
import { checkedResumeSubject, type ResumableRolloutView } from './approvals.js';

/**
 * sdc rollout resume-request|resume-approve|resume-reject (decision 0019, docs/ota.md "Approvals
 * for a resume") against a control plane serving HTTPS in this process (sql.js), each person with
 * their own CLI home: a rollout started by an admin pauses on its error threshold; an approver the
 * policy lets resume only with an admin's approval is refused a plain resume, asks with a reason;
 * the admin's CLI shows the stop, recomputes the subject hash, signs and sends: it resumes. The CLI
 * signs nothing when the server's subject does not match the rollout and request it shows. What the
 * server checks is server/ota/rollout-resume-approvals.test.ts's.
 */
describe('sdc rollout resume-request|resume-approve|resume-reject', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let reporter: RolloutService;
  let base: string;
  const password = 'correct horse battery staple';

  const sdc = async (who: string, argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: join(base, who) } };
    return { code: await main(argv, io), stdout, stderr };
  };
  /** A two-wave rollout by the admin whose first device refuses: paused on its error threshold. */
  const pausedOnErrors = async (first: string, second: string) => {
    const started = await sdc('adm', ['rollout', 'start', '--release', 'cli-rel-r', '--platform', 'linux-x64', '--device', first, '--device', second,
      '--wave', first, '--wave', second, '--failed-percent-max', '0', '--executed-min', '1', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const rollout = JSON.parse(started.stdout) as { id: string };
    const notice = JSON.parse((await h.cp.context.kv.get(otaKeys.notice(first)))!) as MessageBody<'OTA_NOTICE'>;
    await reporter.onReport({ device_id: first, gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify({ execution_id: notice.execution_id, event: 'refuse', report_id: `r-${first}` }) });
    return rollout.id;
  };

  before(async () => {
    h = await makeOtaHarness(sqlJsTarget);
    base = await mkdtemp(join(tmpdir(), 'sdc-rollout-resume-cli-'));
    const caFile = join(base, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    const url = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url.replace('127.0.0.1', 'localhost');
    const { revision } = await h.cp.policy.current();
    await h.cp.policy.set({
      document: {
        version: 1,
        rules: [
          { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
          { id: 'updates-with-admin', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['admin'] } } },
        ],
      },
      expectedRevision: revision, actor: 'user:test',
    });
    const roles = { rhea: 'approver', adm: 'admin' } as const;
    for (const [name, role] of Object.entries(roles)) {
      await h.cp.auth.users.add({ name, role, password, nowMs: h.clock.nowMs() });
      assert.equal((await sdc(name, ['login', '--server', url, '--name', name, '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    }
    for (const id of ['cli-rr-1', 'cli-rr-2', 'cli-rr-3', 'cli-rr-4']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
    await publishTestRelease(h.ota, h.keys!, { id: 'cli-rel-r', version: '6.0.0', artifact: new TextEncoder().encode('firmware 6.0.0') });
    // Device reports taken as verified: the same stores, another coordinator.
    reporter = new RolloutService({
      context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp, (name) => roles[name as keyof typeof roles]),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
      approvals: { signingKeys: new SigningKeyStore({ db: h.db, audit: h.cp.context.audit }) },
    });
  });
  after(async () => {
    await h.close();
    await rm(base, { recursive: true, force: true });
  });

  it('an approver refused a plain resume asks with a reason; the admin\'s CLI shows the stop, signs and the rollout resumes', async () => {
    const id = await pausedOnErrors('cli-rr-1', 'cli-rr-2');
    const plain = await sdc('rhea', ['rollout', 'resume', id]);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /OTA_ROLLOUT_APPROVAL_REQUIRED/);
    assert.match((await sdc('rhea', ['rollout', 'resume-request', id])).stderr, /--reason/);
    const asked = await sdc('rhea', ['rollout', 'resume-request', id, '--reason', 'a lab cable', '--approval-window', '2h']);
    assert.equal(asked.code, 0, asked.stderr);
    assert.match(asked.stdout, /\tpaused \(error_threshold\)\t/);
    assert.match(asked.stdout, /\n {2}resume request rr-[0-9a-f]{32} by rhea: 0\/1 from admin; waiting until /);

    const own = await sdc('rhea', ['rollout', 'resume-approve', id, '--password-stdin'], `${password}\n`);
    assert.notEqual(own.code, 0);
    assert.match(own.stderr, /APPROVAL_BY_REQUESTER/);
    const approved = await sdc('adm', ['rollout', 'resume-approve', id, '--password-stdin'], `${password}\n`);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stderr, new RegExp(`resume of rollout ${id} \\(request rr-[0-9a-f]{32}\\) asked by rhea: "a lab cable"; waives wave 1's error_threshold \\(1 of 1 executed failed, 0 of 1 succeeded; paused: error_threshold\\)`));
    assert.equal(approved.stdout, `${id} resume approved; resumed\n`);
    const status = await sdc('rhea', ['rollout', 'status', id]);
    assert.match(status.stdout, /\trunning\t/);
    assert.match(status.stdout, /resume request rr-[0-9a-f]{32} by rhea: 1\/1 from admin \(adm\); resumed\n/);
  });

  it('a rejection leaves the rollout paused; nothing is signed for a subject that is not the rollout and request shown', async () => {
    const id = await pausedOnErrors('cli-rr-3', 'cli-rr-4');
    assert.equal((await sdc('rhea', ['rollout', 'resume-request', id, '--reason', 'try again'])).code, 0);
    const view = JSON.parse((await sdc('rhea', ['rollout', 'status', id, '--json'])).stdout) as ResumableRolloutView;
    assert.doesNotThrow(() => checkedResumeSubject(view));
    const request = view.resume_request!;
    assert.throws(() => checkedResumeSubject({ ...view, wave_index: 1 }), { code: 'APPROVAL_STATEMENT_MISMATCH' });
    assert.throws(() => checkedResumeSubject({ ...view, resume_request: { ...request, subject: { ...request.subject, wave_stats: { ...request.subject.wave_stats, failed: 0 } } } }), { code: 'APPROVAL_STATEMENT_MISMATCH' });
    assert.throws(() => checkedResumeSubject({ ...view, resume_request: { ...request, id: `rr-${'0'.repeat(32)}` } }), { code: 'APPROVAL_STATEMENT_MISMATCH' });
    const rejected = await sdc('adm', ['rollout', 'resume-reject', id, '--reason', 'find out why first', '--password-stdin'], `${password}\n`);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.equal(rejected.stdout, `${id} resume rejected; now paused\n`);
    assert.match((await sdc('rhea', ['rollout', 'status', id])).stdout, /resume request rr-[0-9a-f]{32} by rhea: 0\/1 from admin; rejected OTA_ROLLOUT_RESUME_REJECTED\n/);
    const ended = JSON.parse((await sdc('rhea', ['rollout', 'status', id, '--json'])).stdout) as ResumableRolloutView;
    assert.throws(() => checkedResumeSubject(ended), { code: 'APPROVAL_NOT_PENDING' });
  });
});
