import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { OtaServices } from './ota-service.js';
import type { RepositoryKeys } from './repository-init.js';
import { RolloutService, type NoticeRefusalUnaudited } from './rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from './test-support.js';

/**
 * A device's `notice_refused` OTA_REPORT is signed but carries nothing fresh, so a gateway can
 * replay one frame as often as it likes (review h1: 500 deliveries of one frame were 500 audit
 * entries, on an execution already canceled). Audited once per execution and code while the
 * execution runs, on sql.js and on MySQL + Redis when both URLs are set; the mark is in the
 * database, so a restarted coordinator does not audit it again. Device frames are taken as
 * verified here, as in rollouts.test.ts.
 */

for (const pair of storePairs().pairs) {
  describe(`notice_refused reports audited once (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    const unaudited: NoticeRefusalUnaudited[] = [];
    const tag = Math.random().toString(16).slice(2, 8);
    const device = `nr-${tag}`;
    const serviceOn = () => new RolloutService({
      context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
      onNoticeRefusalUnaudited: (reason) => { unaudited.push(reason); },
    });

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'active', ?)", [device, h.clock.nowMs()]);
      await publishTestRelease(h.ota, h.keys!, { id: `rel-${tag}`, version: '2.0.0', artifact: new TextEncoder().encode('firmware 2.0.0') });
    });
    after(async () => { await h?.close(); await pair.sql.cleanup(); });

    const auditedCodes = async (): Promise<string[]> => {
      const rows = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.execution.notice_refused' AND subject = ? ORDER BY seq", [`device:${device}`]);
      return rows.map((row) => (JSON.parse(row.payload_json) as { code: string }).code);
    };
    const refusedFrame = (executionId: string, code: string, reportId: string) => JSON.stringify({ execution_id: executionId, event: 'notice_refused', report_id: reportId, error: { code, message: 'refused' } });
    const deliver = (service: RolloutService, frame: string, gatewayId = 'gw-evil') => service.onReport({ device_id: device, gateway_id: gatewayId, at_ms: h.clock.nowMs(), frame });

    it('one entry per execution and code while it runs, none for a replayed frame, a restarted coordinator or an ended execution', async () => {
      let service = serviceOn();
      const view = await service.start({
        releaseId: `rel-${tag}`, platform: 'linux-x64', deviceIds: [device],
        plan: { waves: [{ selector: { deviceIds: [device] }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } }], devicesPerMinuteMax: 10 },
      }, 'olga');
      const executionId = (JSON.parse((await h.cp.context.kv.get(otaKeys.notice(device)))!) as MessageBody<'OTA_NOTICE'>).execution_id;

      // One genuine frame delivered 50 times (a hostile gateway's replay), then the agent's next report of the same refusal.
      const frame = refusedFrame(executionId, 'OTA_NOTICE_STATE_UNSIGNED', 'or-0000000000000000-1');
      for (let i = 0; i < 50; i += 1) await deliver(service, frame);
      await deliver(service, refusedFrame(executionId, 'OTA_NOTICE_STATE_UNSIGNED', 'or-0000000000000000-2'), 'gw-1');
      assert.deepEqual(await auditedCodes(), ['OTA_NOTICE_STATE_UNSIGNED']);
      assert.equal(unaudited.filter((reason) => reason === 'repeat').length, 50);

      // Another code is news; codes the agent does not send share one mark.
      await deliver(service, refusedFrame(executionId, 'OTA_NOTICE_STATE_BINDING', 'or-0000000000000000-3'));
      await deliver(service, refusedFrame(executionId, 'OTA_MADE_UP_ONE', 'or-0000000000000000-4'));
      await deliver(service, refusedFrame(executionId, 'OTA_MADE_UP_TWO', 'or-0000000000000000-5'));
      assert.deepEqual(await auditedCodes(), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_MADE_UP_ONE']);

      // A restart: a new coordinator on the same database does not audit the frame again.
      service = serviceOn();
      for (let i = 0; i < 5; i += 1) await deliver(service, frame);
      assert.deepEqual(await auditedCodes(), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_MADE_UP_ONE']);
      assert.deepEqual([unaudited.filter((reason) => reason === 'repeat').length, unaudited.filter((reason) => reason === 'ended').length], [56, 0]);

      // The execution ends (an emergency abort before the commit cancels it): a code not seen before is not audited either.
      await service.act(view.id, 'emergency_abort', 'olga');
      assert.equal((await service.view(view.id)).executions[0]!.state, 'canceled');
      for (let i = 0; i < 20; i += 1) await deliver(service, refusedFrame(executionId, 'OTA_NOTICE_STATE_REPLAYED', 'or-0000000000000000-6'));
      assert.deepEqual(await auditedCodes(), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_MADE_UP_ONE']);
      assert.equal(unaudited.filter((reason) => reason === 'ended').length, 20);
      assert.equal((await service.view(view.id)).executions[0]!.state, 'canceled', 'the reports moved nothing');
    });
  });
}
