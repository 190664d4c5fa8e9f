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
 * `sdc serve --compliance F` (roadmap 10.3): a bad rules file is refused before anything starts,
 * naming the field; malformed JSON and an unreadable file are refused; a good one starts the
 * server. What the rules do is server/control-plane/compliance.test.ts's.
 */

interface Run { readonly out: string[]; readonly err: string[]; readonly exit: Promise<number>; stop(): void }

function sdc(argv: string[]): Run {
  const out: string[] = [];
  const err: string[] = [];
  let stop: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => { stop = resolve; });
  const io: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => '', env: { SDC_LOG_LEVEL: 'silent' }, untilStopped: () => stopped };
  return { out, err, exit: main(argv, io), stop: () => stop('test') };
}

/** Waits for serve's `ready` line (a condition wait; the runner's timeout bounds it). */
async function untilReady(run: Run): Promise<void> {
  for (;;) {
    if (/^ready$/m.test(run.out.join(''))) return;
    const exited = await Promise.race([run.exit, delay(50).then(() => undefined)]);
    if (exited !== undefined) throw new Error(`serve exited ${exited}: ${run.err.join('')}`);
  }
}

describe('sdc serve --compliance', () => {
  it('refuses a bad rules file naming the field, malformed JSON and an unreadable file; starts with a good one', { timeout: 180_000 }, async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-compliance-cli-'));
    const dir = join(parent, 'data');
    const file = (name: string, text: string) => writeFile(join(parent, name), text).then(() => join(parent, name));
    const serveWith = (rules: string) => sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--compliance', rules]);
    try {
      await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
      const bad = serveWith(await file('bad.json', JSON.stringify({ binary_sha256_allowed: ['not-a-hash'] })));
      assert.equal(await bad.exit, 1);
      assert.match(bad.err.join(''), /COMPLIANCE_RULES_INVALID: .*bad\.json: compliance rules \/binary_sha256_allowed\/0/);
      const unknown = serveWith(await file('unknown.json', JSON.stringify({ agent_version_minimum: '1.0' })));
      assert.equal(await unknown.exit, 1);
      assert.match(unknown.err.join(''), /COMPLIANCE_RULES_INVALID/);
      const broken = serveWith(await file('broken.json', '{"agent_version_min": '));
      assert.equal(await broken.exit, 1);
      assert.match(broken.err.join(''), /PROTO_JSON_SYNTAX: .*broken\.json/);
      const missing = serveWith(join(parent, 'none.json'));
      assert.equal(await missing.exit, 1);
      assert.match(missing.err.join(''), /CLI_INPUT/);
      const good = serveWith(await file('good.json', JSON.stringify({ agent_version_min: '0.1.0', cert_expiry_warn_ms: 7 * 24 * 3_600_000, kernel_attestation_required: false })));
      await untilReady(good);
      good.stop();
      assert.equal(await good.exit, 0);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
