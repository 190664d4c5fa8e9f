import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertLinkRunHeld, chaosRun, linkFaultForm } from './support/chaos-run-driver.js';

// `sdc chaos run`'s store cuts in a short form (issue 11): Redis and MySQL behind the fault proxy,
// each cut (its proxy disabled) from 1 s to 3 s of 5 s of commands under the running services.
// Judged by what held, never by how long anything took.

const redisUrl = process.env.REDIS_URL;
const mysqlUrl = process.env.MYSQL_URL;

describe('sdc chaos run: store cuts', () => {
  // Skipped without the servers: chaos-run.test.ts covers the agent-side faults on embedded
  // stores; the store cuts need a real Redis and MySQL behind the proxy (.ci/run starts both).
  it('Redis and MySQL connections cut under the running services: they reconnect and nothing is lost', { skip: redisUrl === undefined || mysqlUrl === undefined }, async () => {
    const { code, reports, detail } = await chaosRun(['--scenario', 'redis-cut,mysql-cut', '--redis', redisUrl!, '--mysql', mysqlUrl!], linkFaultForm);
    assert.equal(code, 0, detail);
    assert.deepEqual(reports.map((r) => r.chaos_run), ['redis-cut', 'mysql-cut']);
    for (const report of reports) {
      assert.equal(report.stores, 'redis+mysql');
      assertLinkRunHeld(report, { cutsSessions: false });
    }
  });
});
