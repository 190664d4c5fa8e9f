import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';
import { systemClock } from '../../runtime/system.js';
import { pairAgent, startE2e, storeTargets, waitOnline, type E2eSystem } from './support/e2e-harness.js';

interface Run { code: number; stdout: string; stderr: string }

// The operator's commands against a running control plane, as fleetctl is used: login once, then
// device / command / audit with the stored token. On the embedded stores, and on MySQL + Redis when set.
for (const target of storeTargets()) {
  describe(`sdc login, device, command, audit list (${target.name})`, () => {
    let system: E2eSystem;
    let home: string;
    let caFile: string;
    let deviceId: string;
    const password = 'operator password 1';
    let operator: string;

    async function sdc(argv: string[], env: Record<string, string> = {}): Promise<Run> {
      let stdout = '';
      let stderr = '';
      const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => `${password}\n`, env: { XDG_CONFIG_HOME: home, ...env } };
      const code = await main(argv, io);
      return { code, stdout, stderr };
    }

    before(async () => {
      system = await startE2e({ target });
      home = await mkdtemp(join(tmpdir(), 'sdc-operator-home-'));
      caFile = join(home, 'root-ca.pem');
      await writeFile(caFile, system.materials.rootCaPem);
      operator = `op-${system.tag}`;
      await system.deployment.controlPlane!.auth.users.add({ name: operator, role: 'admin', password, nowMs: systemClock.nowMs() });
      deviceId = `cli-${system.tag}`;
      await pairAgent(system, deviceId);
      await waitOnline(system, [deviceId]);
    });

    after(async () => {
      await system?.stop();
      if (home) await rm(home, { recursive: true, force: true });
    });

    it('refuses commands before login, and a login with a wrong CA file', async () => {
      const none = await sdc(['device', 'list']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /CLI_INPUT: not logged in: run sdc login/);
      const badCa = await sdc(['login', '--server', system.apiUrl, '--name', operator, '--ca', join(home, 'missing.pem'), '--password-stdin']);
      assert.equal(badCa.code, 1);
      assert.match(badCa.stderr, /CLI_INPUT: cannot read the CA file/);
      assert.equal((await sdc(['login', '--server', 'http://127.0.0.1:1', '--name', operator, '--ca', caFile, '--password-stdin'])).code, 2);
    });

    it('login stores the token (never the password) in a 0600 file under XDG_CONFIG_HOME', async () => {
      const login = await sdc(['login', '--server', system.apiUrl, '--name', operator, '--ca', caFile, '--password-stdin', '--json']);
      assert.equal(login.code, 0, login.stderr);
      const path = join(home, 'sdc', 'credentials.json');
      assert.equal(JSON.parse(login.stdout).credentials, path);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      const stored = await readFile(path, 'utf8');
      assert.ok(!stored.includes(password), 'the password is not stored');
      assert.equal(JSON.parse(stored).ca_pem, system.materials.rootCaPem);
    });

    it('device list and show, with --json', async () => {
      // The real-store database is shared with other runs (benchmarks leave their devices): list them all.
      const list = await sdc(['device', 'list', '--limit', '50000', '--json']);
      assert.equal(list.code, 0, list.stderr);
      const device = (JSON.parse(list.stdout) as { items: Array<{ id: string; online: boolean }> }).items.find((d) => d.id === deviceId);
      assert.equal(device?.online, true);
      const show = await sdc(['device', 'show', deviceId, '--json']);
      assert.equal(JSON.parse(show.stdout).id, deviceId);
      // The agent's version from its AUTH, carried by the gateway's presence entry (the policy's agentVersionAtLeast reads it).
      assert.match(JSON.parse(show.stdout).agent_version, /^sdc-agent\/\d+\.\d+\.\d+/);
      assert.equal((await sdc(['device', 'show'])).code, 2);
    });

    it('device tag sets the tags (a group among them) and device list --tag filters by one', async () => {
      const group = `group:cli-${system.tag.toLowerCase()}`;
      const tagged = await sdc(['device', 'tag', deviceId, '--set', `site-1,${group}`, '--json']);
      assert.equal(tagged.code, 0, tagged.stderr);
      assert.deepEqual(JSON.parse(tagged.stdout), { device_id: deviceId, tags: [group, 'site-1'].sort() });
      const listed = await sdc(['device', 'list', '--tag', group, '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((JSON.parse(listed.stdout) as { items: Array<{ id: string }> }).items.map((d) => d.id), [deviceId]);
      const bad = await sdc(['device', 'tag', deviceId, '--set', 'Bad Tag']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /CLI_USAGE: --set: tag "Bad Tag" does not match/);
    });

    it('command send (an Idempotency-Key always), show and watch until terminal', async () => {
      const unknown = await sdc(['command', 'send', '--device', deviceId, '--opcode', 'EXEC_FORMAT_DISK']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /known opcodes: .*EXEC_PING_KERNEL/);
      assert.match((await sdc(['command', 'send', '--help'])).stdout, /--opcode OP +One of .*EXEC_PING_KERNEL/);
      const sent = await sdc(['command', 'send', '--device', deviceId, '--opcode', 'EXEC_PING_KERNEL', '--reason', 'cli e2e check', '--idempotency-key', `k-${system.tag}`, '--json']);
      assert.equal(sent.code, 0, sent.stderr);
      const command = JSON.parse(sent.stdout) as { id: string };
      // The same key is the same command: a retried send does not run twice.
      const again = await sdc(['command', 'send', '--device', deviceId, '--opcode', 'EXEC_PING_KERNEL', '--idempotency-key', `k-${system.tag}`, '--json']);
      assert.equal(JSON.parse(again.stdout).id, command.id);
      const watched = await sdc(['command', 'watch', command.id, '--timeout', '2m', '--json']);
      assert.equal(watched.code, 0, watched.stderr);
      const lines = watched.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { state: string });
      assert.equal(lines.at(-1)!.state, 'succeeded');
      const show = await sdc(['command', 'show', command.id, '--json']);
      assert.equal(JSON.parse(show.stdout).state, 'succeeded');
    });

    it('audit list pages through the log; logout forgets the login', async () => {
      // The whole log, paged by the CLI: on MySQL the database is shared with other tests and earlier
      // runs, so this run's entries can lie past any fixed first page.
      const audit = await sdc(['audit', 'list', '--limit', '100000', '--json']);
      assert.equal(audit.code, 0, audit.stderr);
      const kinds = (JSON.parse(audit.stdout) as { items: Array<{ kind: string; seq: number }> }).items.map((e) => e.kind);
      assert.ok(kinds.includes('command.created'), kinds.join(','));
      const entries = (JSON.parse(audit.stdout) as { items: Array<{ kind: string; payload: { policy?: { stated_reason?: string } } }> }).items;
      assert.ok(entries.some((e) => e.kind === 'command.created' && e.payload.policy?.stated_reason === 'cli e2e check'), 'the reason given with --reason is audited');
      assert.equal(JSON.parse((await sdc(['logout', '--json'])).stdout).removed, true);
      assert.equal((await sdc(['device', 'list'])).code, 1);
    });
  });
}
