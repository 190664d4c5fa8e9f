/**
 * A device checks an approved rollout's approvals itself (docs/ota.md "Rollouts that need
 * approvals", decision 0015 "Since 2026-12-06"): a control plane whose policy lets the rollout's
 * creator update only with two approvals holds the rollout until two approvers sign its subject;
 * once it starts, its STAGE and COMMIT carry the rollout's approvals and the device's Merkle path
 * in its wave, and the agent's policy bundle guard, holding a bundle with the same rule and the
 * approvers' keys, admits them: the real update runner stages the update. The same command without
 * the block, or with another device's place in the waves, is refused. A rollout stored waiting
 * with a subject of before (no version) is still approved the old way, and carries no block.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { rolloutApprovalSubjectHash, type RolloutApprovalSubject } from '../../core/ota/rollout-approval.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { signApproval } from '../../core/protocol/approvals.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { parsePolicy } from '../../core/protocol/policy.js';
import { cutPolicyBundle, signPolicyBundle } from '../../core/protocol/policy-bundle.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { createMemoryPolicyBundleStore, PolicyBundleGuard } from '../../agent/policy-bundle-guard.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { otaKeys } from '../../server/bus-contract/ota-keys.js';
import { SigningKeyStore } from '../../server/control-plane/signing-keys.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import { RolloutService } from '../../server/ota/rollouts.js';
import { rolloutPolicyOf } from '../../server/ota/test-support.js';
import { controlPlaneFetcher, openRolloutWorld, updateRunnerOn, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

const provider = createNodeEd25519Provider();
const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/** Operators update only with two approvals from approvers, on the control plane and in the device's bundle alike. */
const policyDocument = {
  version: 1,
  rules: [
    { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    {
      id: 'updates-four-eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE'], devices: '*',
      conditions: { approval: { count: 2, roles: ['approver'] } },
    },
  ],
};
const roles: Record<string, 'operator' | 'approver'> = { olga: 'operator', ann: 'approver', abe: 'approver' };
const approverSeeds = { ann: new Uint8Array(32).fill(31), abe: new Uint8Array(32).fill(32) };

describe('an approved rollout\'s kernel commands pass a device bundle that requires approvals', () => {
  let h: OtaHarness;
  let service: RolloutService;
  const kids: Record<string, string> = {};

  before(async () => {
    ({ h } = await openRolloutWorld(['rad-1', 'rad-2', 'rad-3', 'rad-4'], { id: 'rad-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(40)) }));
    const { revision } = await h.cp.policy.current();
    await h.cp.policy.set({ document: policyDocument, expectedRevision: revision, actor: 'user:test' });
    const signingKeys = new SigningKeyStore({ db: h.db, audit: h.cp.context.audit });
    for (const [name, role] of Object.entries(roles)) await h.cp.auth.users.add({ name, role, password: 'correct horse battery staple', nowMs: h.clock.nowMs() });
    for (const [name, seed] of Object.entries(approverSeeds)) {
      const { key } = await signingKeys.register({ userName: name, publicKeyText: base64urlFromBytes(provider.publicKeyFromSeed(seed)), nowMs: h.clock.nowMs(), proof: 'password' });
      kids[name] = key.kid;
    }
    service = new RolloutService({
      context: h.cp.context, releases: h.ota.releases, signer: h.materials.commandSigner, policy: rolloutPolicyOf(h.cp, (name) => roles[name]),
      verifyReportFrame: async (_deviceId, frame) => JSON.parse(frame) as Report, approvals: { signingKeys },
    });
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  /** The device's guard, holding the policy above with the approvers' keys, signed with the control plane's command key. */
  const guardFor = async (deviceId: string) => {
    const signer = h.materials.commandSigner;
    const guard = new PolicyBundleGuard({ deviceId, resolveKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), provider, sha256, store: createMemoryPolicyBundleStore() });
    const bundle = cutPolicyBundle({
      policy: parsePolicy(policyDocument), version: 1, device: { id: deviceId }, issuedAtMs: h.clock.nowMs(),
      approvers: Object.entries(approverSeeds).map(([name, seed]) => ({ approver: name, role: 'approver' as const, kid: kids[name]!, public_key: base64urlFromBytes(provider.publicKeyFromSeed(seed)) })),
    });
    assert.equal((await guard.accept(signPolicyBundle({ bundle, kid: signer.kid, seed: signer.seed, provider }), h.clock.nowMs())).status, 'accepted');
    return guard;
  };
  const resign = (command: SignedCommand, change: Partial<SignedCommand>): SignedCommand => {
    const { sig: _sig, rollout_approval: _block, ...rest } = command;
    const block = 'rollout_approval' in change ? change.rollout_approval : command.rollout_approval;
    const { rollout_approval: _changed, ...others } = change;
    return signCommand({ command: { ...rest, ...others, ...(block === undefined ? {} : { rollout_approval: block }) }, kid: h.materials.commandSigner.kid, seed: h.materials.commandSigner.seed, provider });
  };

  const approveAll = async (rolloutId: string, subjectSha256: string, expiresAtMs: number): Promise<boolean> => {
    let started = false;
    for (const name of ['ann', 'abe'] as const) {
      const signature = signApproval({
        statement: { command_id: rolloutId, command_sha256: subjectSha256, decision: 'approve', approver: name, kid: kids[name]!, expires_at: expiresAtMs },
        seed: approverSeeds[name], provider,
      });
      ({ started } = await service.decide({ actor: { name, role: 'approver' }, rolloutId, decision: 'approve', subjectSha256, kid: kids[name]!, expiresAtMs, signature }));
    }
    return started;
  };

  it('a rollout that started waiting before subjects had a version is approved the old way; its commands carry no block and the bundle refuses them', async () => {
    const waiting = await service.start({
      releaseId: 'rad-rel', platform: 'linux-x64', deviceIds: ['rad-4'],
      plan: { waves: [{ selector: { percent: 100 }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } }], devicesPerMinuteMax: 10 },
    }, 'olga');
    // As stored by a control plane before 2026-12-06: no `v`, the whole subject's hash.
    const [row] = await h.db.query<{ approval_json: string }>('SELECT approval_json FROM ota_rollouts WHERE id = ?', [waiting.id]);
    const stored = JSON.parse(row!.approval_json) as { subject: RolloutApprovalSubject; subject_sha256: string };
    const { v: _v, ...old } = stored.subject;
    const oldSha256 = rolloutApprovalSubjectHash(old, sha256);
    assert.notEqual(oldSha256, stored.subject_sha256);
    await h.db.execute('UPDATE ota_rollouts SET approval_json = ? WHERE id = ?', [canonicalize({ ...stored, subject: old, subject_sha256: oldSha256 } as unknown as JsonObject), waiting.id]);
    assert.equal((await service.view(waiting.id)).approval?.subject_sha256, oldSha256);
    assert.equal(await approveAll(waiting.id, oldSha256, old.expires_at), true, 'approved under the hash it was asked with');
    const { stage } = (await noticeOf(h, 'rad-4')).kernel_commands;
    assert.equal(stage.rollout_approval, undefined);
    assert.equal((await guardFor('rad-4')).check(stage, h.clock.nowMs())?.code, 'POLICY_BUNDLE_DENIED');
  });

  it('waits for two approvals, then its STAGE and COMMIT (not its ROLLBACK) carry them and the device admits them and stages; stripped or moved, they are refused', async () => {
    const waiting = await service.start({
      releaseId: 'rad-rel', platform: 'linux-x64', deviceIds: ['rad-1', 'rad-2', 'rad-3'],
      plan: {
        waves: [
          { selector: { deviceIds: ['rad-2', 'rad-1'] }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } },
          { selector: { deviceIds: ['rad-3'] }, successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } },
        ],
        devicesPerMinuteMax: 10,
      },
    }, 'olga');
    assert.equal(waiting.status, 'pending_approval');
    const subject = waiting.approval!.subject;
    assert.equal(subject.v, 2, 'new rollouts get a version-2 subject');
    const subjectSha256 = rolloutApprovalSubjectHash(subject, sha256);
    assert.equal(subjectSha256, waiting.approval!.subject_sha256);
    assert.equal(await approveAll(waiting.id, subjectSha256, subject.expires_at), true);

    const notice = await noticeOf(h, 'rad-1');
    const { stage, commit, rollback } = notice.kernel_commands;
    assert.equal(rollback.rollout_approval, undefined, 'the rollback is not judged and carries none');
    for (const command of [stage, commit]) {
      assert.equal(command.rollout_approval?.subject.id, waiting.id);
      assert.deepEqual(command.rollout_approval?.approvals.map((a) => a.approver), ['ann', 'abe']);
      assert.equal(command.rollout_approval?.wave.index, 0);
    }
    const guard = await guardFor('rad-1');
    assert.equal(guard.check(stage, h.clock.nowMs()), undefined);
    assert.equal(guard.check(commit, h.clock.nowMs()), undefined);
    // Without the block, the bundle's rule refuses it; rad-1's path given to rad-3 (in wave 1) does not place it.
    assert.equal(guard.check(resign(stage, { rollout_approval: undefined }), h.clock.nowMs())?.code, 'POLICY_BUNDLE_DENIED');
    assert.equal((await guardFor('rad-3')).check(resign(stage, { device_id: 'rad-3' }), h.clock.nowMs())?.code, 'APPROVAL_DEVICE_PROOF_INVALID');

    // The real update runner, with this guard as its command check, takes the notice and stages.
    const calls: string[] = [];
    const sent: Report[] = [];
    const runner = updateRunnerOn(h, controlPlaneFetcher(() => h), sent, {
      deviceId: 'rad-1', kernel: countingKernel(calls), checkCommand: (command) => guard.check(command, h.clock.nowMs()),
    });
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(calls[0], 'stage', JSON.stringify(sent.map((r) => [r.event, r.error?.code])));
    assert.equal(sent.some((r) => r.error !== undefined), false, JSON.stringify(sent.map((r) => [r.event, r.error?.code])));
  });
});

async function noticeOf(h: OtaHarness, deviceId: string): Promise<Notice> {
  return JSON.parse((await h.cp.context.kv.get(otaKeys.notice(deviceId)))!) as Notice;
}

/** A kernel that only records the update calls. */
function countingKernel(calls: string[]): KernelBridge {
  return {
    backend: 'mock',
    stageUpdate: async (args: { version: string; sha256: Uint8Array }) => { calls.push('stage'); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
    commitUpdate: async (version: string) => { calls.push('commit'); return { currentVersion: version, previousVersion: '1.0.0' }; },
    rollbackUpdate: async () => { calls.push('rollback'); return { currentVersion: '1.0.0', previousVersion: '' }; },
    getStatus: async () => ({ currentVersion: '1.0.0', previousVersion: '', stagedVersion: '' }) as KernelServiceStatus,
  } as unknown as KernelBridge;
}
