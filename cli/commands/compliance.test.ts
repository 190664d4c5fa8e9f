import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

/**
 * sdc compliance show|summary against a control plane serving HTTPS in this process (sql.js),
 * with one device reporting a tampered binary hash. The judging is server/control-plane/compliance.test.ts's.
 */
describe('sdc compliance', () => {
  let h: Harness;
  let home: string;
  const password = 'correct horse battery staple';

  const sdc = async (argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: { XDG_CONFIG_HOME: home } };
    return { code: await main(argv, io), stdout, stderr };
  };

  before(async () => {
    h = await makeHarness(sqlJsTarget, { controlPlane: { complianceRules: { binary_sha256_allowed: ['a'.repeat(64)] } } });
    home = await mkdtemp(join(tmpdir(), 'sdc-compliance-cli-'));
    const caFile = join(home, 'root-ca.pem');
    await writeFile(caFile, h.materials.rootCaPem);
    const { url } = await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true });
    await h.cp.auth.users.add({ name: 'watcher', role: 'viewer', password, nowMs: h.clock.nowMs() });
    assert.equal((await sdc(['login', '--server', url.replace('127.0.0.1', 'localhost'), '--name', 'watcher', '--ca', caFile, '--password-stdin'], `${password}\n`)).code, 0);
    await h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES ('cli-cmp-1', 'enrolled', ?, ?)", [h.clock.nowMs(), h.clock.nowMs() + 90 * 86_400_000]);
    await h.bus.append(streamNames.events, encodeBusEntry('presence', {
      device_id: 'cli-cmp-1', gateway_id: 'gw1', session_id: 's1', online: true, at_ms: h.clock.nowMs(), agent_version: 'sdc-agent/0.1.0',
      posture: { binary_sha256: 'b'.repeat(64) },
    }));
    await h.cp.eventsConsumer.drain();
  });
  after(async () => {
    await h.close();
    await rm(home, { recursive: true, force: true });
  });

  it('shows one device with its reasons and facts, and the fleet summary', async () => {
    const shown = await sdc(['compliance', 'show', 'cli-cmp-1']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^cli-cmp-1\tnon_compliant\n {2}non_compliant\tbinary_hash_mismatch\t/);
    assert.match(shown.stdout, /\n {2}fact\tagent_version\tsdc-agent\/0\.1\.0\n/);
    const summary = await sdc(['compliance', 'summary']);
    assert.equal(summary.code, 0, summary.stderr);
    assert.equal(summary.stdout, 'compliant\t0\nwarning\t0\nnon_compliant\t1\nunknown\t0\ncli-cmp-1\tnon_compliant\tbinary_hash_mismatch\n');
    const json = JSON.parse((await sdc(['compliance', 'summary', '--state', 'compliant', '--json'])).stdout) as { items: unknown[]; state: string };
    assert.deepEqual([json.state, json.items], ['compliant', []]);
    const bad = await sdc(['compliance', 'summary', '--state', 'green']);
    assert.equal(bad.code, 2);
    const missing = await sdc(['compliance', 'show', 'cli-nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /API_DEVICE_NOT_FOUND/);
  });
});
