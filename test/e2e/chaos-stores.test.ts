import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MidStartLossFacts, StartOutageFacts } from '../../cli/commands/chaos-real/start-outage.js';
import { databaseExists, keysUnder } from '../../server/stores/leftovers-test-support.js';
import { assertLinkRunHeld, chaosRun, linkFaultForm, startFaultForm } from './support/chaos-run-driver.js';

// `sdc chaos run`'s store faults in a short form (issue 11), with Redis and MySQL behind the fault
// proxy. Under the running services: each store cut (its proxy disabled) from 1 s to 3 s of 5 s of
// commands. While the deployment starts (faults at t = 0): Redis and MySQL down together before
// the start (both proxies disabled), /readyz read while the start waits, the proxies enabled again
// 1 s after it named them, then 2 s of commands with no fault; and each store lost part-way
// through the start (after it answered, while the services start and the control plane migrates).
// Judged by what held, never by how long anything took. The runs go three at a time: each has its
// own deployment, proxies, MySQL database and Redis key prefix, and mostly waits (the file's
// process and module load are paid once; these were chaos-store-cut and chaos-store-start).

const redisUrl = process.env.REDIS_URL;
const mysqlUrl = process.env.MYSQL_URL;
// Skipped without the servers: the embedded stores live in the process and cannot be down.
const skip = redisUrl === undefined || mysqlUrl === undefined;

describe('sdc chaos run: store faults', { concurrency: 3 }, () => {
  // Skipped without the servers: chaos-run.test.ts covers the agent-side faults on embedded
  // stores; the store faults need a real Redis and MySQL behind the proxy (.ci/run starts both).
  for (const store of ['redis', 'mysql'] as const) {
    it(`${store === 'redis' ? 'Redis' : 'MySQL'} connections cut under the running services: they reconnect and nothing is lost`, { skip }, async () => {
      const { code, reports, detail } = await chaosRun(['--scenario', `${store}-cut`, '--redis', redisUrl!, '--mysql', mysqlUrl!], linkFaultForm);
      assert.equal(code, 0, detail);
      assert.deepEqual(reports.map((r) => r.chaos_run), [`${store}-cut`]);
      assert.equal(reports[0]!.stores, 'redis+mysql');
      assertLinkRunHeld(reports[0]!, { cutsSessions: false });
      // A run that passes removes its Redis keys and drops its database, its store cut notwithstanding
      // (a run of its own in chaos-run-leftovers.test.ts until 6 December, which keeps the thrown,
      // --keep-stores and Ctrl-C cases).
      const { redis_key_prefix: prefix, mysql_database: database, kept } = reports[0]!.run_stores;
      assert.equal(kept, false);
      assert.ok(prefix !== null && database !== null, JSON.stringify(reports[0]!.run_stores));
      assert.deepEqual(await keysUnder(redisUrl!, prefix), []);
      assert.equal(await databaseExists(mysqlUrl!, database), false);
    });
  }

  // One run for both stores (there were two, one a store): each is named while down and the start
  // waits for the later one; a store that alone is down waits the same way (store-connect.ts).
  it('Redis and MySQL down while the deployment starts (t = 0): /readyz names both, the start waits and completes once they are back', { skip }, async () => {
    const { code, reports, detail } = await chaosRun(['--scenario', 'stores-down-at-start', '--redis', redisUrl!, '--mysql', mysqlUrl!], startFaultForm);
    assert.equal(code, 0, detail);
    const [report] = reports;
    assert.equal(report!.chaos_run, 'stores-down-at-start');
    assertLinkRunHeld(report!, { cutsSessions: false });
    const outage = report!.scenario_facts.start_outage as StartOutageFacts;
    assert.deepEqual(outage.stores, ['redis', 'mysql']);
    assert.equal(outage.readyz_while_down?.status, 503);
    assert.deepEqual([...outage.readyz_while_down!.body.down].sort(), ['mysql', 'redis']);
    assert.equal(outage.readyz_while_down?.body.status, 'starting');
    assert.equal(outage.readyz_after?.status, 200);
    assert.equal(outage.readyz_after?.body.ready, true);
  });

  // Before the start rode this out (server/deployment/start-store-loss.ts), the MySQL run exited 1
  // with `sdc: STORE_UNAVAILABLE: Connection lost: The server closed the connection.`
  for (const store of ['mysql', 'redis'] as const) {
    const url = store === 'mysql' ? mysqlUrl : redisUrl;
    it(`${store === 'mysql' ? 'MySQL' : 'Redis'} lost part-way through the start (after it answered): /readyz names it again, the start runs again once it is back`, { skip: url === undefined }, async () => {
      const { code, reports, detail } = await chaosRun(['--scenario', `${store}-lost-mid-start`, `--${store}`, url!], startFaultForm);
      assert.equal(code, 0, detail);
      const [report] = reports;
      assertLinkRunHeld(report!, { cutsSessions: false });
      const loss = report!.scenario_facts.mid_start_loss as MidStartLossFacts;
      // The cut landed inside the start: the store had answered, the start had not completed.
      assert.equal(loss.store, store);
      assert.equal(loss.readyz_before_cut?.body.status, 'starting');
      assert.deepEqual(loss.readyz_before_cut?.body.dependencies.find((d) => d.name === store)?.state, 'up');
      assert.equal(loss.started_before_cut, false);
      assert.equal(loss.readyz_after_cut?.status, 503);
      assert.deepEqual(loss.readyz_after_cut?.body.down, [store]);
      assert.equal(loss.readyz_after?.status, 200);
    });
  }
});
