// Issue 17: a presence online with AUTH facts reads the device's compliance report in the same
// statement as its offline episode on sql.js (ComplianceService.reportAndEpisodeOf), and the
// compliance record of that entry (onEventEntry) uses that read instead of reading again: one
// statement less per AUTH. What is recorded, cleared and audited is as before.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import type { DevicePosture } from '../../core/protocol/messages/posture.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { parseAlertRules } from './alert-rules.js';
import { makeHarness, sqlJsTargetWatchingTransactions, type Harness } from './test-support.js';

const offlineAfterMs = 30_000;
const goodBinary = 'a'.repeat(64);
const healthy: DevicePosture = { os_version: 'Linux 6.8.0', binary_sha256: goodBinary, kernel_attestation: 'unattested' };

/** The reads of the device's report: its devices row with its device_compliance row (a join on MySQL, a UNION ALL's parts on sql.js; not the write's look at the row). */
const readsOfReport = (statements: readonly string[]) => statements.filter((sql) => /^\s*SELECT/.test(sql) && /FROM devices\b/.test(sql) && /\bdevice_compliance\b/.test(sql));
/** The reads of an open episode's alert (readOpenEpisode's, or the alerts joined to the report read); not the tamper rule's own look at its episode. */
const readsOfEpisode = (statements: readonly string[]) => statements.filter((sql) => /\bid, device_id, kind(, NULL, NULL)? FROM alerts WHERE episode_key = \?/.test(sql));

describe('a presence with AUTH facts: the compliance read rides with the episode read (issue 17)', () => {
  it('reads the device and its report once, in the episode read; records, clears and audits as before', async () => {
    const statements: string[] = [];
    const h: Harness = await makeHarness(sqlJsTargetWatchingTransactions(statements, { outsideTransactions: true }), {
      controlPlane: { alertRules: parseAlertRules({ offlineAfterMs, sampleIntervalMs: 1_000 }), complianceRules: { binary_sha256_allowed: [goodBinary] } },
    });
    try {
      const deviceId = 'cpr-1';
      await h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES (?, 'enrolled', ?, ?)", [deviceId, h.clock.nowMs(), h.clock.nowMs() + 365 * 86_400_000]);
      const presence = async (online: boolean, posture?: DevicePosture) => {
        statements.length = 0;
        await h.bus.append(streamNames.events, encodeBusEntry('presence', {
          device_id: deviceId, gateway_id: 'gw1', session_id: `s-${h.clock.nowMs()}`, online, at_ms: h.clock.nowMs(), last_command_seq: 0,
          ...(posture === undefined ? {} : { agent_version: 'sdc-agent/0.1.0', posture }),
        }));
        await h.cp.eventsConsumer.drain();
      };
      // The presence's audit entries are chained by the instant's one drain (settleAuditSoon): settled first.
      const changes = async () => (await h.cp.context.settleAudit(), await h.cp.auditStore.scan(1, 10_000))
        .filter((entry: AuditEntry) => entry.kind === 'device.compliance' && entry.subject === `device:${deviceId}`)
        .map((entry) => [(entry.payload as { from: string }).from, (entry.payload as { to: string }).to]);

      // The first AUTH: one read of the device's report, and it is the episode read (before: two statements).
      await presence(true, healthy);
      const first = statements.slice();
      assert.equal((await h.cp.compliance.deviceCompliance(deviceId)).state, 'compliant');
      assert.equal(readsOfReport(first).length, 1, first.join('\n'));
      assert.deepEqual(readsOfEpisode(first), readsOfReport(first), 'the report is read in the episode read, no read of its own');

      // Offline long enough for its alert, then an AUTH with a tampered binary: the folded read finds the
      // open episode (cleared) and the stored report (the change compliant -> non_compliant, an UPDATE).
      await presence(false);
      h.clock.advance(offlineAfterMs + 1_000);
      await h.cp.events.alertMonitor.sample();
      const offline = async () => (await h.cp.alerts.list({ deviceId, limit: 10 })).items.filter((alert) => alert.kind === 'device_offline');
      assert.equal((await offline()).length, 1);
      assert.equal((await offline())[0]!.cleared_at_ms, null);
      await presence(true, { ...healthy, binary_sha256: 'b'.repeat(64) });
      const second = statements.slice();
      assert.equal(readsOfReport(second).length, 1, second.join('\n'));
      assert.deepEqual(readsOfEpisode(second), readsOfReport(second));
      assert.equal((await offline())[0]!.cleared_at_ms, h.clock.nowMs(), 'the episode the folded read found is cleared');
      assert.deepEqual(second.filter((sql) => /device_compliance/.test(sql) && !/^\s*SELECT/.test(sql)).map((sql) => sql.trim().split(/\s+/)[0]), ['UPDATE'],
        'the folded read found the stored row: no INSERT tried first');
      const view = await h.cp.compliance.deviceCompliance(deviceId);
      assert.equal(view.state, 'non_compliant');
      assert.equal(view.facts.binary_sha256, 'b'.repeat(64));
      assert.equal(view.reported_at_ms, h.clock.nowMs());
      assert.deepEqual(await changes(), [['unknown', 'compliant'], ['compliant', 'non_compliant']]);

      // A presence without AUTH facts reads no report: the plain episode read.
      await presence(true);
      assert.deepEqual(readsOfReport(statements), []);
      assert.equal(readsOfEpisode(statements).length, 1);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    } finally {
      await h.close();
    }
  });
});
