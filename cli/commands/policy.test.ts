import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { initDeployment } from '../../server/materials/materials.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

/**
 * `sdc serve --policy F` stores F as revision 1 only on a database that holds none, and
 * `sdc policy get|set|check` through the real CLI against it (embedded stores, one process).
 */

const password = 'correct horse battery staple';

function policyText(revision: number | undefined, operatorOpcodes: string[]): string {
  return JSON.stringify({
    version: 1, ...(revision === undefined ? {} : { revision }),
    rules: [
      { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
      { id: 'ops', effect: 'allow', roles: ['operator'], opcodes: operatorOpcodes, devices: '*' },
    ],
  });
}

interface Run { readonly out: string[]; readonly err: string[]; readonly exit: Promise<number>; stop(): void }

function sdc(argv: string[], env: Record<string, string>, stdin = ''): Run {
  const out: string[] = [];
  const err: string[] = [];
  let stop: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => { stop = resolve; });
  const io: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => stdin, env: { SDC_LOG_LEVEL: 'silent', ...env }, untilStopped: () => stopped };
  return { out, err, exit: main(argv, io), stop: () => stop('test') };
}

async function untilReady(run: Run, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = run.out.join('');
    if (/^ready$/m.test(text)) return /^control plane {2}(https:\/\/\S+)/m.exec(text)![1]!;
    const exited = await Promise.race([run.exit, delay(50).then(() => undefined)]);
    if (exited !== undefined) throw new Error(`serve exited ${exited}: ${run.err.join('')}`);
    if (Date.now() > deadline) throw new Error('serve not ready');
  }
}

describe('sdc serve --policy and sdc policy', () => {
  it('seeds revision 1 once; get, set with the revision, a stale set refused, check names the bad field', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-policy-cli-'));
    const dir = join(parent, 'data');
    const env = { XDG_CONFIG_HOME: join(parent, 'config') };
    const file = (name: string, text: string) => writeFile(join(parent, name), text).then(() => join(parent, name));
    try {
      await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
      assert.equal(await sdc(['user', 'add', '--dir', dir, '--name', 'boss', '--role', 'admin', '--password-stdin'], env, `${password}\n`).exit, 0);
      const first = await file('first.json', policyText(undefined, ['EXEC_GET_STATUS']));

      const bad = await file('bad.json', policyText(undefined, ['exec_get_status']));
      const refused = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--policy', bad], env);
      assert.equal(await refused.exit, 1);
      assert.match(refused.err.join(''), /POLICY_INVALID: .*bad\.json: policy field rules\[1\]\.opcodes\[0\]/);

      let serve = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--policy', first], env);
      let apiUrl = await untilReady(serve);
      const run = async (argv: string[]) => { const r = sdc(argv, env, `${password}\n`); return { code: await r.exit, out: r.out.join(''), err: r.err.join('') }; };
      assert.equal((await run(['login', '--server', apiUrl, '--name', 'boss', '--ca', join(dir, 'pki', 'root-ca.pem'), '--password-stdin'])).code, 0);

      const got = await run(['policy', 'get', '--json']);
      assert.equal(got.code, 0, got.err);
      assert.equal(JSON.parse(got.out).revision, 1);
      assert.deepEqual(JSON.parse(got.out).document.rules[1].opcodes, ['EXEC_GET_STATUS']);
      const document = await run(['policy', 'get', '--document']);
      const edited = await file('edited.json', document.out.replace('"EXEC_GET_STATUS"', '"EXEC_GET_STATUS", "EXEC_PING_KERNEL"'));

      const set = await run(['policy', 'set', '--file', edited, '--json']);
      assert.equal(set.code, 0, set.err);
      assert.equal(JSON.parse(set.out).revision, 2);
      const stale = await run(['policy', 'set', '--file', edited]);
      assert.notEqual(stale.code, 0);
      assert.match(stale.err, /POLICY_REVISION_STALE/);
      const noRevision = await run(['policy', 'set', '--file', first]);
      assert.equal(noRevision.code, 0, `a file without a revision replaces the current one: ${noRevision.err}`);
      assert.match(noRevision.out, /policy revision 3 stored \(replaced 2\)/);

      const checked = await run(['policy', 'check', '--file', bad, '--json']);
      assert.equal(checked.code, 1);
      assert.deepEqual(JSON.parse(checked.out).path, 'rules[1].opcodes[0]');
      const good = await run(['policy', 'check', '--file', edited, '--json']);
      assert.deepEqual(JSON.parse(good.out), { ok: true, rules: 2, rule_ids: ['admin-all', 'ops'] });

      // A restart with another --policy keeps what is stored.
      serve.stop();
      assert.equal(await serve.exit, 0);
      const other = await file('other.json', policyText(undefined, ['EXEC_LOCK_SCREEN']));
      serve = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--policy', other], env);
      apiUrl = await untilReady(serve);
      assert.equal((await run(['login', '--server', apiUrl, '--name', 'boss', '--ca', join(dir, 'pki', 'root-ca.pem'), '--password-stdin'])).code, 0);
      const after = JSON.parse((await run(['policy', 'get', '--json'])).out);
      assert.equal(after.revision, 3);
      assert.deepEqual(after.document.rules[1].opcodes, ['EXEC_GET_STATUS']);
      serve.stop();
      assert.equal(await serve.exit, 0);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
