import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { CliIo } from '../command.js';
import { credentialsPath } from '../credentials.js';
import { main } from '../main.js';

/**
 * sdc logout --all against a control plane serving HTTPS in this process (sql.js): every token of
 * the user is revoked (POST /v1/auth/logout-all), the one in another terminal too, and the stored
 * login is forgotten; without a usable login nothing is revoked or removed. The route's own cases
 * are server/control-plane/token-revocation.test.ts's.
 */
describe('sdc logout --all', () => {
  let h: Harness;
  let home: string;
  let url: string;
  let caFile: string;
  const password = 'correct horse battery staple';

  /** Runs the CLI with its own config home, as `terminal` (two terminals of one user: two logins, two tokens). */
  const sdc = async (terminal: string, argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string; env: CliIo['env'] }> => {
    let stdout = '';
    let stderr = '';
    const env = { XDG_CONFIG_HOME: join(home, terminal) };
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env };
    return { code: await main(argv, io), stdout, stderr, env };
  };
  const login = async (terminal: string, name: string): Promise<void> => {
    const answer = await sdc(terminal, ['login', '--server', url, '--name', name, '--ca', caFile, '--password-stdin'], `${password}\n`);
    assert.equal(answer.code, 0, answer.stderr);
  };
  const stored = async (terminal: string): Promise<boolean> => access(credentialsPath({ XDG_CONFIG_HOME: join(home, terminal) })).then(() => true, () => false);

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    home = await mkdtemp(join(tmpdir(), 'sdc-logout-all-cli-'));
    caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    url = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url.replace('127.0.0.1', 'localhost');
    for (const [name, role] of [['tess', 'viewer'], ['ugo', 'operator'], ['vera', 'admin']] as const) await h.cp.auth.users.add({ name, role, password, nowMs: h.clock.nowMs() });
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('revokes every token of the user, the other terminal\'s too, prints the result and forgets the stored login; another user\'s login keeps working', async () => {
    await login('tess-laptop', 'tess');
    await login('tess-desktop', 'tess');
    await login('ugo', 'ugo');
    assert.equal((await sdc('tess-desktop', ['device', 'list', '--json'])).code, 0);
    const out = await sdc('tess-laptop', ['logout', '--all']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `logged out everywhere: every token of tess on ${url} is revoked; 0 live stream(s) closed on that control plane (the others close theirs at once); stored login removed\n`);
    assert.equal(await stored('tess-laptop'), false);
    const other = await sdc('tess-desktop', ['device', 'list']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /API_TOKEN_REVOKED/);
    assert.equal((await sdc('ugo', ['device', 'list', '--json'])).code, 0, 'another user\'s token is untouched');
    const audited = (await h.cp.auditStore.scan(1, 10_000)).filter((entry) => entry.kind === 'auth.logout_all');
    assert.deepEqual(audited.map((entry) => [entry.actor, entry.subject]), [['user:tess', 'user:tess']]);
  });

  it('--json prints the name, server, revocation, streams closed and removal', async () => {
    await login('vera', 'vera');
    const out = await sdc('vera', ['logout', '--all', '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { name: 'vera', server: url, revoked: true, live_streams_closed: 0, removed: true });
    assert.equal(await stored('vera'), false);
  });

  it('refuses without a usable login and then removes nothing: none stored, or a token already revoked', async () => {
    const none = await sdc('nobody', ['logout', '--all']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /not logged in/);
    // tess-desktop's token was revoked by the first test: the server refuses it, and the stored login stays for the user to see.
    assert.equal(await stored('tess-desktop'), true);
    const refused = await sdc('tess-desktop', ['logout', '--all', '--json']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /API_TOKEN_REVOKED/);
    assert.equal(refused.stdout, '');
    assert.equal(await stored('tess-desktop'), true);
    // Plain logout still only forgets the stored login, without asking the server.
    const plain = await sdc('tess-desktop', ['logout', '--json']);
    assert.deepEqual(JSON.parse(plain.stdout), { removed: true });
  });
});
