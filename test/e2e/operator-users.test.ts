import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';
import { initDeployment } from '../../server/materials/materials.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { startE2e, type E2eSystem } from './support/e2e-harness.js';

interface Run { code: number; stdout: string; stderr: string }
interface AuditItem { kind: string; actor: string; subject: string; payload: Record<string, unknown> }

/**
 * `sdc user list|remove|set-role|passwd` against a running control plane with stored logins,
 * one per operator (SDC_CREDENTIALS). On the embedded stores only: the last-admin rule needs a
 * users table this test owns, and the e2e MySQL database is shared by every run (the store's
 * rules, the concurrent demotions included, run on MySQL in server/control-plane/users.test.ts).
 */
describe('sdc user list, remove, set-role, passwd (embedded)', () => {
  let system: E2eSystem;
  let home: string;
  let caFile: string;
  const boss = 'boss';
  const bossPassword = 'boss password 12';
  const op = 'op';
  let opPassword = 'op password 1234';

  async function sdc(as: string, argv: string[], options: { stdin?: string; promptSecret?: (q: string) => Promise<string> } = {}): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const io: CliIo = {
      stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => options.stdin ?? '',
      env: { SDC_CREDENTIALS: join(home, `${as}.json`) }, ...(options.promptSecret ? { promptSecret: options.promptSecret } : {}),
    };
    const code = await main(argv, io);
    return { code, stdout, stderr };
  }
  const login = (as: string, password: string) => sdc(as, ['login', '--server', system.apiUrl, '--name', as, '--ca', caFile, '--password-stdin'], { stdin: `${password}\n` });
  const audit = async (): Promise<AuditItem[]> => (JSON.parse((await sdc(boss, ['audit', 'list', '--limit', '5000', '--json'])).stdout) as { items: AuditItem[] }).items;

  before(async () => {
    system = await startE2e({ target: { name: 'embedded' } });
    home = await mkdtemp(join(tmpdir(), 'sdc-operator-users-'));
    caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, system.materials.rootCaPem);
    const users = system.deployment.controlPlane!.auth.users;
    await users.add({ name: boss, role: 'admin', password: bossPassword, nowMs: systemClock.nowMs() });
    await users.add({ name: op, role: 'operator', password: opPassword, nowMs: systemClock.nowMs() });
    assert.equal((await login(boss, bossPassword)).code, 0);
    assert.equal((await login(op, opPassword)).code, 0);
  });

  after(async () => {
    await system?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('user list shows every account with its role, never a password hash; a non-admin is refused', async () => {
    const list = await sdc(boss, ['user', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const items = (JSON.parse(list.stdout) as { items: Array<{ name: string; role: string }> }).items;
    assert.deepEqual(items.map((u) => `${u.name}:${u.role}`), [`boss:admin`, `e2e-admin-${system.tag}:admin`, 'op:operator']);
    assert.doesNotMatch(list.stdout, /scrypt|password/);
    const table = await sdc(boss, ['user', 'list']);
    assert.match(table.stdout, /^name\trole\tcreated\nboss\tadmin\t\d{4}-/);
    const refused = await sdc(op, ['user', 'list']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /API_FORBIDDEN/);
  });

  it('set-role changes a role, audited with from and to; an unknown role is a usage error', async () => {
    const set = await sdc(boss, ['user', 'set-role', op, '--role', 'approver', '--json']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(JSON.parse(set.stdout).role, 'approver');
    assert.equal((await sdc(boss, ['user', 'set-role', op, '--role', 'root'])).code, 2);
    assert.equal((await sdc(boss, ['user', 'set-role', op])).code, 2);
    const missing = await sdc(boss, ['user', 'set-role', 'nobody', '--role', 'viewer']);
    assert.match(missing.stderr, /API_USER_NOT_FOUND/);
    const entry = (await audit()).find((e) => e.kind === 'user.role_changed');
    assert.deepEqual(entry && { actor: entry.actor, subject: entry.subject, payload: entry.payload }, { actor: 'user:boss', subject: 'user:op', payload: { from: 'operator', to: 'approver' } });
    // A new role revokes op's tokens (review h1, finding 8), a promotion too: log in again for the new role.
    assert.match((await sdc(op, ['device', 'list'])).stderr, /API_TOKEN_REVOKED/);
    assert.equal((await login(op, opPassword)).code, 0);
    assert.equal((await sdc(op, ['device', 'list'])).code, 0);
  });

  it('passwd for oneself needs the current password (stdin: current, then new); the old one stops working', async () => {
    const wrong = await sdc(op, ['user', 'passwd', '--password-stdin'], { stdin: 'not my password\na new op password\n' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /API_CURRENT_PASSWORD_WRONG/);
    const weak = await sdc(op, ['user', 'passwd', '--password-stdin'], { stdin: `${opPassword}\nshort\n` });
    assert.match(weak.stderr, /API_VALIDATION/);
    const changed = await sdc(op, ['user', 'passwd', '--password-stdin', '--json'], { stdin: `${opPassword}\na new op password\n` });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(JSON.parse(changed.stdout).name, op);
    assert.match((await login(op, opPassword)).stderr, /API_LOGIN_FAILED/);
    opPassword = 'a new op password';
    assert.equal((await login(op, opPassword)).code, 0);
    // Only an admin sets another user's password.
    const other = await sdc(op, ['user', 'passwd', boss, '--password-stdin'], { stdin: 'taking over boss 1\n' });
    assert.match(other.stderr, /API_FORBIDDEN/);
  });

  it('passwd asks on the terminal when there is one (the new password twice), and refuses when there is none', async () => {
    const none = await sdc(op, ['user', 'passwd']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /CLI_USAGE: give the current password with --password-stdin or a file/);
    const asked: string[] = [];
    const answers = [opPassword, 'typed at a prompt 1', 'typed at a prompt 2'];
    const mismatch = await sdc(op, ['user', 'passwd'], { promptSecret: async (q) => { asked.push(q); return answers.shift()!; } });
    assert.match(mismatch.stderr, /CLI_INPUT: the two new passwords differ/);
    assert.deepEqual(asked, ['Current password: ', 'New password: ', 'New password again: ']);
    const typed = [opPassword, 'typed at a prompt 1', 'typed at a prompt 1'];
    assert.equal((await sdc(op, ['user', 'passwd'], { promptSecret: async () => typed.shift()! })).code, 0);
    opPassword = 'typed at a prompt 1';
    assert.equal((await login(op, opPassword)).code, 0);
  });

  it('an admin sets another user\'s password from a file, without the current one; audited without the password', async () => {
    const file = join(home, 'new-password');
    await writeFile(file, 'set by the boss 12\n', { mode: 0o600 });
    const set = await sdc(boss, ['user', 'passwd', op, '--password-file', file]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'password set for op (approver)\n');
    opPassword = 'set by the boss 12';
    assert.equal((await login(op, opPassword)).code, 0);
    assert.match((await sdc(boss, ['user', 'passwd', op, '--password-file', join(home, 'missing')])).stderr, /CLI_INPUT: cannot read --password-file/);
    const entries = (await audit()).filter((e) => e.kind === 'user.password_changed');
    assert.deepEqual(entries.map((e) => `${e.actor} ${e.subject} ${String(e.payload.by)}`), ['user:op user:op self', 'user:op user:op self', 'user:boss user:op admin']);
    assert.doesNotMatch(JSON.stringify(await audit()), /set by the boss|typed at a prompt|a new op password/);
  });

  it('the last admin can be neither removed nor demoted; remove ends the removed user\'s tokens at once', async () => {
    assert.equal((await sdc(boss, ['user', 'remove', `e2e-admin-${system.tag}`])).code, 0);
    const removeLast = await sdc(boss, ['user', 'remove', boss]);
    assert.equal(removeLast.code, 1);
    assert.match(removeLast.stderr, /API_LAST_ADMIN/);
    assert.match((await sdc(boss, ['user', 'set-role', boss, '--role', 'viewer'])).stderr, /API_LAST_ADMIN/);
    assert.equal((await sdc(op, ['device', 'list'])).code, 0);
    const removed = await sdc(boss, ['user', 'remove', op, '--json']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(JSON.parse(removed.stdout).name, op);
    assert.match((await sdc(op, ['device', 'list'])).stderr, /API_TOKEN_SUBJECT_INVALID/);
    assert.match((await sdc(boss, ['user', 'remove', op])).stderr, /API_USER_NOT_FOUND/);
    assert.equal((await sdc(boss, ['user', 'remove'])).code, 2);
    const kinds = (await audit()).filter((e) => e.kind === 'user.removed').map((e) => `${e.subject} ${String(e.payload.role)}`);
    assert.deepEqual(kinds, [`user:e2e-admin-${system.tag} admin`, 'user:op approver']);
    const names = (JSON.parse((await sdc(boss, ['user', 'list', '--json'])).stdout) as { items: Array<{ name: string }> }).items.map((u) => u.name);
    assert.deepEqual(names, [boss]);
  });

  it('sdc user add --dir still adds a user offline, before any server runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-user-add-'));
    try {
      await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
      const added = await sdc(boss, ['user', 'add', '--dir', dir, '--name', 'first', '--role', 'admin', '--password-stdin'], { stdin: 'first admin password\n' });
      assert.equal(added.code, 0, added.stderr);
      assert.equal(added.stdout, 'added first (admin)\n');
      const again = await sdc(boss, ['user', 'add', '--dir', dir, '--name', 'first', '--role', 'admin', '--password-stdin'], { stdin: 'first admin password\n' });
      assert.match(again.stderr, /CLI_INPUT: user first already exists/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
