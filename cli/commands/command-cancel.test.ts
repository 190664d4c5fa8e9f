import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

/**
 * sdc command cancel and sdc command reject against a control plane serving HTTPS in this
 * process (sql.js): the requester cancels their pending command, someone else may not, and an
 * approver's rejection is signed with its reason (the server checks the signature over it).
 * The routes' own cases are server/control-plane/approvals-release.test.ts's.
 */
describe('sdc command cancel | reject', () => {
  let h: Harness;
  let home: string;
  let url: string;
  let caFile: string;
  const password = 'correct horse battery staple';
  const device = 'cli-cancel-1';
  const policy = parsePolicy({
    version: 1,
    rules: [
      { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
      { id: 'two-eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
    ],
  });

  /** Runs the CLI as `user` (each user has their own config home, so their own login and approval key). */
  const sdc = async (user: string, argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: join(home, user) } };
    return { code: await main(argv, io), stdout, stderr };
  };
  const pending = async (): Promise<string> => {
    const created = await sdc('olga', ['command', 'send', '--device', device, '--opcode', 'EXEC_LOCK_SCREEN', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const command = JSON.parse(created.stdout) as { id: string; state: string };
    assert.equal(command.state, 'pending_approval');
    return command.id;
  };

  before(async () => {
    h = await makeHarness(sqlJsTarget, { controlPlane: { policy } });
    home = await mkdtemp(join(tmpdir(), 'sdc-cancel-cli-'));
    caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    url = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url.replace('127.0.0.1', 'localhost');
    await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)", [device, h.clock.nowMs(), base64urlFromBytes(new Uint8Array(32))]);
    for (const [name, role] of [['olga', 'operator'], ['otto', 'operator'], ['abby', 'approver']] as const) {
      await h.cp.auth.users.add({ name, role, password, nowMs: h.clock.nowMs() });
      const login = await sdc(name, ['login', '--server', url, '--name', name, '--ca', caFile, '--password-stdin'], `${password}\n`);
      assert.equal(login.code, 0, login.stderr);
    }
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('the requester cancels a pending command; another operator is refused with its code', async () => {
    const id = await pending();
    const refused = await sdc('otto', ['command', 'cancel', id, '--reason', 'not mine']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /APPROVAL_CANCEL_FORBIDDEN/);
    const cancelled = await sdc('olga', ['command', 'cancel', id, '--reason', 'wrong device']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, `${id} cancelled; rejected\n`);
    const detail = await h.cp.commands.get(id);
    assert.equal(detail.state, 'rejected');
    const again = await sdc('olga', ['command', 'cancel', id, '--json']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /APPROVAL_NOT_PENDING/);
  });

  it('an approver\'s rejection is signed with its reason and accepted', async () => {
    const id = await pending();
    // Abby's first approval key: registering it needs her password (security review 2026-12-05, finding 4).
    const rejected = await sdc('abby', ['command', 'reject', id, '--reason', 'change freeze', '--password-stdin'], `${password}\n`);
    assert.equal(rejected.code, 0, rejected.stderr);
    const detail = await h.cp.commands.get(id);
    assert.equal(detail.state, 'rejected');
    assert.deepEqual(detail.history.at(-1)?.detail, { event: 'approval_reject', by: 'abby', reason: 'change freeze' });
    // Review h11, finding 4: the first registration sent the password at once, so nothing looks
    // like a stolen token's try (user.signing_key_refused) in the audit; the key is reused after.
    const keyEntries = async (name: string) => (await h.cp.auditStore.scan(1, 10_000))
      .filter((entry) => entry.subject === `user:${name}` && entry.kind.startsWith('user.signing_key')).map((entry) => entry.kind);
    assert.deepEqual(await keyEntries('abby'), ['user.signing_key_registered']);
    const again = await sdc('abby', ['command', 'reject', await pending(), '--reason', 'still frozen']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await keyEntries('abby'), ['user.signing_key_registered'], 'the registered key: no password, no entry');
    // Without the password the CLI refuses before sending anything: no refusal entry either.
    await h.cp.auth.users.add({ name: 'amos', role: 'approver', password, nowMs: h.clock.nowMs() });
    assert.equal((await sdc('amos', ['login', '--server', url, '--name', 'amos', '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    const unproven = await sdc('amos', ['command', 'reject', await pending(), '--reason', 'no']);
    assert.equal(unproven.code, 1);
    assert.match(unproven.stderr, /APPROVAL_KEY_PROOF_REQUIRED/);
    assert.deepEqual(await keyEntries('amos'), []);
  });
});
