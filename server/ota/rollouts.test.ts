import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyDirectorEnvelope } from '../../core/ota/director.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { verifyCommand } from '../../core/protocol/signed-command.js';
import { SdcError } from '../../core/errors/index.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { otaChannels, otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { RepositoryKeys } from './repository-init.js';
import { noticeRepushIntervalMsDefault, RolloutService } from './rollouts.js';
import { makeOtaHarness, publishTestRelease, rolloutPolicyOf } from './test-support.js';
import type { OtaServices } from './ota-service.js';

/**
 * The rollout coordinator in the control plane on virtual time (a ManualClock), on sql.js and on
 * MySQL + Redis when both URLs are set: the notice each device gets (the director's document and
 * kernel commands verify under the command key), success only from a version report with the
 * health nonce, waves in order after the soak, a wave over its error threshold pausing the
 * rollout with no device of the next wave notified, timeouts, the operator's actions, and a
 * notice the device missed pushed again (the nonce, a cancel before or after the commit).
 * Device frames are taken as verified here (the e2e test verifies real device signatures).
 */

const provider = createNodeEd25519Provider();
const artifact = new TextEncoder().encode('firmware 2.0.0 '.repeat(64));

for (const pair of storePairs().pairs) {
  describe(`rollouts (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    let service: RolloutService;
    let reportsSent = 0;
    const tag = Math.random().toString(16).slice(2, 8);
    const devices = Array.from({ length: 8 }, (_, i) => `ro-${tag}-${i}`);

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      const nowMs = h.clock.nowMs();
      for (const id of devices) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'active', ?)", [id, nowMs]);
      await publishTestRelease(h.ota, h.keys!, { id: `rel-${tag}`, version: '2.0.0', artifact });
      service = new RolloutService({
        context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp),
        // The frame is the report body itself here: what this suite tests is what happens after verification.
        verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
      });
    });
    after(async () => { await h?.close(); await pair.sql.cleanup(); });

    const notice = async (deviceId: string): Promise<MessageBody<'OTA_NOTICE'> | undefined> => {
      const text = await h.cp.context.kv.get(otaKeys.notice(deviceId));
      return text === null ? undefined : JSON.parse(text) as MessageBody<'OTA_NOTICE'>;
    };
    const report = (deviceId: string, body: Omit<MessageBody<'OTA_REPORT'>, 'report_id'>) => service.onReport({
      device_id: deviceId, gateway_id: 'gw-1', at_ms: h.clock.nowMs(), frame: JSON.stringify({ ...body, report_id: `r${++reportsSent}` }),
    });
    /** Counts the notice announcements (kv.publish on the notice channel) of each device until the returned stop is called. */
    const countAnnouncements = () => {
      const kv = h.cp.context.kv;
      const announced: string[] = [];
      const publish = kv.publish.bind(kv);
      kv.publish = async (channel, message) => {
        if (channel === otaChannels.noticeReady) announced.push(message);
        return publish(channel, message);
      };
      return { of: (deviceId: string) => announced.filter((id) => id === deviceId).length, stop: () => { kv.publish = publish; } };
    };
    /** A release `rel<n>` published and rolled out in one wave to two devices; their execution ids. */
    const startPair = async (n: number, version: string, pair: readonly [string, string]) => {
      await publishTestRelease(h.ota, h.keys!, { id: `rel${n}-${tag}`, version, artifact: new TextEncoder().encode(`firmware ${version}`) });
      const view = await service.start({ releaseId: `rel${n}-${tag}`, platform: 'linux-x64', deviceIds: [...pair], plan: { waves: [wave([...pair], 0, 100)], devicesPerMinuteMax: 10 } }, 'olga');
      return { view, ids: [(await notice(pair[0]))!.execution_id, (await notice(pair[1]))!.execution_id] as const };
    };
    const stateOf = async (rolloutId: string, deviceId: string) => (await service.view(rolloutId)).executions.find((e) => e.device_id === deviceId)?.state;
    /** The device's side of a good update up to its version report: every step reported in order. */
    const runUpdate = async (deviceId: string, healthy: boolean) => {
      const { execution_id } = (await notice(deviceId))!;
      for (const event of ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'] as const) await report(deviceId, { execution_id, event });
      const nonce = (await notice(deviceId))!.health_nonce;
      assert.ok(nonce, 'the health nonce reaches the device once it is back');
      await report(deviceId, { execution_id, event: 'version_report', nonce: nonce!, release_counter: 1, healthy });
      if (!healthy) await report(deviceId, { execution_id, event: 'rollback_complete' });
    };
    const wave = (ids: string[], soakMs = 0, failedPercentMax = 0) => ({
      selector: { deviceIds: ids }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs }, errorThreshold: { executedMin: 1, failedPercentMax },
    });

    it('notifies the first wave only, with a director document and kernel commands that verify under the command key', async () => {
      const view = await service.start({ releaseId: `rel-${tag}`, platform: 'linux-x64', deviceIds: devices.slice(0, 2), plan: { waves: [wave([devices[0]!], 60_000), wave([devices[1]!])], devicesPerMinuteMax: 10 } }, 'olga');
      assert.equal(view.status, 'running');
      assert.deepEqual(view.executions.map((e) => [e.device_id, e.state]), [[devices[0], 'notified']]);
      assert.equal(await notice(devices[1]!), undefined, 'the second wave is not told anything yet');
      const first = (await notice(devices[0]!))!;
      const signer = h.materials.commandSigner;
      const doc = verifyDirectorEnvelope(first.director, { keyId: signer.kid, publicKey: signer.publicKey }, provider);
      assert.deepEqual([doc.deviceId, doc.rolloutId, doc.wave, doc.executionId, doc.target.releaseCounter, doc.target.platform], [devices[0], view.id, 0, first.execution_id, 1, 'linux-x64']);
      for (const command of Object.values(first.kernel_commands)) {
        verifyCommand({ command, deviceId: devices[0]!, resolveKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), provider, nowMs: h.clock.nowMs() });
      }
      assert.equal(first.kernel_commands.stage.args['sha256'], doc.target.hashes['sha256'], 'the kernel is told the digest the director names');

      // A version report before the health check started is refused, and success comes only with the nonce.
      await report(devices[0]!, { execution_id: first.execution_id, event: 'accept' });
      await assert.rejects(report(devices[0]!, { execution_id: first.execution_id, event: 'version_report', nonce: 'n'.repeat(43), release_counter: 1, healthy: true }),
        (error) => SdcError.is(error, 'OTA_REPORT_UNEXPECTED'));
      for (const event of ['precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'] as const) await report(devices[0]!, { execution_id: first.execution_id, event });
      await assert.rejects(report(devices[0]!, { execution_id: first.execution_id, event: 'version_report', nonce: 'x'.repeat(43), release_counter: 1, healthy: true }),
        (error) => SdcError.is(error, 'OTA_REPORT_STALE_NONCE'));
      const nonce = (await notice(devices[0]!))!.health_nonce!;
      await report(devices[0]!, { execution_id: first.execution_id, event: 'version_report', nonce, release_counter: 1, healthy: true });
      assert.equal(await stateOf(view.id, devices[0]!), 'succeeded');
      // The agent re-sends its reports at every AUTH: a repeat of the version report is ignored, not refused.
      await report(devices[0]!, { execution_id: first.execution_id, event: 'version_report', nonce, release_counter: 1, healthy: true });
      assert.equal(await stateOf(view.id, devices[0]!), 'succeeded');
      assert.equal(await notice(devices[0]!), undefined, 'a finished execution\'s notice is removed');

      // The wave soaks for a minute before the next one starts.
      await service.sweep();
      assert.equal(await stateOf(view.id, devices[1]!), undefined);
      h.clock.advance(60_000);
      await service.sweep();
      assert.equal(await stateOf(view.id, devices[1]!), 'notified');
      await runUpdate(devices[1]!, true);
      const done = await service.view(view.id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.waves.map((w) => w.succeeded), [1, 1]);
    });

    it('a first wave over its error threshold pauses the rollout; no device of the next wave is notified, abort ends it', async () => {
      await publishTestRelease(h.ota, h.keys!, { id: `rel2-${tag}`, version: '2.1.0', artifact: new TextEncoder().encode('firmware 2.1.0') });
      const [a, b, c, d] = devices.slice(2) as [string, string, string, string];
      const view = await service.start({ releaseId: `rel2-${tag}`, platform: 'linux-x64', deviceIds: [a, b, c, d], plan: { waves: [wave([a, b], 0, 40), wave([c, d])], devicesPerMinuteMax: 10 } }, 'olga');
      await runUpdate(a, true);
      await runUpdate(b, false);
      assert.equal(await stateOf(view.id, b), 'rolled_back');
      const paused = await service.view(view.id);
      assert.deepEqual([paused.status, paused.pause_reason, paused.wave_index], ['paused', 'error_threshold', 0]);
      h.clock.advance(120_000);
      await service.sweep();
      assert.equal((await service.view(view.id)).executions.length, 2, 'no execution for the second wave');
      assert.equal(await notice(c), undefined);
      assert.equal(await notice(d), undefined);
      await assert.rejects(service.act(view.id, 'resume', 'olga').then(() => service.act(view.id, 'resume', 'olga')), (error) => SdcError.is(error, 'OTA_ROLLOUT_STATE'));
    });

    it('an execution that stops answering times out (a failure), and an emergency abort cancels what is in flight', async () => {
      await publishTestRelease(h.ota, h.keys!, { id: `rel3-${tag}`, version: '2.2.0', artifact: new TextEncoder().encode('firmware 2.2.0') });
      const [x, y] = devices.slice(0, 2) as [string, string];
      const view = await service.start({ releaseId: `rel3-${tag}`, platform: 'linux-x64', deviceIds: [x, y], plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 5, failedPercentMax: 100 } }], devicesPerMinuteMax: 10 } }, 'olga');
      const xNotice = (await notice(x))!;
      await report(x, { execution_id: xNotice.execution_id, event: 'accept' });
      h.clock.advance(31 * 60_000); // y's `notified` step (30 min) runs out; x is prechecking (10 min)
      await service.sweep();
      assert.equal(await stateOf(view.id, y), 'timed_out');
      assert.equal(await stateOf(view.id, x), 'timed_out');
      const ended = await service.view(view.id);
      assert.deepEqual([ended.status, ended.waves[0]!.failed], ['completed', 2], 'timed_out counts as a failure and the wave still ends (hawkBit #693)');
    });

    it('an emergency abort cancels before commit and rolls back after it, and tells the device', async () => {
      await publishTestRelease(h.ota, h.keys!, { id: `rel4-${tag}`, version: '2.3.0', artifact: new TextEncoder().encode('firmware 2.3.0') });
      const [x, y] = devices.slice(0, 2) as [string, string];
      const view = await service.start({ releaseId: `rel4-${tag}`, platform: 'linux-x64', deviceIds: [x, y], plan: { waves: [wave([x, y], 0, 100)], devicesPerMinuteMax: 10 } }, 'olga');
      const xNotice = (await notice(x))!;
      for (const event of ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit'] as const) await report(x, { execution_id: xNotice.execution_id, event });
      await assert.rejects(service.act(view.id, 'resume', 'olga'), (error) => SdcError.is(error, 'OTA_ROLLOUT_STATE'));
      const aborted = await service.act(view.id, 'emergency_abort', 'ada');
      assert.equal(aborted.status, 'aborted');
      assert.equal(await stateOf(view.id, x), 'rolling_back', 'after commit a cancel means roll back');
      assert.equal(await stateOf(view.id, y), 'canceled', 'before commit a cancel stops it');
      assert.equal((await notice(x))?.cancel, true, 'the device is told to stop');
      await report(x, { execution_id: xNotice.execution_id, event: 'rollback_complete' });
      assert.equal(await stateOf(view.id, x), 'rolled_back');
    });

    it('a report that shows the device missed a pushed notice (the nonce after rebooted, a cancel) pushes it again, at most once per interval', async () => {
      // Counts the notice announcements (kv.publish on the notice channel) by device, from here on.
      const announced = countAnnouncements();
      try {
        const [p, q] = devices.slice(4) as [string, string];
        const { view, ids: [pId, qId] } = await startPair(5, '2.4.0', [p, q]);
        for (const event of ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'] as const) await report(p, { execution_id: pId, event });
        const nonce = (await notice(p))!.health_nonce!;
        const pushes = () => announced.of(p);
        const afterNonce = pushes();
        // At once, the agent answering the notice repeats every report: that is no sign of a lost notice.
        for (const event of ['accept', 'commit', 'rebooted'] as const) await report(p, { execution_id: pId, event });
        assert.equal(pushes(), afterNonce, 'repeats within the interval of the nonce push nothing');
        // The notice with the nonce was lost: the agent, still waiting, sends its reports again later.
        h.clock.advance(noticeRepushIntervalMsDefault);
        for (const event of ['accept', 'commit', 'rebooted'] as const) await report(p, { execution_id: pId, event });
        assert.equal(pushes(), afterNonce + 1, 'the repeated rebooted pushes the notice once (accept and commit do not)');
        assert.equal((await notice(p))!.health_nonce, nonce, 'the same nonce');
        await report(p, { execution_id: pId, event: 'rebooted' });
        assert.equal(pushes(), afterNonce + 1, 'not again within the interval: the notice itself makes the agent repeat its reports');
        h.clock.advance(noticeRepushIntervalMsDefault);
        await report(p, { execution_id: pId, event: 'rebooted' });
        assert.equal(pushes(), afterNonce + 2, 'again once the interval has passed');
        // The device got it now: its health check fails and it rolls back (a settled end either way).
        await report(p, { execution_id: pId, event: 'version_report', nonce, release_counter: 1, healthy: false });
        await report(p, { execution_id: pId, event: 'rollback_complete' });
        assert.equal(await stateOf(view.id, p), 'rolled_back');
        await report(p, { execution_id: pId, event: 'rebooted' });
        assert.equal(pushes(), afterNonce + 2, 'a settled execution is not pushed again');

        // q accepted, then the rollout was aborted in an emergency: q's cancel notice was lost and q carries on.
        await report(q, { execution_id: qId, event: 'accept' });
        await service.act(view.id, 'emergency_abort', 'ada');
        assert.equal(await stateOf(view.id, q), 'canceled');
        const afterCancel = announced.of(q);
        await report(q, { execution_id: qId, event: 'precheck_pass' });
        assert.equal(announced.of(q), afterCancel, 'a report that crossed the cancel pushes nothing');
        h.clock.advance(noticeRepushIntervalMsDefault);
        await report(q, { execution_id: qId, event: 'download_complete' });
        assert.equal(announced.of(q), afterCancel + 1, 'progress on a canceled execution later pushes the cancel again');
        assert.equal((await notice(q))?.cancel, true);
        await report(q, { execution_id: qId, event: 'canceled' });
        assert.equal(announced.of(q), afterCancel + 1, 'the device saying it stopped is not answered');
      } finally {
        announced.stop();
      }
    });

    it('a cancel after the commit that the device missed (the execution rolls back) is pushed again once a repeated report shows it, at most once per interval', async () => {
      const announced = countAnnouncements();
      try {
        const [r, s] = devices.slice(6) as [string, string];
        const { view, ids: [rId, sId] } = await startPair(6, '2.5.0', [r, s]);
        // s rolls back on its own (its health check fails): a rollback no cancel started, never pushed again.
        for (const event of ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot', 'rebooted'] as const) await report(s, { execution_id: sId, event });
        await report(s, { execution_id: sId, event: 'version_report', nonce: (await notice(s))!.health_nonce!, release_counter: 1, healthy: false });
        assert.equal(await stateOf(view.id, s), 'rolling_back');
        // r reboots into the new image; meanwhile an emergency abort cancels it, after its commit: r must roll back.
        for (const event of ['accept', 'precheck_pass', 'download_complete', 'stage', 'commit', 'reboot'] as const) await report(r, { execution_id: rId, event });
        await service.act(view.id, 'emergency_abort', 'ada');
        assert.equal(await stateOf(view.id, r), 'rolling_back', 'after commit a cancel means roll back');
        assert.equal((await notice(r))?.cancel, true);
        // That cancel notice was lost on r's live session: r comes back and waits for a health nonce that will not come.
        const afterCancel = announced.of(r);
        const afterFailure = announced.of(s);
        await report(r, { execution_id: rId, event: 'rebooted' });
        assert.equal(announced.of(r), afterCancel, 'a report that crossed the cancel pushes nothing');
        h.clock.advance(noticeRepushIntervalMsDefault - 1);
        for (const event of ['commit', 'reboot', 'rebooted'] as const) await report(r, { execution_id: rId, event });
        assert.equal(announced.of(r), afterCancel, 'nor one within the interval of the cancel');
        h.clock.advance(1);
        for (const event of ['commit', 'reboot', 'rebooted'] as const) await report(r, { execution_id: rId, event });
        assert.equal(announced.of(r), afterCancel + 1, 'r still waiting later: the cancel is pushed again, once for the whole repeat');
        assert.deepEqual([(await notice(r))?.execution_id, (await notice(r))?.cancel], [rId, true], 'the notice pushed again says cancel');
        // The notice makes the agent send its reports again at once: no second push within the interval.
        for (const event of ['accept', 'commit', 'rebooted'] as const) await report(r, { execution_id: rId, event });
        assert.equal(announced.of(r), afterCancel + 1, 'not again within the interval: the notice itself makes the agent repeat its reports');
        h.clock.advance(noticeRepushIntervalMsDefault);
        await report(r, { execution_id: rId, event: 'rebooted' });
        assert.equal(announced.of(r), afterCancel + 2, 'again once the interval has passed');
        // s's repeats in its own rollback, as late, push nothing.
        await report(s, { execution_id: sId, event: 'rebooted' });
        await report(s, { execution_id: sId, event: 'version_report', nonce: 'n'.repeat(43), release_counter: 1, healthy: false });
        assert.equal(announced.of(s), afterFailure, 'a rollback the device started itself is not pushed again');
        // r got it now: it rolls back, and the execution ends; its notice is removed, and a late repeat pushes nothing.
        await report(r, { execution_id: rId, event: 'rollback_complete' });
        await report(s, { execution_id: sId, event: 'rollback_complete' });
        assert.deepEqual([await stateOf(view.id, r), await stateOf(view.id, s)], ['rolled_back', 'rolled_back']);
        assert.equal(await notice(r), undefined, 'a finished execution\'s notice is removed');
        const ended = announced.of(r);
        h.clock.advance(noticeRepushIntervalMsDefault);
        await report(r, { execution_id: rId, event: 'rebooted' });
        assert.equal(announced.of(r), ended, 'a settled execution is not pushed again');
        const done = await service.view(view.id);
        assert.deepEqual([done.status, done.waves[0]!.terminal, done.waves[0]!.failed], ['aborted', 2, 2]);
      } finally {
        announced.stop();
      }
    });
  });
}
