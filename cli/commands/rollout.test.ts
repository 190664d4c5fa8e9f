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

/**
 * sdc rollout start|status|pause|resume|abort against a control plane with an image repository
 * serving HTTPS in this process (sql.js): the request each builds, the roles (only an admin can
 * emergency-abort), and what each prints. What the coordinator decides is server/ota/rollouts.test.ts's.
 */
describe('sdc rollout', () => {
  let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
  let home: string;
  const password = 'correct horse battery staple';

  const sdc = async (argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: home } };
    return { code: await main(argv, io), stdout, stderr };
  };

  before(async () => {
    h = await makeOtaHarness(sqlJsTarget);
    home = await mkdtemp(join(tmpdir(), 'sdc-rollout-cli-'));
    const caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
    // An approver: the built-in policy gives update opcodes to approvers (rule approve-updates), and a
    // rollout is judged as its creator's STAGE and COMMIT commands (docs/ota.md, "Rollouts and the command policy").
    await h.cp.auth.users.add({ name: 'olga', role: 'approver', password, nowMs: h.clock.nowMs() });
    assert.equal((await sdc(['login', '--server', url.replace('127.0.0.1', 'localhost'), '--name', 'olga', '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    for (const id of ['cli-ro-1', 'cli-ro-2', 'cli-ro-3']) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
    await publishTestRelease(h.ota, h.keys!, { id: 'cli-rel', version: '3.0.0', artifact: new TextEncoder().encode('firmware 3.0.0') });
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('starts a rollout in waves, shows it, pauses, resumes and aborts it; an approver (not an admin) cannot emergency-abort', async () => {
    const started = await sdc(['rollout', 'start', '--release', 'cli-rel', '--platform', 'linux-x64', '--device', 'cli-ro-1', '--device', 'cli-ro-2', '--device', 'cli-ro-3',
      '--wave', 'cli-ro-1', '--wave', '100%', '--failed-percent-max', '20', '--rate', '10', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const rollout = JSON.parse(started.stdout) as { id: string; status: string; waves: Array<{ devices: string[] }>; executions: Array<{ device_id: string; state: string }> };
    assert.equal(rollout.status, 'running');
    assert.deepEqual(rollout.waves.map((w) => w.devices), [['cli-ro-1'], ['cli-ro-2', 'cli-ro-3']]);
    assert.deepEqual(rollout.executions.map((e) => [e.device_id, e.state]), [['cli-ro-1', 'notified']]);

    const status = await sdc(['rollout', 'status', rollout.id]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${rollout.id}\\trelease cli-rel\\trunning\\twave 1/2\\n  wave 1: 1 devices, 1 notified, 0 succeeded, 0 failed, 0 finished\\n`));
    assert.match(status.stdout, /\n {4}cli-ro-1\twave 1\tnotified\n/);

    assert.match((await sdc(['rollout', 'pause', rollout.id])).stdout, /\tpaused \(operator\)\t/);
    assert.match((await sdc(['rollout', 'resume', rollout.id])).stdout, /\trunning\t/);
    const emergency = await sdc(['rollout', 'abort', rollout.id, '--emergency']);
    assert.notEqual(emergency.code, 0);
    assert.match(emergency.stderr, /API_FORBIDDEN/);
    const aborted = await sdc(['rollout', 'abort', rollout.id, '--json']);
    assert.equal(JSON.parse(aborted.stdout).status, 'aborted');
    const again = await sdc(['rollout', 'resume', rollout.id]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /OTA_ROLLOUT_STATE/);
    const list = await sdc(['rollout', 'status']);
    assert.match(list.stdout, new RegExp(`^${rollout.id}\\trelease cli-rel\\taborted\\t`));
  });

  it('refuses a release that is not published and a malformed wave', async () => {
    await h.ota.releases.create({ id: 'cli-draft', version: '3.1.0', artifact_name: 'a.bin', platforms: ['linux-x64'], min_agent_version: '0.1.0', reboot_required: false, health_check: { timeout_ms: 1000, probes: [] } }, 'olga');
    const draft = await sdc(['rollout', 'start', '--release', 'cli-draft', '--platform', 'linux-x64', '--device', 'cli-ro-1', '--wave', '100%']);
    assert.match(draft.stderr, /OTA_ROLLOUT_RELEASE_NOT_PUBLISHED/);
    const left = await sdc(['rollout', 'start', '--release', 'cli-rel', '--platform', 'linux-x64', '--device', 'cli-ro-1', '--device', 'cli-ro-2', '--wave', 'cli-ro-1']);
    assert.match(left.stderr, /OTA_ROLLOUT_PLAN_INVALID/);
  });
});
