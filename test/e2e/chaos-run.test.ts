import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startChaosServer } from '../../chaos/proxy/server.js';
import { main } from '../../cli/main.js';
import { assertLinkRunHeld, chaosRun, cliIo, linkFaultForm } from './support/chaos-run-driver.js';

// `sdc chaos run` in a short form (issue 11): the real control plane, gateway and agents on
// loopback TLS with the fault proxy between them, one fault on a timeline during the commands.
// Each run is a fresh deployment with 2 agents in one worker process, 5 s of commands, the fault
// from 1 s to 3 s; the outcome is judged by what held, never by how long anything took. The long
// forms (4 agents, 15 s, every scenario, `latency`, `bandwidth`, `slicer`, `slow-close` and
// `drop` among them) are `sdc chaos run --scenario all` (docs/chaos.md). The store faults are in
// chaos-stores.test.ts, the process and trust faults in
// chaos-process.

// The tests go side by side (each run its own deployment, proxy and worker process): a run mostly waits.
describe('sdc chaos run', { concurrency: 3 }, () => {
  it('a partition between agents and gateway: sessions cut, agents reconnect, no command lost or run twice, audit intact', async () => {
    const { code, reports, err } = await chaosRun(['--scenario', 'partition'], linkFaultForm);
    assert.equal(code, 0, err);
    assert.deepEqual(reports.map((r) => r.chaos_run), ['partition']);
    assertLinkRunHeld(reports[0]!, { cutsSessions: true });
    assert.equal(reports[0]!.proxy.external, false);
  });

  it('resets (RST) on every agent link, driven through an external Toxiproxy-compatible server (--toxiproxy)', async () => {
    const external = await startChaosServer({ host: '127.0.0.1', port: 0, seed: 1 });
    try {
      const { code, reports, err } = await chaosRun(['--scenario', 'reset', '--toxiproxy', external.url], linkFaultForm);
      assert.equal(code, 0, err);
      assertLinkRunHeld(reports[0]!, { cutsSessions: true });
      assert.deepEqual(reports[0]!.proxy, { ...reports[0]!.proxy, api: external.url, external: true });
      // The run removed its proxies from the shared server when it ended.
      assert.equal(external.registry.list().length, 0);
    } finally {
      await external.close();
    }
  });

  it('refuses an unknown scenario, a store cut without its store, and a fault past the duration, in one line', async () => {
    for (const argv of [['--scenario', 'meteor'], ['--scenario', 'redis-cut'], ['--scenario', 'partition', '--fault-at', '5s', '--fault-for', '5s', '--duration', '6s'], []]) {
      const bad = cliIo();
      assert.equal(await main(['chaos', 'run', ...argv], bad), 2, argv.join(' '));
      assert.match(bad.err.join(''), /^sdc: CLI_USAGE: .*\n$/);
    }
  });
});
