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
 * `sdc serve --alerts F` (issue 12): a bad rules file is refused before anything starts, naming
 * the field; a good one starts the server. What the rules do is alert-monitor.test.ts's.
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

describe('sdc serve --alerts and the probe options', () => {
  it('refuses a bad rules file naming the field, an unreadable one, and a probe grace + timeout over half an interval; starts with a good one', { timeout: 180_000 }, async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-alerts-cli-'));
    const dir = join(parent, 'data');
    const file = (name: string, text: string) => writeFile(join(parent, name), text).then(() => join(parent, name));
    const serveWith = (rules: string) => sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--alerts', rules]);
    try {
      await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
      const bad = serveWith(await file('bad.json', JSON.stringify({ backpressure: { busPendingAbove: -5 } })));
      assert.equal(await bad.exit, 1);
      assert.match(bad.err.join(''), /API_ALERT_RULES_INVALID: .*bad\.json: alert rules: backpressure\.busPendingAbove must be/);
      const missing = serveWith(join(parent, 'none.json'));
      assert.equal(await missing.exit, 1);
      assert.match(missing.err.join(''), /CLI_INPUT/);
      const badProbe = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--heartbeat-interval-ms', '1000', '--probe-grace-ms', '400', '--probe-timeout-ms', '400']);
      assert.equal(await badProbe.exit, 1);
      assert.match(badProbe.err.join(''), /GATEWAY_INVALID_ARGUMENT: probeGraceMs \+ probeTimeoutMs must be at most 500 ms/);
      const good = sdc(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--probe-grace-ms', '2000', '--probe-timeout-ms', '3000',
        '--alerts', await file('good.json', JSON.stringify({ offlineAfterMs: 5_000, riskScoreAbove: 90, sampleIntervalMs: 1_000 }))]);
      await untilReady(good);
      good.stop();
      assert.equal(await good.exit, 0);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
