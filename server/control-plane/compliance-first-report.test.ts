// Issue 17: a device's first compliance report is stored without reading its row again inside
// the write (the read before it found none); a row written meanwhile (another control plane) is
// refused by the primary key and the retry reads and updates it, audited once per change.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ComplianceService } from './compliance.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { makeHarness, sqlJsTargetWatchingTransactions, type Harness } from './test-support.js';

const facts = { agent_version: '1.2.0', os_version: 'Linux 6.8.0', kernel_attestation: 'unattested' as const };

async function withHarness(statements: string[], fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await makeHarness(sqlJsTargetWatchingTransactions(statements));
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const enroll = (h: Harness, deviceId: string) =>
  h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES (?, 'enrolled', ?, ?)", [deviceId, h.clock.nowMs(), h.clock.nowMs() + 365 * 86_400_000]);
const changes = async (h: Harness, deviceId: string) => (await h.cp.auditStore.scan(1, 10_000))
  .filter((entry: AuditEntry) => entry.kind === 'device.compliance' && entry.subject === `device:${deviceId}`)
  .map((entry) => [(entry.payload as { from: string }).from, (entry.payload as { to: string }).to]);
const onCompliance = (statements: string[]) => statements.filter((sql) => /device_compliance/.test(sql)).map((sql) => sql.trim().split(/\s+/)[0]);

describe('compliance: a first report (issue 17)', () => {
  it('is one INSERT inside its transaction, no read of the row it just found missing; a later report reads and updates', async () => {
    const statements: string[] = [];
    await withHarness(statements, async (h) => {
      await enroll(h, 'cfr-1');
      const service = new ComplianceService({ context: h.cp.context, rules: {} });
      statements.length = 0;
      await service.record('cfr-1', facts, h.clock.nowMs());
      // A SELECT of the row came first before.
      assert.deepEqual(onCompliance(statements), ['INSERT']);
      statements.length = 0;
      await service.record('cfr-1', { ...facts, kernel_attestation: 'failed' }, h.clock.nowMs());
      assert.deepEqual(onCompliance(statements), ['SELECT', 'UPDATE']);
      assert.deepEqual(await changes(h, 'cfr-1'), [['unknown', 'compliant'], ['compliant', 'non_compliant']]);
    });
  });

  it('a row written between the read and the write (another control plane) is updated by the retry, each change audited once', async () => {
    const statements: string[] = [];
    await withHarness(statements, async (h) => {
      await enroll(h, 'cfr-2');
      const other = new ComplianceService({ context: h.cp.context, rules: {} });
      let raced = false;
      const service = new ComplianceService({
        context: h.cp.context, rules: {},
        // Runs after this service's read found no row and before its write: the other one stores first.
        onReported: async () => {
          if (raced) return;
          raced = true;
          await other.record('cfr-2', { ...facts, kernel_attestation: 'failed' }, h.clock.nowMs());
        },
      });
      const result = await service.record('cfr-2', facts, h.clock.nowMs());
      assert.equal(result.state, 'compliant');
      const view = await service.deviceCompliance('cfr-2');
      assert.equal(view.state, 'compliant');
      assert.deepEqual(await changes(h, 'cfr-2'), [['unknown', 'non_compliant'], ['non_compliant', 'compliant']]);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });
  });
});
