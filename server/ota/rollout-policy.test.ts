import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { RolloutPlan } from '../../core/ota/rollout-decisions.js';
import { otaKeys } from '../bus-contract/ota-keys.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { OtaServices } from './ota-service.js';
import type { RepositoryKeys } from './repository-init.js';
import { readRollout, updateRolloutRecord } from './rollout-store.js';
import { RolloutService } from './rollouts.js';
import { makeOtaHarness, publishTestRelease } from './test-support.js';

/**
 * Rollouts and the command policy (docs/ota.md, "Rollouts and the command policy"), judged as
 * `sdc serve` wires it (the stored policy, the device's tags, the creator's role from the users
 * table), on sql.js and on MySQL when set; device reports are taken as verified here:
 * a device under a deny rule for EXEC_STAGE_UPDATE is never notified and its execution ends
 * `canceled` with the policy's code; a rollout every device of which is denied, or one that
 * needs approvals on a service without the approval flow, is not started; a policy revised mid-rollout decides the next wave; the
 * kernel commands name the creator and the role they were judged in.
 */

const artifact = new TextEncoder().encode('firmware 3.0.0 '.repeat(32));

/** The example rule of docs/policy.md: lab devices take no updates; admins and approvers may send everything else. */
const labDenyPolicy = {
  version: 1,
  rules: [
    { id: 'admins', effect: 'allow', roles: ['admin', 'approver'], opcodes: '*', devices: '*' },
    { id: 'no-updates-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_STAGE_UPDATE'], devices: { tags: ['lab'] } },
  ],
};

for (const pair of storePairs().pairs) {
  describe(`rollouts under the command policy (${pair.name})`, () => {
    let h: Harness & { ota: OtaServices; keys: RepositoryKeys | undefined };
    let service: RolloutService;
    const tag = Math.random().toString(16).slice(2, 8);
    const device = (name: string) => `rp-${tag}-${name}`;
    const releaseId = `relp-${tag}`;

    before(async () => {
      h = await makeOtaHarness(pair.sql, { kv: pair.kv });
      const nowMs = h.clock.nowMs();
      for (const name of ['lab1', 'lab2', 'shop1', 'shop2', 'shop3', 'shop4', 'shop5']) {
        await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device(name), nowMs]);
        if (name.startsWith('lab')) await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [device(name), 'lab']);
      }
      await h.cp.auth.users.add({ name: 'ada', role: 'admin', password: 'correct horse battery staple', nowMs });
      await h.cp.auth.users.add({ name: 'otto', role: 'operator', password: 'correct horse battery staple', nowMs });
      await publishTestRelease(h.ota, h.keys!, { id: releaseId, version: '3.0.0', artifact });
      await setPolicy(labDenyPolicy);
      service = new RolloutService({
        context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner,
        verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as MessageBody<'OTA_REPORT'>,
        policy: { current: () => h.cp.policy.current(), gather: (policy, base) => h.cp.commands.policyFacts.peek(policy, base),
          reserve: (policy, base) => h.cp.commands.policyFacts.reserve(policy, base), roleOf: (name) => h.cp.auth.users.roleOf(name) },
      });
    });
    after(async () => { await h?.close(); await pair.sql.cleanup(); });

    const setPolicy = async (document: unknown) => {
      const { revision } = await h.cp.policy.current();
      await h.cp.policy.set({ document, expectedRevision: revision, actor: 'user:ada' });
    };
    const notice = async (deviceId: string): Promise<MessageBody<'OTA_NOTICE'> | undefined> => {
      const text = await h.cp.context.kv.get(otaKeys.notice(deviceId));
      return text === null ? undefined : JSON.parse(text) as MessageBody<'OTA_NOTICE'>;
    };
    const oneWave = (ids: string[]): RolloutPlan['waves'][number] => ({
      selector: { deviceIds: ids }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 },
    });
    const start = (ids: string[], creator: string, waves: RolloutPlan['waves'] = [oneWave(ids)], on = service) => on.start({
      releaseId, platform: 'linux-x64', deviceIds: ids, plan: { waves, devicesPerMinuteMax: 100 },
    }, creator);

    it('a device under a deny rule for EXEC_STAGE_UPDATE is not notified: its execution ends canceled with the policy code, the others go on', async () => {
      const [lab, shop] = [device('lab1'), device('shop1')];
      const view = await start([lab, shop], 'ada');
      assert.equal(view.status, 'running');
      const byDevice = new Map(view.executions.map((e) => [e.device_id, e]));
      assert.equal(byDevice.get(shop)?.state, 'notified');
      const refused = byDevice.get(lab);
      assert.equal(refused?.state, 'canceled');
      assert.equal(refused?.last_error_code, 'COMMAND_POLICY_DENIED');
      assert.equal(refused?.policy_refusal?.rule_id, 'no-updates-lab');
      assert.equal(refused?.policy_refusal?.opcode, 'EXEC_STAGE_UPDATE');
      assert.equal(await notice(lab), undefined, 'the refused device is told nothing');
      // The notified device's kernel commands name the creator in the role they were judged in, for the device's bundle.
      const shopNotice = (await notice(shop))!;
      assert.deepEqual(shopNotice.kernel_commands.stage.requester, { name: 'ada', role: 'admin' });
      assert.deepEqual(shopNotice.kernel_commands.commit.requester, { name: 'ada', role: 'admin' });
      // A refusal counts as neither success nor failure.
      assert.deepEqual([view.waves[0]!.failed, view.waves[0]!.terminal], [0, 1]);
      const audited = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.execution.policy_denied' AND subject = ?", [`device:${lab}`]);
      assert.equal(audited.length, 1);
      assert.equal((JSON.parse(audited[0]!.payload_json) as { code: string }).code, 'COMMAND_POLICY_DENIED');
    });

    it('a rollout every device of which the policy denies is refused with OTA_ROLLOUT_POLICY_DENIED, nothing stored', async () => {
      const before = (await service.list(200)).length;
      // On the control plane's own service too, as createControlPlane wires it.
      for (const on of [service, h.ota.rollouts]) {
        await assert.rejects(start([device('lab1'), device('lab2')], 'ada', undefined, on),
          (error) => SdcError.is(error, 'OTA_ROLLOUT_POLICY_DENIED') && error.details?.['rule_id'] === 'no-updates-lab');
      }
      // The creator's role counts too: the policy lets operators send no update opcode.
      await assert.rejects(start([device('shop2')], 'otto'), (error) => SdcError.is(error, 'OTA_ROLLOUT_POLICY_DENIED'));
      // A creator who is no user gets nothing.
      await assert.rejects(start([device('shop2')], 'nobody'), (error) => SdcError.is(error, 'OTA_ROLLOUT_POLICY_DENIED'));
      assert.equal((await service.list(200)).length, before);
      assert.equal(await notice(device('shop2')), undefined);
      const audited = await h.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE kind = 'ota.rollout.denied'");
      assert.equal(Number(audited[0]!.n), 4);
    });

    it('on a service built without the rollout approval flow, a policy that allows the update only with approvals refuses the start with OTA_ROLLOUT_APPROVAL_REQUIRED (the control plane\'s own waits: rollout-approvals.test.ts)', async () => {
      await setPolicy({
        version: 1,
        rules: [
          ...labDenyPolicy.rules,
          { id: 'operators-update-with-approval', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
        ],
      });
      try {
        await assert.rejects(start([device('shop2')], 'otto'),
          (error) => SdcError.is(error, 'OTA_ROLLOUT_APPROVAL_REQUIRED') && error.details?.['rule_id'] === 'operators-update-with-approval');
        assert.equal(await notice(device('shop2')), undefined);
      } finally {
        await setPolicy(labDenyPolicy);
      }
    });

    // A rollout's STAGE and COMMIT count against the policy's rate limits as commands do (taken per
    // execution when it is created), so a "3 per hour" rule does not let one operator update a fleet.
    const addDevices = async (names: string[]) => {
      for (const name of names) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device(name), h.clock.nowMs()]);
      return names.map(device);
    };
    const withRateRule = async (id: string, opcodes: string[] | '*', count: number, body: () => Promise<void>) => {
      await setPolicy({
        version: 1,
        rules: [...labDenyPolicy.rules, { id, effect: 'deny', roles: '*', opcodes, devices: '*', conditions: { rateLimit: { per: ['actor'], count, windowMs: 3_600_000 } } }],
      });
      try {
        await body();
      } finally {
        await setPolicy(labDenyPolicy);
      }
    };
    const stageCount = async (actor: string, deviceId: string) => {
      const { policy } = await h.cp.policy.current();
      const request = await h.cp.commands.policyFacts.peek(policy, { actor: { id: actor, role: 'admin' }, opcode: 'EXEC_STAGE_UPDATE', device: { id: deviceId }, nowMs: h.clock.nowMs(), argsBytes: 10 });
      return Object.values(request.rateCounts ?? {});
    };

    it('executions take places in the rate limits: past the limit a device ends canceled with COMMAND_RATE_LIMITED, audited, and the places are the commands\' too', async () => {
      const creator = `rita-${tag}`;
      await h.cp.auth.users.add({ name: creator, role: 'admin', password: 'correct horse battery staple', nowMs: h.clock.nowMs() });
      const ids = await addDevices(['rl1', 'rl2', 'rl3', 'rl4', 'rl5']);
      await withRateRule('stage-3-per-hour', ['EXEC_STAGE_UPDATE'], 3, async () => {
        const view = await start(ids, creator);
        assert.equal(view.status, 'running');
        const states = ids.map((id) => view.executions.find((e) => e.device_id === id));
        assert.deepEqual(states.map((e) => e?.state), ['notified', 'notified', 'notified', 'canceled', 'canceled']);
        for (const refused of states.slice(3)) {
          assert.equal(refused?.last_error_code, 'COMMAND_RATE_LIMITED');
          assert.equal(refused?.policy_refusal?.rule_id, 'stage-3-per-hour');
          assert.equal(await notice(refused!.device_id), undefined, 'a device refused a place is told nothing');
          const audited = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.execution.policy_denied' AND subject = ?", [`device:${refused!.device_id}`]);
          assert.deepEqual(audited.map((row) => (JSON.parse(row.payload_json) as { code: string }).code), ['COMMAND_RATE_LIMITED']);
        }
        // The three places are taken in the counters commands use (the refused devices gave theirs back).
        assert.deepEqual(await stageCount(creator, ids[0]!), [3]);
      });
    });

    it('a start whose first devices cannot get a place is refused with COMMAND_RATE_LIMITED, audited, nothing stored, no place kept', async () => {
      const creator = `rosa-${tag}`;
      await h.cp.auth.users.add({ name: creator, role: 'admin', password: 'correct horse battery staple', nowMs: h.clock.nowMs() });
      const [one, two] = await addDevices(['rl6', 'rl7']);
      // Every command of the creator counts: one device's STAGE and COMMIT take two of the three places.
      await withRateRule('three-per-hour', '*', 3, async () => {
        await start([one!], creator);
        const before = (await service.list(200)).length;
        // Read at the start, one place is free for each command; taken, the STAGE gets the last and the COMMIT none.
        for (let attempt = 0; attempt < 2; attempt += 1) {
          await assert.rejects(start([two!], creator), (error) => SdcError.is(error, 'COMMAND_RATE_LIMITED') && error.details?.['rule_id'] === 'three-per-hour' && error.details?.['opcode'] === 'EXEC_COMMIT_UPDATE');
        }
        // The second attempt was refused the same way: the first gave its STAGE place back (else the start would see the limit reached).
        assert.deepEqual(await stageCount(creator, two!), [2]);
        assert.equal((await service.list(200)).length, before);
        assert.equal(await notice(two!), undefined);
        const audited = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.rollout.denied' AND actor = ?", [`user:${creator}`]);
        assert.deepEqual(audited.map((row) => (JSON.parse(row.payload_json) as { code: string }).code), ['COMMAND_RATE_LIMITED', 'COMMAND_RATE_LIMITED']);
      });
    });

    // Resuming past a safety stop (docs/ota.md "Resuming after a safety stop") needs a start's authority.
    const strictWave = (ids: string[]): RolloutPlan['waves'][number] => ({
      selector: { deviceIds: ids }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 0 },
    });
    /** A two-wave rollout by ada whose first wave's one device refuses the update: paused on its error threshold. */
    const pausedOnErrors = async (names: [string, string]) => {
      const [first, second] = await addDevices(names) as [string, string];
      const view = await start([first, second], 'ada', [strictWave([first]), strictWave([second])]);
      await service.onReport({
        device_id: first, gateway_id: 'gw-1', at_ms: h.clock.nowMs(),
        frame: JSON.stringify({ execution_id: (await notice(first))!.execution_id, event: 'refuse', report_id: `r-${names[0]}` }),
      });
      const paused = await service.view(view.id);
      assert.deepEqual([paused.status, paused.pause_reason], ['paused', 'error_threshold']);
      return { id: view.id, second };
    };
    const auditOf = async (kind: string, rolloutId: string) => (await h.db.query<{ actor: string; payload_json: string }>(
      'SELECT actor, payload_json FROM audit_log WHERE kind = ? AND subject = ? ORDER BY seq', [kind, `rollout:${rolloutId}`]))
      .map((row): Record<string, unknown> => ({ actor: row.actor, ...(JSON.parse(row.payload_json) as Record<string, unknown>) }));

    it('a rollout paused on its error threshold is resumed only with a start\'s authority: an operator the policy lets start none is refused OTA_ROLLOUT_POLICY_DENIED, audited; an admin resumes it', async () => {
      const { id, second } = await pausedOnErrors(['rs1', 'rs2']);
      await assert.rejects(service.act(id, 'resume', 'otto'), (error) => SdcError.is(error, 'OTA_ROLLOUT_POLICY_DENIED') && error.details?.['pauseReason'] === 'error_threshold');
      const still = await service.view(id);
      assert.deepEqual([still.status, still.pause_reason], ['paused', 'error_threshold'], 'nothing moved');
      assert.equal(await notice(second), undefined, 'the next wave is told nothing');
      const [denied] = await auditOf('ota.rollout.resume_denied', id);
      assert.equal(denied?.['actor'], 'user:otto');
      assert.equal(denied?.['code'], 'OTA_ROLLOUT_POLICY_DENIED');
      assert.deepEqual([denied?.['pause_reason'], denied?.['safety_stop'], denied?.['wave_stats']], ['error_threshold', 'error_threshold', { size: 1, executed: 1, failed: 1, succeeded: 0 }]);

      const resumed = await service.act(id, 'resume', 'ada');
      assert.equal(resumed.status, 'running');
      assert.equal(resumed.executions.find((e) => e.device_id === second)?.state, 'notified', 'the next wave goes on');
      const [audit] = await auditOf('ota.rollout.resume', id);
      assert.equal(audit?.['actor'], 'user:ada');
      assert.deepEqual([audit?.['pause_reason'], audit?.['safety_stop'], audit?.['error_threshold'], audit?.['wave_stats']],
        ['error_threshold', 'error_threshold', { executed_min: 1, failed_percent_max: 0 }, { size: 1, executed: 1, failed: 1, succeeded: 0 }]);
    });

    it('an operator\'s own pause is resumed by an operator as before, even one the policy lets start nothing (no threshold crossed)', async () => {
      const [first, second] = await addDevices(['rs3', 'rs4']) as [string, string];
      const view = await start([first, second], 'ada', [strictWave([first]), strictWave([second])]);
      assert.equal((await service.act(view.id, 'pause', 'otto')).pause_reason, 'operator');
      const resumed = await service.act(view.id, 'resume', 'otto');
      assert.equal(resumed.status, 'running');
      const [audit] = await auditOf('ota.rollout.resume', view.id);
      assert.deepEqual([audit?.['actor'], audit?.['pause_reason'], audit?.['safety_stop']], ['user:otto', 'operator', null]);
      // Paused by the operator while the error threshold is crossed: the resume would waive it, so it is a safety stop too.
      assert.equal((await service.act(view.id, 'pause', 'otto')).pause_reason, 'operator');
      await service.onReport({
        device_id: first, gateway_id: 'gw-1', at_ms: h.clock.nowMs(),
        frame: JSON.stringify({ execution_id: (await notice(first))!.execution_id, event: 'refuse', report_id: 'r-rs3' }),
      });
      assert.equal((await service.view(view.id)).pause_reason, 'operator');
      await assert.rejects(service.act(view.id, 'resume', 'otto'), (error) => SdcError.is(error, 'OTA_ROLLOUT_POLICY_DENIED'));
      assert.equal(await notice(second), undefined);
      assert.equal((await service.act(view.id, 'resume', 'ada')).status, 'running');
    });

    it('a resume after a safety stop that the policy allows only with approvals is refused OTA_ROLLOUT_APPROVAL_REQUIRED (approvals for a resume are not collected yet)', async () => {
      const { id, second } = await pausedOnErrors(['rs5', 'rs6']);
      await setPolicy({
        version: 1,
        rules: [
          // Admins may update only with an approver's approval now (the rollout started without: its first wave ran under the old policy).
          { id: 'admins-update-with-approval', effect: 'allow', roles: ['admin'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
          labDenyPolicy.rules[1]!,
        ],
      });
      try {
        await assert.rejects(service.act(id, 'resume', 'ada'),
          (error) => SdcError.is(error, 'OTA_ROLLOUT_APPROVAL_REQUIRED') && error.details?.['rule_id'] === 'admins-update-with-approval');
        assert.equal(await notice(second), undefined);
        assert.equal((await service.view(id)).status, 'paused');
      } finally {
        await setPolicy(labDenyPolicy);
      }
    });

    it('pausing and resuming below executedMin is no way around the safety stop: judged on the whole wave, an operator under an approvals rule is refused OTA_ROLLOUT_APPROVAL_REQUIRED, an admin resumes', async () => {
      // h12 review: four rounds of 9 failures, each followed by an operator's pause and resume, ended 36 of 36 failed with no safety stop.
      const ids = await addDevices(Array.from({ length: 20 }, (_, i) => `pr${i}`));
      await setPolicy({
        version: 1,
        rules: [
          labDenyPolicy.rules[0]!,
          { id: 'operators-update-with-approval', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
        ],
      });
      try {
        const wave: RolloutPlan['waves'][number] = {
          selector: { deviceIds: ids }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 10, failedPercentMax: 20 },
        };
        const { id } = await start(ids, 'ada', [wave]);
        const refuse = async (from: number, count: number) => {
          for (const deviceId of ids.slice(from, from + count)) {
            await service.onReport({
              device_id: deviceId, gateway_id: 'gw-1', at_ms: h.clock.nowMs(),
              frame: JSON.stringify({ execution_id: (await notice(deviceId))!.execution_id, event: 'refuse', report_id: `r-${deviceId}` }),
            });
          }
        };
        await refuse(0, 9);
        assert.equal((await service.view(id)).status, 'running', '9 executed: below executedMin');
        assert.equal((await service.act(id, 'pause', 'otto')).pause_reason, 'operator');
        assert.equal((await service.act(id, 'resume', 'otto')).status, 'running', 'nothing crossed: a plain resume');
        await refuse(9, 9);
        const view = await service.view(id);
        // The resume accepted nothing, so the wave's 10th failure paused it (before the fix the count started again at the resume).
        assert.deepEqual([view.status, view.pause_reason, view.waves[0]?.failed], ['paused', 'error_threshold', 18]);
        await assert.rejects(service.act(id, 'resume', 'otto'),
          (error) => SdcError.is(error, 'OTA_ROLLOUT_APPROVAL_REQUIRED') && error.details?.['rule_id'] === 'operators-update-with-approval');

        // A rollout paused by its operator whose 9 first failures a plain resume accepted (as before the fix): the 9 since are
        // below executedMin, the whole wave's 18 of 18 cross the threshold: still a safety stop.
        const stored = await readRollout(h.db, id);
        await updateRolloutRecord(h.db, id, { ...stored.record, pauseReason: 'operator', accepted: { failed: 9, executed: 9, successWaived: false } }, h.clock.nowMs());
        await assert.rejects(service.act(id, 'resume', 'otto'), (error) => SdcError.is(error, 'OTA_ROLLOUT_APPROVAL_REQUIRED') && error.details?.['pauseReason'] === 'error_threshold');
        assert.equal((await service.view(id)).status, 'paused', 'nothing moved');
        const denied = await auditOf('ota.rollout.resume_denied', id);
        assert.deepEqual(denied.map((entry) => [entry['actor'], entry['code'], entry['pause_reason'], entry['safety_stop'], entry['wave_stats']]), [
          ['user:otto', 'OTA_ROLLOUT_APPROVAL_REQUIRED', 'error_threshold', 'error_threshold', { size: 20, executed: 18, failed: 18, succeeded: 0 }],
          ['user:otto', 'OTA_ROLLOUT_APPROVAL_REQUIRED', 'operator', 'error_threshold', { size: 20, executed: 18, failed: 18, succeeded: 0 }],
        ]);

        const resumed = await service.act(id, 'resume', 'ada');
        assert.equal(resumed.status, 'running', 'an admin resumes it');
        const audits = await auditOf('ota.rollout.resume', id);
        assert.deepEqual(audits.map((entry) => [entry['actor'], entry['safety_stop']]), [['user:otto', null], ['user:ada', 'error_threshold']]);
      } finally {
        await setPolicy(labDenyPolicy);
      }
    });

    it('a policy revised mid-rollout decides the next wave', async () => {
      const [first, second] = [device('shop3'), device('shop4')];
      const view = await start([first, second], 'ada', [oneWave([first]), oneWave([second])]);
      const firstNotice = (await notice(first))!;
      // Now shop4 is a lab device: the rule applies to it from the next execution created on.
      await h.db.execute('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)', [second, 'lab']);
      // The first wave ends (the device refuses; the error threshold allows it) and the second starts.
      await service.onReport({
        device_id: first, gateway_id: 'gw-1', at_ms: h.clock.nowMs(),
        frame: JSON.stringify({ execution_id: firstNotice.execution_id, event: 'refuse', report_id: 'r-1' }),
      });
      const after = await service.view(view.id);
      const secondExecution = after.executions.find((e) => e.device_id === second);
      assert.equal(secondExecution?.state, 'canceled');
      assert.equal(secondExecution?.policy_refusal?.rule_id, 'no-updates-lab');
      assert.equal(await notice(second), undefined);
    });
  });
}
