// Issue 17: with an eventAuditWindowMs (the simulator's 50 ms), the audit inputs the event
// handlers record (here a device's compliance at AUTH, as ComplianceService.onEventEntry stores
// it: settle 'soon') share one outbox drain per window instead of one per instant. At a
// simulated fleet's start each virtual millisecond held one or two such inputs, each instant's
// drain a transaction of its own (1,002 drains for 2,000 agents). Nothing is lost or reordered:
// the window's drain chains every input in record order. Without the option (the control
// plane's default) each instant still drains its own. Both store pairs (sql.js + embedded kv;
// MySQL + Redis with MYSQL_URL and REDIS_URL), the control plane's timers on virtual time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { makeHarness, storePairs, watchAuditDrains, type Harness, type StorePair } from './test-support.js';

const windowMs = 50;
const facts = { agent_version: '1.2.0', os_version: 'Linux 6.8.0', kernel_attestation: 'unattested' as const };

function suite(pair: StorePair, eventAuditWindowMs: number | undefined): void {
  const label = eventAuditWindowMs === undefined ? 'without a window (the default): one drain per instant' : `with a ${eventAuditWindowMs} ms window: one drain per window`;
  describe(`compliance audit inputs at AUTH ${label} on ${pair.name}`, () => {
    let h: Harness;
    const time = new VirtualTime(0);
    const devices = [0, 1, 2].map((i) => `caw${i}-${randomBytes(3).toString('hex')}`);
    /** Per store call that chains outbox inputs: how many of ours it chained. */
    const drainCalls: number[] = [];
    const ours = (subject: string): boolean => devices.some((id) => subject === `device:${id}`);

    before(async () => {
      h = await makeHarness(pair.sql, {
        ...(pair.kv === undefined ? {} : { kv: pair.kv }),
        controlPlane: { scheduler: time, ...(eventAuditWindowMs === undefined ? {} : { eventAuditWindowMs }) },
      });
      watchAuditDrains(h.cp.auditStore, (entries) => {
        const mine = entries.filter((entry) => ours(entry.subject)).length;
        if (mine > 0) drainCalls.push(mine);
      });
      for (const id of devices) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES (?, 'enrolled', ?, ?)", [id, h.clock.nowMs(), h.clock.nowMs() + 365 * 86_400_000]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('three devices\' first reports, 10 virtual ms apart, are chained in record order', async () => {
      for (const id of devices) {
        const result = await h.cp.compliance.record(id, facts, h.clock.nowMs(), 'soon');
        assert.equal(result.state, 'compliant');
        time.advance(10);
        await h.cp.sweepsSettled();
      }
      if (eventAuditWindowMs === undefined) {
        assert.deepEqual(drainCalls, [1, 1, 1], 'each instant drained its own input');
      } else {
        assert.deepEqual(drainCalls, [], 'the window (opened by the first report) has not ended');
        time.advance(eventAuditWindowMs - 30);
        await h.cp.sweepsSettled();
        assert.deepEqual(drainCalls, [3], 'one drain chained the three inputs');
      }
      const chained = (await h.cp.auditStore.scan(1, 10_000)).filter((entry) => ours(entry.subject));
      assert.deepEqual(chained.map((entry) => [entry.kind, entry.subject]), devices.map((id) => ['device.compliance', `device:${id}`]), 'chained in the order recorded');
      assert.equal(await h.cp.auditStore.recordedCount(), 0, 'the outbox is empty');
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });
  });
}

// A fresh set of targets per suite: each suite drops its MySQL database when it ends.
for (const eventAuditWindowMs of [windowMs, undefined]) {
  const { pairs, skipped } = storePairs();
  if (skipped !== undefined) describe('compliance audit inputs at AUTH on mysql + redis', { skip: skipped }, () => undefined);
  for (const pair of pairs) suite(pair, eventAuditWindowMs);
}
