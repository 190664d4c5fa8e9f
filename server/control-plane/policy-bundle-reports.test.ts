// Issue 12: a device's POLICY_BUNDLE_REPORT lands in the audit chain once per (device, version,
// outcome), through the audit outbox, with the device-signed frame verbatim; a refusal is also
// one warning alert. The gateway forwards the same report at every push (each AUTH, each
// re-sign), so repeats must record nothing; a forged frame records nothing and is dead-lettered.
// Runs on sql.js + embedded kv and, with MYSQL_URL and REDIS_URL, on MySQL + Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { deviceFrame, makeDeviceKey, makeHarness, sqlJsTargetWatchingTransactions, storePairs, type Harness, type StorePair } from './test-support.js';

function suite(pair: StorePair): void {
  describe(`policy bundle reports in the audit chain on ${pair.name}`, () => {
    let h: Harness;
    const device = `pbr-${randomBytes(3).toString('hex')}`;
    let deviceKey: { seed: Uint8Array; csrPem: string };
    const bundleEntries = async (): Promise<AuditEntry[]> =>
      (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.subject === `device:${device}` && e.kind.startsWith('policy_bundle.'));
    const report = async (body: JsonObject, seed = deviceKey.seed): Promise<string> => {
      const frame = deviceFrame({ deviceId: device, seed, type: 'POLICY_BUNDLE_REPORT', ts: h.clock.nowMs(), body });
      await h.bus.append(streamNames.events, encodeBusEntry('policy_bundle_report', { device_id: device, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame }));
      await h.cp.eventsConsumer.drain();
      await h.cp.context.settleAudit();
      return frame;
    };
    const alertsOf = async () => (await h.cp.alerts.list({ deviceId: device })).items.filter((a: { kind: string }) => a.kind === 'policy_bundle_refused');

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      deviceKey = await makeDeviceKey(device);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await h.cp.devices.enroll({ deviceId: device, token, csrPem: deviceKey.csrPem });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('an acceptance is audited once as policy_bundle.accepted with the signed frame, however often it is reported', async () => {
      const frame = await report({ version: 3, status: 'accepted', held_version: 3 });
      await report({ version: 3, status: 'accepted', held_version: 3 });
      await report({ version: 3, status: 'accepted', held_version: 3 });
      const entries = await bundleEntries();
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.kind, 'policy_bundle.accepted');
      assert.equal(entries[0]!.actor, `device:${device}`);
      assert.deepEqual(entries[0]!.payload, { version: 3, status: 'accepted', held_version: 3, gateway_id: 'gw1', frame });
      await report({ version: 4, status: 'accepted', held_version: 4 });
      assert.deepEqual((await bundleEntries()).map((e) => [e.kind, (e.payload as JsonObject)['version']]), [['policy_bundle.accepted', 3], ['policy_bundle.accepted', 4]]);
    });

    it('a refusal is audited once with its code and raises one alert; the same version accepted later is its own entry', async () => {
      const refused = { version: 5, status: 'refused', held_version: 4, error: { code: 'POLICY_BUNDLE_SIGNATURE_INVALID', message: 'does not verify' } };
      await report(refused);
      await report(refused);
      const entries = (await bundleEntries()).filter((e) => e.kind === 'policy_bundle.refused');
      assert.equal(entries.length, 1);
      assert.equal((entries[0]!.payload as JsonObject)['code'], 'POLICY_BUNDLE_SIGNATURE_INVALID');
      const alerts = await alertsOf();
      assert.equal(alerts.length, 1);
      assert.match((alerts[0] as { message: string }).message, /version 5 with POLICY_BUNDLE_SIGNATURE_INVALID.*enforces version 4/);
      await report({ version: 5, status: 'accepted', held_version: 5 });
      assert.deepEqual((await bundleEntries()).map((e) => e.kind).slice(-2), ['policy_bundle.refused', 'policy_bundle.accepted']);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });

    it('a report not signed by the device records nothing and is dead-lettered', async () => {
      const before = (await bundleEntries()).length;
      const deadBefore = await h.bus.length(deadLetterStream(streamNames.events));
      await report({ version: 9, status: 'accepted', held_version: 9 }, new Uint8Array(randomBytes(32)));
      assert.equal((await bundleEntries()).length, before);
      assert.equal(await h.bus.length(deadLetterStream(streamNames.events)) - deadBefore, 1, 'the forged report is dead-lettered');
    });
  });
}

describe('policy bundle reports: statements (issue 17)', () => {
  it('a first report is one INSERT of its row, no read before it; a repeat is refused by the key and records nothing', async () => {
    const statements: string[] = [];
    const h = await makeHarness(sqlJsTargetWatchingTransactions(statements));
    try {
      const device = `pbs-${randomBytes(3).toString('hex')}`;
      const key = await makeDeviceKey(device);
      const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId: device });
      await h.cp.devices.enroll({ deviceId: device, token, csrPem: key.csrPem });
      const report = async (): Promise<void> => {
        const frame = deviceFrame({ deviceId: device, seed: key.seed, type: 'POLICY_BUNDLE_REPORT', ts: h.clock.nowMs(), body: { version: 2, status: 'accepted', held_version: 2 } });
        await h.bus.append(streamNames.events, encodeBusEntry('policy_bundle_report', { device_id: device, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame }));
        await h.cp.eventsConsumer.drain();
        await h.cp.context.settleAudit();
      };
      const onReports = () => statements.filter((sql) => /policy_bundle_reports/.test(sql));
      statements.length = 0;
      await report();
      // A SELECT of the row came first before (one statement per device at a fleet's start).
      assert.deepEqual(onReports().map((sql) => sql.split(' ')[0]), ['INSERT']);
      await report();
      assert.deepEqual(onReports().map((sql) => sql.split(' ')[0]), ['INSERT', 'INSERT']);
      const entries = (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.subject === `device:${device}` && e.kind.startsWith('policy_bundle.'));
      assert.deepEqual(entries.map((e) => e.kind), ['policy_bundle.accepted']);
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    } finally {
      await h.close();
    }
  });
});

const { pairs, skipped } = storePairs();
if (skipped !== undefined) describe('policy bundle reports on mysql + redis', { skip: skipped }, () => undefined);
for (const pair of pairs) suite(pair);
