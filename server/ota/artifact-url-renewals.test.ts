import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { otaChannels, otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { OtaServices } from './ota-service.js';
import type { ReleaseService } from './releases.js';
import type { RepositoryKeys } from './repository-init.js';
import { artifactUrlExpirySecondsDefault, noticeRepushIntervalMsDefault, RolloutService, type ArtifactUrlNotRenewed } from './rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from './test-support.js';

/**
 * A device's `artifact_url_expired` OTA_REPORT is signed but carries nothing fresh, so a gateway
 * can replay one frame as often as it likes; each delivery used to cost a newly presigned URL and
 * a notice push. A new URL only when the newest one issued for the execution is expired or nearly
 * (a quarter of its lifetime left); otherwise the stored notice is announced again, at most once
 * per re-push interval, and nothing is signed. On sql.js and on MySQL when its URL is set (the
 * expiry record is in the key/value store, which every control plane shares). Virtual time (the
 * harness's ManualClock); device frames taken as verified, as in rollouts.test.ts. The test
 * artifact store cannot presign, so presigning is counted by a wrapper that mints numbered URLs.
 */

for (const pair of storePairs().pairs) {
  describe(`artifact_url_expired answered with a new URL only near its expiry (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    const notRenewed: ArtifactUrlNotRenewed[] = [];
    const announced: string[] = [];
    let presigned = 0;
    let unsubscribe: (() => Promise<void>) | undefined;
    const tag = Math.random().toString(16).slice(2, 8);
    const device = `au-${tag}`;
    const device2 = `au2-${tag}`;
    const lifetimeMs = artifactUrlExpirySecondsDefault * 1_000;
    const countingReleases = (): ReleaseService => new Proxy(h.ota.releases, {
      get(target, property) {
        if (property === 'presignArtifact') {
          return async (sha256: string, expiresInSeconds: number) => {
            presigned += 1;
            return `https://blobs.example/ota/artifacts/${sha256}?n=${presigned}&X-Amz-Expires=${expiresInSeconds}`;
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const serviceOn = () => new RolloutService({
      context: h.cp.context, releases: countingReleases(), signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
      onArtifactUrlNotRenewed: (reason) => { notRenewed.push(reason); },
    });

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'active', ?)", [device, h.clock.nowMs()]);
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'active', ?)", [device2, h.clock.nowMs()]);
      await publishTestRelease(h.ota, h.keys!, { id: `rel-${tag}`, version: '2.0.0', artifact: new TextEncoder().encode('firmware 2.0.0') });
      unsubscribe = await h.cp.context.kv.subscribe(otaChannels.noticeReady, (message) => { announced.push(message); });
    });
    after(async () => { await unsubscribe?.(); await h?.close(); await pair.sql.cleanup(); });

    const noticeUrl = async (): Promise<string | undefined> => (JSON.parse((await h.cp.context.kv.get(otaKeys.notice(device)))!) as MessageBody<'OTA_NOTICE'>).artifact_url;
    const expiredFrame = (executionId: string, reportId: string) => JSON.stringify({ execution_id: executionId, event: 'artifact_url_expired', report_id: reportId });
    const deliver = (service: RolloutService, frame: string) => service.onReport({ device_id: device, gateway_id: 'gw-evil', at_ms: h.clock.nowMs(), frame });
    const count = (reason: ArtifactUrlNotRenewed) => notRenewed.filter((r) => r === reason).length;
    // Pub/sub delivery is asynchronous: wait for the announcements counted so far to arrive (an event-loop turn, no timer).
    const settle = () => new Promise((resolve) => setImmediate(resolve));

    it('a replayed frame signs nothing while the newest URL is valid; a download that outlived it gets a new one', async () => {
      let service = serviceOn();
      const view = await service.start({
        releaseId: `rel-${tag}`, platform: 'linux-x64', deviceIds: [device],
        plan: { waves: [{ selector: { deviceIds: [device] }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } }], devicesPerMinuteMax: 10 },
      }, 'olga');
      const executionId = (JSON.parse((await h.cp.context.kv.get(otaKeys.notice(device)))!) as MessageBody<'OTA_NOTICE'>).execution_id;
      assert.equal(presigned, 1, 'the first notice carries a presigned URL');
      const first = await noticeUrl();
      await settle();
      announced.length = 0;

      // One genuine frame delivered 50 times while the URL has its whole lifetime left: nothing signed, one announcement.
      const frame = expiredFrame(executionId, 'or-0000000000000000-1');
      for (let i = 0; i < 50; i += 1) await deliver(service, frame);
      await settle();
      assert.equal(presigned, 1);
      assert.equal(await noticeUrl(), first, 'the stored notice still carries the newest URL');
      assert.deepEqual([announced.length, count('reannounced'), count('unexpired')], [1, 1, 49]);

      // A re-push interval later one more announcement (a device that missed the notice still gets it); still nothing signed.
      h.clock.advance(noticeRepushIntervalMsDefault);
      for (let i = 0; i < 10; i += 1) await deliver(service, frame);
      await settle();
      assert.deepEqual([presigned, announced.length, count('reannounced'), count('unexpired')], [1, 2, 2, 58]);

      // A restarted coordinator reads the URL's expiry from the key/value store: still nothing signed.
      service = serviceOn();
      for (let i = 0; i < 5; i += 1) await deliver(service, frame);
      assert.equal(presigned, 1);

      // The download outlived most of the URL's lifetime: the next ask (and only it) gets a new URL.
      h.clock.advance(lifetimeMs - lifetimeMs / 4 - noticeRepushIntervalMsDefault);
      await deliver(service, expiredFrame(executionId, 'or-0000000000000000-2'));
      assert.equal(presigned, 2);
      const second = await noticeUrl();
      assert.notEqual(second, first);
      for (let i = 0; i < 20; i += 1) await deliver(service, frame);
      assert.equal(presigned, 2, 'replays after a renewal sign nothing');
      assert.equal(await noticeUrl(), second);

      // A genuinely expired URL (a slow download, the device's clock behind): a new one again.
      h.clock.advance(lifetimeMs + 1);
      await deliver(service, expiredFrame(executionId, 'or-0000000000000000-3'));
      assert.equal(presigned, 3);
      assert.notEqual(await noticeUrl(), second);

      // The execution ends: nothing signed or pushed for it.
      await service.act(view.id, 'emergency_abort', 'olga');
      assert.equal((await service.view(view.id)).executions[0]!.state, 'canceled');
      const signedBefore = presigned;
      h.clock.advance(lifetimeMs + 1);
      for (let i = 0; i < 10; i += 1) await deliver(service, frame);
      assert.equal(presigned, signedBefore);
      assert.equal(count('ended'), 10);
    });

    it('a notice write that failed does not record its URL as issued: the next ask gets a new URL (h20)', async () => {
      // The service's key/value store fails the next write of device2's notice once (a brief outage).
      let failNoticeWrites = 0;
      const kv = new Proxy(h.cp.context.kv, {
        get(target, property) {
          if (property === 'set') {
            return async (key: string, value: string, options?: { ttlMs?: number }) => {
              if (key === otaKeys.notice(device2) && failNoticeWrites > 0) {
                failNoticeWrites -= 1;
                throw new Error('kv briefly unavailable');
              }
              return target.set(key, value, options);
            };
          }
          const member: unknown = Reflect.get(target, property, target);
          return typeof member === 'function' ? (member as (...args: unknown[]) => unknown).bind(target) : member;
        },
      });
      const context = new Proxy(h.cp.context, { get: (target, property) => (property === 'kv' ? kv : Reflect.get(target, property, target)) });
      const service = new RolloutService({
        context, releases: countingReleases(), signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
        verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
      });
      const noticeUrl2 = async (): Promise<string | undefined> => (JSON.parse((await h.cp.context.kv.get(otaKeys.notice(device2)))!) as MessageBody<'OTA_NOTICE'>).artifact_url;
      const deliver2 = (frame: string) => service.onReport({ device_id: device2, gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame });
      await service.start({
        releaseId: `rel-${tag}`, platform: 'linux-x64', deviceIds: [device2],
        plan: { waves: [{ selector: { deviceIds: [device2] }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } }], devicesPerMinuteMax: 10 },
      }, 'olga');
      const executionId = (JSON.parse((await h.cp.context.kv.get(otaKeys.notice(device2)))!) as MessageBody<'OTA_NOTICE'>).execution_id;
      const first = await noticeUrl2();
      assert.notEqual(first, undefined);
      const signedBefore = presigned;

      // The first URL expired; the renewal's notice write fails: a URL was signed but the stored notice keeps the old one.
      h.clock.advance(lifetimeMs + 1);
      failNoticeWrites = 1;
      await deliver2(expiredFrame(executionId, 'or-0000000000000000-1'));
      assert.deepEqual([failNoticeWrites, presigned], [0, signedBefore + 1]);
      assert.equal(await noticeUrl2(), first, 'the failed write left the expired URL in the stored notice');

      // The device asks again (moments later): a new URL in the stored notice, not the expired one re-sent.
      await deliver2(expiredFrame(executionId, 'or-0000000000000000-2'));
      assert.equal(presigned, signedBefore + 2);
      const renewed = await noticeUrl2();
      assert.notEqual(renewed, first);
      // Recorded now that its notice is stored: replays sign nothing more.
      await deliver2(expiredFrame(executionId, 'or-0000000000000000-2'));
      assert.equal(presigned, signedBefore + 2);
      assert.equal(await noticeUrl2(), renewed);
    });
  });
}
