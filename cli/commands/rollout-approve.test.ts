import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { OtaServices } from '../../server/ota/ota-service.js';
import type { RepositoryKeys } from '../../server/ota/repository-init.js';
import { makeOtaHarness, publishTestRelease } from '../../server/ota/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';
import { checkedRolloutSubject, type PendingRolloutView } from './approvals.js';

/**
 * sdc rollout approve|reject (docs/ota.md, "Rollouts that need approvals") against a control
 * plane serving HTTPS in this process (sql.js), each person with their own CLI home: a rollout the
 * policy lets its creator start only with two approvals waits; each approver's CLI shows the
 * content, recomputes the subject hash, signs with their approval key (created and registered on
 * first use with their password) and sends it; the second approval starts it. A rejection ends
 * another one. The CLI signs nothing when the server's subject does not match the rollout it shows.
 * What the server checks is server/ota/rollout-approvals.test.ts's.
 */
describe('sdc rollout approve|reject', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let base: string;
  let url: string;
  let caFile: string;
  const password = 'correct horse battery staple';

  const sdc = async (who: string, argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: join(base, who) } };
    return { code: await main(argv, io), stdout, stderr };
  };
  const startRollout = async (device: string) => {
    const started = await sdc('rhea', ['rollout', 'start', '--release', 'cli-rel-a', '--platform', 'linux-x64', '--device', device, '--wave', '100%', '--approval-window', '2h', '--json']);
    assert.equal(started.code, 0, started.stderr);
    return JSON.parse(started.stdout) as PendingRolloutView & { executions: unknown[] };
  };

  before(async () => {
    h = await makeOtaHarness(sqlJsTarget);
    base = await mkdtemp(join(tmpdir(), 'sdc-rollout-approve-cli-'));
    caFile = join(base, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    url = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url.replace('127.0.0.1', 'localhost');
    const { revision } = await h.cp.policy.current();
    await h.cp.policy.set({
      document: {
        version: 1,
        rules: [
          { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
          { id: 'updates-four-eyes', effect: 'allow', roles: ['approver'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 2, roles: ['approver', 'admin'] } } },
        ],
      },
      expectedRevision: revision, actor: 'user:test',
    });
    for (const [name, role] of [['rhea', 'approver'], ['ap1', 'approver'], ['adm', 'admin']] as const) {
      await h.cp.auth.users.add({ name, role, password, nowMs: h.clock.nowMs() });
      assert.equal((await sdc(name, ['login', '--server', url, '--name', name, '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    }
    for (const id of ['cli-ra-1', 'cli-ra-2']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
    await publishTestRelease(h.ota, h.keys!, { id: 'cli-rel-a', version: '5.0.0', artifact: new TextEncoder().encode('firmware 5.0.0') });
  });
  after(async () => {
    await h.close();
    await rm(base, { recursive: true, force: true });
  });

  it('a rollout waits for two approvals; each approver\'s CLI shows what it signs; the second starts it', async () => {
    const rollout = await startRollout('cli-ra-1');
    assert.equal(rollout.status, 'pending_approval');
    assert.deepEqual(rollout.executions, []);
    const shown = await sdc('rhea', ['rollout', 'status', rollout.id]);
    assert.match(shown.stdout, /\tpending_approval\t/);
    assert.match(shown.stdout, /\n {2}approvals: 0\/2 from approver\|admin; until /);

    // The first approval registers the key: it needs the password.
    const first = await sdc('ap1', ['rollout', 'approve', rollout.id, '--password-stdin'], `${password}\n`);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`rollout ${rollout.id} asked by rhea: release cli-rel-a 5\\.0\\.0 .*sha256 [0-9a-f]{64}\\) on linux-x64, 1 devices in 1 wave\\(s\\)`));
    assert.equal(first.stdout, `${rollout.id} approved; now pending_approval\n`);
    // The requester's own approval is refused by the server.
    const own = await sdc('rhea', ['rollout', 'approve', rollout.id, '--password-stdin'], `${password}\n`);
    assert.notEqual(own.code, 0);
    assert.match(own.stderr, /APPROVAL_BY_REQUESTER/);

    const second = await sdc('adm', ['rollout', 'approve', rollout.id, '--password-stdin', '--json'], `${password}\n`);
    assert.equal(second.code, 0, second.stderr);
    const answer = JSON.parse(second.stdout) as { started: boolean; rollout: { status: string; executions: Array<{ device_id: string; state: string }> } };
    assert.equal(answer.started, true);
    assert.equal(answer.rollout.status, 'running');
    assert.deepEqual(answer.rollout.executions.map((e) => [e.device_id, e.state]), [['cli-ra-1', 'notified']]);
    assert.match((await sdc('rhea', ['rollout', 'status', rollout.id])).stdout, /\n {2}approvals: 2\/2 from approver\|admin \((ap1, adm|adm, ap1)\); started\n/);
  });

  it('a rejection ends a rollout rejected; the reason is required', async () => {
    const rollout = await startRollout('cli-ra-2');
    const bare = await sdc('ap1', ['rollout', 'reject', rollout.id]);
    assert.notEqual(bare.code, 0);
    assert.match(bare.stderr, /--reason/);
    const rejected = await sdc('ap1', ['rollout', 'reject', rollout.id, '--reason', 'change freeze']);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.equal(rejected.stdout, `${rollout.id} rejected; now rejected\n`);
    assert.match((await sdc('rhea', ['rollout', 'status', rollout.id])).stdout, /approvals: 0\/2 .*; rejected OTA_ROLLOUT_APPROVAL_REJECTED\n/);
  });

  it('signs nothing when the server\'s subject does not match the rollout it shows', async () => {
    const rollout = await startRollout('cli-ra-1');
    assert.doesNotThrow(() => checkedRolloutSubject(rollout));
    const otherDevices = { ...rollout, waves: [{ devices: ['cli-ra-2'] }] };
    assert.throws(() => checkedRolloutSubject(otherDevices), { code: 'APPROVAL_STATEMENT_MISMATCH' });
    const otherArtifact = { ...rollout, approval: { ...rollout.approval!, subject: { ...rollout.approval!.subject, target: { ...rollout.approval!.subject.target, sha256: '0'.repeat(64) } } } };
    assert.throws(() => checkedRolloutSubject(otherArtifact), { code: 'APPROVAL_STATEMENT_MISMATCH' });
    assert.throws(() => checkedRolloutSubject({ ...rollout, status: 'running' }), { code: 'APPROVAL_NOT_PENDING' });
  });
});
