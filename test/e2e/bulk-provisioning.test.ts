// Bulk provisioning end to end (issue 15): an admin logs in with `sdc login`, creates a fleet's
// pairing tokens with `sdc pki pairing-token --api --count N --prefix P --out F` (POST
// /v1/pairing-tokens over HTTPS), and agents enroll and come online with tokens read from that
// CSV. On the embedded stores, and on MySQL + Redis when set.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';
import { runAgent } from '../../agent/agent-runtime.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { agentDir, startE2e, storeTargets, waitOnline, type E2eSystem } from './support/e2e-harness.js';

for (const target of storeTargets()) {
  describe(`bulk pairing tokens through sdc and the API (${target.name})`, () => {
    let system: E2eSystem;
    let home: string;
    const password = 'provisioner password 1';

    async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
      let stdout = '';
      let stderr = '';
      const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => `${password}\n`, env: { XDG_CONFIG_HOME: home } };
      return { code: await main(argv, io), stdout, stderr };
    }

    before(async () => {
      system = await startE2e({ target });
      home = await mkdtemp(join(tmpdir(), 'sdc-bulk-home-'));
      await writeFile(join(home, 'root-ca.pem'), system.materials.rootCaPem);
      await system.deployment.controlPlane!.auth.users.add({ name: `prov-${system.tag}`, role: 'admin', password, nowMs: systemClock.nowMs() });
      const login = await sdc(['login', '--server', system.apiUrl, '--name', `prov-${system.tag}`, '--ca', join(home, 'root-ca.pem'), '--password-stdin']);
      assert.equal(login.code, 0, login.stderr);
    });

    after(async () => {
      await system?.stop();
      if (home) await rm(home, { recursive: true, force: true });
    });

    it('creates 50 tokens in one call, writes them to a 0600 CSV, and devices enroll and come online with them', async () => {
      const prefix = `bulk-${system.tag}-`;
      const out = join(home, 'fleet.csv');
      const run = await sdc(['pki', 'pairing-token', '--api', '--count', '50', '--prefix', prefix, '--first', '101', '--out', out, '--json']);
      assert.equal(run.code, 0, run.stderr);
      const facts = JSON.parse(run.stdout) as { count: number; first_device: string; last_device: string; where: string };
      assert.deepEqual([facts.count, facts.first_device, facts.last_device, facts.where], [50, `${prefix}101`, `${prefix}150`, 'control-plane']);
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      const rows = (await readFile(out, 'utf8')).trim().split('\n').slice(1).map((line) => line.split(','));
      assert.equal(rows.length, 50);
      // Every device is registered as pending by the batch.
      const pending = await sdc(['device', 'show', `${prefix}120`, '--json']);
      assert.equal(JSON.parse(pending.stdout).status, 'pending');

      const enrolling = [rows[0]!, rows[49]!];
      for (const [deviceId, token] of enrolling) {
        const agent = await runAgent({
          dir: agentDir(system, deviceId!), serverUrl: system.apiUrl, deviceId: deviceId!, pairingToken: token!, caPem: system.materials.rootCaPem,
          kernel: 'mock', telemetryIntervalMs: 300, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
        });
        system.agents.set(deviceId!, agent);
      }
      await waitOnline(system, enrolling.map(([deviceId]) => deviceId!));
      const shown = await sdc(['device', 'show', enrolling[1]![0]!, '--json']);
      assert.equal(JSON.parse(shown.stdout).status, 'enrolled');
    });

    it('a non-admin is refused, and nothing is written', async () => {
      await system.deployment.controlPlane!.auth.users.add({ name: `view-${system.tag}`, role: 'viewer', password, nowMs: systemClock.nowMs() });
      const login = await sdc(['login', '--server', system.apiUrl, '--name', `view-${system.tag}`, '--ca', join(home, 'root-ca.pem'), '--password-stdin']);
      assert.equal(login.code, 0, login.stderr);
      const out = join(home, 'refused.csv');
      const run = await sdc(['pki', 'pairing-token', '--api', '--count', '2', '--prefix', 'nope-', '--out', out]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /API_FORBIDDEN/);
      await assert.rejects(stat(out));
    });
  });
}
