/**
 * The agent's policy bundle guard and an OTA rollout's approvals (docs/ota.md "Rollouts that need
 * approvals"): a bundle that allows the update opcodes only with two approvals admits a kernel
 * command that carries the rollout's approvals and the device's Merkle path, and refuses, each
 * with its code, one that carries none, another device's path, a subject changed after the
 * approvals, too few approvals, an approval under a key the bundle does not know, or approvals of
 * another release than the command stages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { base64urlFromBytes } from '../core/crypto/bytes.js';
import { rolloutApprovalBlock, rolloutApprovalSubject, rolloutApprovalSubjectHash } from '../core/ota/rollout-approval.js';
import { startRollout } from '../core/ota/rollout-decisions.js';
import { signApproval } from '../core/protocol/approvals.js';
import type { RolloutApprovalBlock, SignedCommand } from '../core/protocol/messages/command.js';
import { parsePolicy } from '../core/protocol/policy.js';
import { cutPolicyBundle, signPolicyBundle } from '../core/protocol/policy-bundle.js';
import { signCommand } from '../core/protocol/signed-command.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { createMemoryPolicyBundleStore, PolicyBundleGuard } from './policy-bundle-guard.js';

const provider = createNodeEd25519Provider();
const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());
const cp = { kid: 'cp-1', seed: new Uint8Array(32).fill(5) };
const nowMs = 1_800_000_000_000;
const seeds = { ann: new Uint8Array(32).fill(41), abe: new Uint8Array(32).fill(42), eve: new Uint8Array(32).fill(43) };
type Name = keyof typeof seeds;
const artifact = { releaseId: 'rel-9', path: 'agent-3.0.0.bin', length: 4096, sha256: 'e'.repeat(64), sha512: 'f'.repeat(128), releaseCounter: 9, version: '3.0.0' };
const thresholds = { successThreshold: { succeededMin: 0, succeededPercentMin: 0, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 100 } };
const record = startRollout('ro-9', { waves: [{ selector: { deviceIds: ['dev-a', 'dev-b', 'dev-c'] }, ...thresholds }, { selector: { deviceIds: ['dev-d'] }, ...thresholds }], devicesPerMinuteMax: 5 }, ['dev-a', 'dev-b', 'dev-c', 'dev-d']);
const subject = rolloutApprovalSubject({ record, platform: 'linux-x64', target: artifact, expiresAtMs: nowMs + 3_600_000, issuer: cp.kid, requestedBy: 'olga' });

function block(deviceId: string, wave: number, names: Name[]): RolloutApprovalBlock {
  const hash = rolloutApprovalSubjectHash(subject, sha256);
  const approvals = names.map((name) => ({
    approver: name, kid: `${name}-k`, expires_at: subject.expires_at,
    signature: signApproval({ statement: { command_id: subject.id, command_sha256: hash, decision: 'approve', approver: name, kid: `${name}-k`, expires_at: subject.expires_at }, seed: seeds[name], provider }),
  }));
  return rolloutApprovalBlock({ subject, startedAtMs: nowMs, approvals, waveIndex: wave, deviceId, sha256 })!;
}

function stage(deviceId: string, rolloutApproval: RolloutApprovalBlock | undefined, args: Record<string, unknown> = { version: '3.0.0', sha256: 'e'.repeat(64), size_bytes: 4096 }): SignedCommand {
  return signCommand({
    command: {
      id: `ex-${deviceId}-stage`, device_id: deviceId, opcode: 'EXEC_STAGE_UPDATE', args, issued_at: nowMs + 1_000, expires_at: nowMs + 600_000, device_seq: 3, issuer: cp.kid,
      requester: { name: 'olga', role: 'operator' }, ...(rolloutApproval === undefined ? {} : { rollout_approval: rolloutApproval }),
    },
    kid: cp.kid, seed: cp.seed, provider,
  });
}

async function guardOf(deviceId: string): Promise<PolicyBundleGuard> {
  const guard = new PolicyBundleGuard({ deviceId, resolveKey: (kid) => (kid === cp.kid ? provider.publicKeyFromSeed(cp.seed) : undefined), provider, sha256, store: createMemoryPolicyBundleStore() });
  const policy = parsePolicy({
    version: 1,
    rules: [{ id: 'four-eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE'], devices: '*', conditions: { approval: { count: 2, roles: ['approver'] } } }],
  });
  // ann and abe are the bundle's approvers; eve's key is not in it.
  const approvers = (['ann', 'abe'] as const).map((name) => ({ approver: name, role: 'approver' as const, kid: `${name}-k`, public_key: base64urlFromBytes(provider.publicKeyFromSeed(seeds[name])) }));
  const signed = signPolicyBundle({ bundle: cutPolicyBundle({ policy, version: 1, device: { id: deviceId }, issuedAtMs: nowMs, approvers }), kid: cp.kid, seed: cp.seed, provider });
  assert.equal((await guard.accept(signed, nowMs)).status, 'accepted');
  return guard;
}

const codeOf = async (command: SignedCommand) => (await guardOf(command.device_id)).check(command, nowMs + 2_000)?.code;

test('an approved rollout\'s kernel command is admitted; the same command without its approvals is not', async () => {
  for (const [deviceId, wave] of [['dev-a', 0], ['dev-b', 0], ['dev-c', 0], ['dev-d', 1]] as const) assert.equal(await codeOf(stage(deviceId, block(deviceId, wave, ['ann', 'abe']))), undefined, deviceId);
  assert.equal(await codeOf(stage('dev-a', undefined)), 'POLICY_BUNDLE_DENIED');
});

test('refused with typed codes: another device\'s path, a tampered subject, too few approvals, an unknown approver key, another target', async () => {
  // dev-d carries dev-a's block (wave 0, position 0): it is not there.
  assert.equal(await codeOf(stage('dev-d', block('dev-a', 0, ['ann', 'abe']))), 'APPROVAL_DEVICE_PROOF_INVALID');
  assert.equal(await codeOf(stage('dev-b', block('dev-a', 0, ['ann', 'abe']))), 'APPROVAL_DEVICE_PROOF_INVALID');
  const approved = block('dev-a', 0, ['ann', 'abe']);
  assert.equal(await codeOf(stage('dev-a', { ...approved, subject: { ...approved.subject, devices_per_minute_max: 500 } })), 'APPROVAL_SIGNATURE_INVALID');
  assert.equal(await codeOf(stage('dev-a', block('dev-a', 0, ['ann']))), 'APPROVAL_INSUFFICIENT');
  assert.equal(await codeOf(stage('dev-a', block('dev-a', 0, ['ann', 'eve']))), 'APPROVAL_KEY_UNKNOWN');
  assert.equal(await codeOf(stage('dev-a', approved, { version: '3.0.0', sha256: '0'.repeat(64), size_bytes: 4096 })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(await codeOf(stage('dev-a', approved, { version: '3.0.1', sha256: 'e'.repeat(64), size_bytes: 4096 })), 'APPROVAL_STATEMENT_MISMATCH');
});
