import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base64urlFromBytes, hexFromBytes } from '../crypto/bytes.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { nobleSha256 } from '../crypto/sha256-noble.js';
import { signApproval } from '../protocol/approvals.js';
import { canonicalBytes } from '../protocol/canonical-json.js';
import type { JsonObject } from '../protocol/json-value.js';
import type { SignedCommand } from '../protocol/messages/command.js';
import { Value } from '@sinclair/typebox/value';
import { SignedCommandSchema } from '../protocol/messages/command.js';
import { parsePolicy } from '../protocol/policy.js';
import { commandBundleRefusal, cutPolicyBundle, signPolicyBundle, verifyPolicyBundle } from '../protocol/policy-bundle.js';
import { commandSigningInput, signCommand, type UnsignedCommand } from '../protocol/signed-command.js';
import { deviceMerkleLimits } from './device-merkle.js';
import {
  reducedRolloutSubject, rolloutApprovalBlock, rolloutApprovalSubject, rolloutApprovalSubjectHash, verifyRolloutCommandApprovals, type RolloutApprovalSubject,
} from './rollout-approval.js';
import { rolloutLimits, startRollout, type RolloutPlan } from './rollout-decisions.js';

const provider = createNobleEd25519Provider();
const sha256 = nobleSha256;
const cpSeed = new Uint8Array(32).fill(7);
const startedAt = 1_764_000_000_000;
const approverSeeds = { alice: new Uint8Array(32).fill(21), bob: new Uint8Array(32).fill(22), carol: new Uint8Array(32).fill(23) };
type Approver = keyof typeof approverSeeds;
const target = { releaseId: 'rel-1', path: 'agent-2.4.0.bin', length: 1_048_576, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128), releaseCounter: 42, version: '2.4.0' };
const wave = (deviceIds: string[]) => ({ selector: { deviceIds }, successThreshold: { succeededMin: 1, succeededPercentMin: 50, soakMs: 0 }, errorThreshold: { executedMin: 1, failedPercentMax: 50 } });
const plan: RolloutPlan = { waves: [wave(['lab-3', 'lab-1']), wave(['lab-2', 'lab-5', 'lab-4'])], devicesPerMinuteMax: 10 };
const record = startRollout('ro-1', plan, ['lab-1', 'lab-2', 'lab-3', 'lab-4', 'lab-5']);

function subjectOf(version: 1 | 2 = 2): RolloutApprovalSubject {
  return rolloutApprovalSubject({ record, platform: 'linux-x64', target, expiresAtMs: startedAt + 3_600_000, issuer: 'cp-1', requestedBy: 'olga', version });
}

function approvalsOf(subject: RolloutApprovalSubject, names: Approver[], options: { breakSignatureOf?: Approver; expiresAt?: number } = {}) {
  const hash = rolloutApprovalSubjectHash(subject, sha256);
  return names.map((name) => {
    const expires_at = options.expiresAt ?? subject.expires_at;
    let signature = signApproval({ statement: { command_id: subject.id, command_sha256: hash, decision: 'approve', approver: name, kid: `${name}-1`, expires_at }, seed: approverSeeds[name], provider });
    if (options.breakSignatureOf === name) signature = `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    return { approver: name, kid: `${name}-1`, expires_at, signature };
  });
}

const stageArgs = { version: '2.4.0', sha256: 'a'.repeat(64), size_bytes: 1_048_576 };

/** A kernel command of the rollout as the control plane signs it (rollouts.ts #kernelCommand), with or without the block. */
function kernelCommand(options: {
  deviceId?: string; waveIndex?: number; approvers?: Approver[]; opcode?: 'EXEC_STAGE_UPDATE' | 'EXEC_COMMIT_UPDATE' | 'EXEC_ROLLBACK_UPDATE'; args?: Record<string, unknown>;
  edit?: (block: NonNullable<SignedCommand['rollout_approval']>) => NonNullable<SignedCommand['rollout_approval']>; breakSignatureOf?: Approver;
} = {}): SignedCommand {
  const deviceId = options.deviceId ?? 'lab-4';
  const subject = subjectOf();
  const block = rolloutApprovalBlock({
    subject, startedAtMs: startedAt, approvals: approvalsOf(subject, options.approvers ?? ['alice', 'bob'], options.breakSignatureOf === undefined ? {} : { breakSignatureOf: options.breakSignatureOf }),
    waveIndex: options.waveIndex ?? 1, deviceId: options.deviceId === 'stranger' ? 'lab-4' : deviceId, sha256,
  });
  const command: UnsignedCommand = {
    id: `ex-1-stage`, device_id: deviceId, opcode: options.opcode ?? 'EXEC_STAGE_UPDATE', args: options.args ?? stageArgs,
    issued_at: startedAt + 5_000, expires_at: startedAt + 3_600_000, device_seq: 7, issuer: 'cp-1', requester: { name: 'olga', role: 'operator' },
    ...(options.approvers?.length === 0 || block === undefined ? {} : { rollout_approval: options.edit === undefined ? block : options.edit(block) }),
  };
  return signCommand({ command, kid: 'cp-1', seed: cpSeed, provider });
}

const policy = parsePolicy({
  version: 1, revision: 3,
  rules: [{ id: 'updates-with-2', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE'], devices: '*', conditions: { approval: { count: 2, roles: ['approver'] } } }],
});
const approverEntries = (['alice', 'bob'] as const).map((name) => ({ approver: name, role: 'approver' as const, kid: `${name}-1`, public_key: base64urlFromBytes(provider.publicKeyFromSeed(approverSeeds[name])) }));

function bundleFor(deviceId: string) {
  const bundle = cutPolicyBundle({ policy, version: 3, device: { id: deviceId }, issuedAtMs: startedAt, approvers: approverEntries });
  const signed = signPolicyBundle({ bundle, kid: 'cp-1', seed: cpSeed, provider });
  return verifyPolicyBundle({ signed, deviceId, resolveKey: (kid) => (kid === 'cp-1' ? provider.publicKeyFromSeed(cpSeed) : undefined), provider, nowMs: startedAt }).held;
}

const ports = { nowMs: startedAt + 6_000, provider, sha256 };
const refusalOf = (command: SignedCommand, deviceId = command.device_id) => commandBundleRefusal(bundleFor(deviceId), command, ports)?.code;

test('a version-1 subject hashes whole, as before; a version-2 subject hashes its reduced form, the device lists as Merkle roots', () => {
  const old = subjectOf(1);
  assert.equal('v' in old, false);
  assert.equal(rolloutApprovalSubjectHash(old, sha256), hexFromBytes(sha256(canonicalBytes(old as unknown as JsonObject))));
  const subject = subjectOf(2);
  const reduced = reducedRolloutSubject(subject, sha256);
  assert.equal(reduced.waves.length, 2);
  assert.ok(reduced.waves.every((digest) => /^[0-9a-f]{64}$/.test(digest)));
  assert.equal(rolloutApprovalSubjectHash(subject, sha256), hexFromBytes(sha256(canonicalBytes(reduced as unknown as JsonObject))));
  // The order of a wave's devices does not matter; its members, its thresholds and every other field do.
  const reordered = { ...subject, waves: subject.waves.map((w) => ({ ...w, devices: [...w.devices].reverse() })) };
  assert.equal(rolloutApprovalSubjectHash(reordered, sha256), rolloutApprovalSubjectHash(subject, sha256));
  const moved = { ...subject, waves: [{ ...subject.waves[0]!, devices: ['lab-1'] }, { ...subject.waves[1]!, devices: [...subject.waves[1]!.devices, 'lab-3'] }] };
  assert.notEqual(rolloutApprovalSubjectHash(moved, sha256), rolloutApprovalSubjectHash(subject, sha256));
  const stricter = { ...subject, waves: [subject.waves[0]!, { ...subject.waves[1]!, error_threshold: { executed_min: 1, failed_percent_max: 49 } }] };
  assert.notEqual(rolloutApprovalSubjectHash(stricter, sha256), rolloutApprovalSubjectHash(subject, sha256));
  assert.notEqual(rolloutApprovalSubjectHash({ ...subject, devices_per_minute_max: 11 }, sha256), rolloutApprovalSubjectHash(subject, sha256));
});

test('an approved rollout\'s kernel commands pass a bundle that requires approvals for the update opcodes; without the block they are denied', () => {
  for (const deviceId of ['lab-2', 'lab-4', 'lab-5']) assert.equal(refusalOf(kernelCommand({ deviceId })), undefined, deviceId);
  for (const deviceId of ['lab-1', 'lab-3']) assert.equal(refusalOf(kernelCommand({ deviceId, waveIndex: 0 })), undefined, deviceId);
  assert.equal(refusalOf(kernelCommand({ opcode: 'EXEC_COMMIT_UPDATE', args: { version: '2.4.0', sha256: 'a'.repeat(64), watchdog_ms: 900_000 } })), undefined);
  assert.equal(refusalOf(kernelCommand({ opcode: 'EXEC_ROLLBACK_UPDATE', args: {} })), undefined);
  assert.equal(refusalOf(kernelCommand({ approvers: [] })), 'POLICY_BUNDLE_DENIED');
});

test('refusals: another device\'s path, another wave, a tampered subject, too few approvals, an unknown key, another target, another issuer', () => {
  // lab-9 holds lab-4's path: not in the wave. lab-4's path given for wave 0: not there either.
  assert.equal(refusalOf(kernelCommand({ deviceId: 'stranger' }), 'stranger'), 'APPROVAL_DEVICE_PROOF_INVALID');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, wave: { ...b.wave, index: 0 } }) })), 'APPROVAL_DEVICE_PROOF_INVALID');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, wave: { ...b.wave, position: (b.wave.position + 1) % 3 } }) })), 'APPROVAL_DEVICE_PROOF_INVALID');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, wave: { ...b.wave, index: 5 } }) })), 'APPROVAL_DEVICE_PROOF_INVALID');
  // A count or thresholds other than the approved ones change the wave's digest.
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, wave: { ...b.wave, devices_count: 4 } }) })), 'APPROVAL_DEVICE_PROOF_INVALID');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, wave: { ...b.wave, error_threshold: { executed_min: 1, failed_percent_max: 100 } } }) })), 'APPROVAL_DEVICE_PROOF_INVALID');
  // A subject changed after the approvals: the signatures are over another hash.
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, subject: { ...b.subject, devices_per_minute_max: 10_000 } }) })), 'APPROVAL_SIGNATURE_INVALID');
  assert.equal(refusalOf(kernelCommand({ breakSignatureOf: 'bob' })), 'APPROVAL_SIGNATURE_INVALID');
  assert.equal(refusalOf(kernelCommand({ approvers: ['alice'] })), 'APPROVAL_INSUFFICIENT');
  assert.equal(refusalOf(kernelCommand({ approvers: ['alice', 'carol'] })), 'APPROVAL_KEY_UNKNOWN');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, approvals: [b.approvals[0]!, b.approvals[0]!] }) })), 'APPROVAL_DUPLICATE');
  // The approvals must have held at the start, and the start precede the command.
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, started_at: b.subject.expires_at }) })), 'APPROVAL_STATEMENT_MISMATCH');
  // Another release's digest, size or version; an opcode that is not an update.
  assert.equal(refusalOf(kernelCommand({ args: { ...stageArgs, sha256: 'c'.repeat(64) } })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(refusalOf(kernelCommand({ args: { ...stageArgs, size_bytes: 1 } })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(refusalOf(kernelCommand({ opcode: 'EXEC_COMMIT_UPDATE', args: { version: '2.4.1', sha256: 'a'.repeat(64) } })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, subject: { ...b.subject, issuer: 'cp-2' } }) })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(refusalOf(kernelCommand({ edit: (b) => ({ ...b, subject: { ...b.subject, requested_by: 'alice' } }) })), 'POLICY_BUNDLE_DENIED');
});

test('the approvals are checked at the rollout\'s start: an approval that expired after it still counts for a later wave', () => {
  const subject = subjectOf();
  const block = rolloutApprovalBlock({ subject, startedAtMs: startedAt, approvals: approvalsOf(subject, ['alice', 'bob']), waveIndex: 1, deviceId: 'lab-2', sha256 })!;
  const late = signCommand({
    command: { id: 'ex-9-stage', device_id: 'lab-2', opcode: 'EXEC_STAGE_UPDATE', args: stageArgs, issued_at: subject.expires_at + 86_400_000, expires_at: subject.expires_at + 90_000_000, device_seq: 9, issuer: 'cp-1', rollout_approval: block },
    kid: 'cp-1', seed: cpSeed, provider,
  });
  const verdict = verifyRolloutCommandApprovals({ command: late, condition: { count: 2, roles: ['approver'] }, resolveApproverKey: (kid) => bundleFor('lab-2').approverKeys.get(kid), provider, sha256 });
  assert.deepEqual(verdict, { valid: true, approvers: ['alice', 'bob'] });
});

test('review h12: a commit without the digest (or with another) is not the approved one', () => {
  // The control plane always names the digest; a commit bound by version only is another command.
  assert.equal(refusalOf(kernelCommand({ opcode: 'EXEC_COMMIT_UPDATE', args: { version: '2.4.0' } })), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(refusalOf(kernelCommand({ opcode: 'EXEC_COMMIT_UPDATE', args: { version: '2.4.0', sha256: 'c'.repeat(64) } })), 'APPROVAL_STATEMENT_MISMATCH');
});

const verify = (command: SignedCommand, count = 2) => verifyRolloutCommandApprovals({
  command, condition: { count, roles: ['approver'] }, resolveApproverKey: (kid) => bundleFor(command.device_id).approverKeys.get(kid), provider, sha256,
});

test('review h12: approvals that live past the subject\'s expiry still count only until it: a start at or after it is refused', () => {
  const subject = subjectOf();
  const longLived = approvalsOf(subject, ['alice', 'bob'], { expiresAt: subject.expires_at + 86_400_000 });
  const startedLate = (startedAtMs: number) => signCommand({
    command: {
      id: 'ex-8-stage', device_id: 'lab-2', opcode: 'EXEC_STAGE_UPDATE', args: stageArgs, issued_at: subject.expires_at + 60_000, expires_at: subject.expires_at + 3_600_000, device_seq: 8, issuer: 'cp-1',
      rollout_approval: rolloutApprovalBlock({ subject, startedAtMs, approvals: longLived, waveIndex: 1, deviceId: 'lab-2', sha256 })!,
    },
    kid: 'cp-1', seed: cpSeed, provider,
  });
  assert.deepEqual(verify(startedLate(subject.expires_at - 1)), { valid: true, approvers: ['alice', 'bob'] });
  for (const late of [subject.expires_at, subject.expires_at + 1_000]) {
    const verdict = verify(startedLate(late));
    assert.equal(verdict.valid, false);
    assert.equal(verdict.valid ? undefined : verdict.code, 'APPROVAL_EXPIRED');
  }
});

test('review h12: an approval whose key the device\'s bundle does not hold is left uncounted; a bad signature by a known key still refuses', () => {
  // carol's key is not in this device's bundle (removed or rotated since the start): alice and bob are still two.
  assert.deepEqual(verify(kernelCommand({ approvers: ['carol', 'alice', 'bob'] })), { valid: true, approvers: ['alice', 'bob'] });
  assert.equal(refusalOf(kernelCommand({ approvers: ['carol', 'alice', 'bob'] })), undefined);
  // Short of the count once she is left out: her refusal names why.
  const short = verify(kernelCommand({ approvers: ['alice', 'carol'] }));
  assert.equal(short.valid ? undefined : short.code, 'APPROVAL_KEY_UNKNOWN');
  assert.equal(verify(kernelCommand({ approvers: ['alice', 'carol'] }), 1).valid, true);
  // A signature by a key the device knows that does not verify is tampering: refused whatever else the block holds.
  assert.equal(refusalOf(kernelCommand({ approvers: ['alice', 'bob', 'carol'], breakSignatureOf: 'bob' })), 'APPROVAL_SIGNATURE_INVALID');
});

test('a version-1 subject, a device outside the waves or no approvals give no block; a command without one signs the bytes it always did', () => {
  const approvals = approvalsOf(subjectOf(), ['alice', 'bob']);
  assert.equal(rolloutApprovalBlock({ subject: subjectOf(1), startedAtMs: startedAt, approvals, waveIndex: 0, deviceId: 'lab-1', sha256 }), undefined);
  assert.equal(rolloutApprovalBlock({ subject: subjectOf(), startedAtMs: startedAt, approvals, waveIndex: 0, deviceId: 'lab-2', sha256 }), undefined);
  assert.equal(rolloutApprovalBlock({ subject: subjectOf(), startedAtMs: startedAt, approvals: [], waveIndex: 0, deviceId: 'lab-1', sha256 }), undefined);
  const plain = kernelCommand({ approvers: [] });
  const { sig: _sig, ...unsigned } = plain;
  const body = JSON.parse(new TextDecoder().decode(commandSigningInput(unsigned)).slice('sdc-command-v1\n'.length)) as Record<string, unknown>;
  // `requester` is signed when present (since 2026-12-06, core/protocol/signed-command.ts); no rollout block here.
  assert.deepEqual(Object.keys(body).sort(), ['args', 'device_id', 'device_seq', 'expires_at', 'id', 'issued_at', 'issuer', 'opcode', 'requester']);
});

test('the largest block (64 waves, a 20-hash path, 16 approvals of the longest names) keeps the signed command under the kernel\'s 16 KiB', () => {
  const name = (i: number) => `${'a'.repeat(125)}${String(i).padStart(3, '0')}`;
  const block: NonNullable<SignedCommand['rollout_approval']> = {
    subject: {
      kind: 'ota_rollout', v: 2, id: 'r'.repeat(64), release_id: 'x'.repeat(128), platform: 'p'.repeat(64),
      target: { path: 'f'.repeat(1024), length: Number.MAX_SAFE_INTEGER, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128), release_counter: Number.MAX_SAFE_INTEGER, version: 'v'.repeat(31) },
      waves: Array.from({ length: rolloutLimits.wavesMax }, () => 'c'.repeat(64)), devices_per_minute_max: rolloutLimits.devicesPerMinuteMax,
      expires_at: Number.MAX_SAFE_INTEGER, issuer: 'k'.repeat(128), requested_by: 'u'.repeat(128),
    },
    started_at: Number.MAX_SAFE_INTEGER,
    approvals: Array.from({ length: 16 }, (_, i) => ({ approver: name(i), kid: name(i), decision: 'approve' as const, expires_at: Number.MAX_SAFE_INTEGER, sig: 'S'.repeat(86) })),
    wave: {
      index: 63, devices_count: deviceMerkleLimits.membersMax, position: deviceMerkleLimits.membersMax - 1, siblings: Array.from({ length: deviceMerkleLimits.pathHashesMax }, () => 'd'.repeat(64)),
      success_threshold: { succeeded_min: Number.MAX_SAFE_INTEGER, succeeded_percent_min: 100, soak_ms: Number.MAX_SAFE_INTEGER }, error_threshold: { executed_min: Number.MAX_SAFE_INTEGER, failed_percent_max: 100 },
    },
  };
  const command = signCommand({
    command: {
      id: 'e'.repeat(64), device_id: 'd'.repeat(64), opcode: 'EXEC_COMMIT_UPDATE', args: { version: 'v'.repeat(31), sha256: 'a'.repeat(64), watchdog_ms: 86_400_000 },
      issued_at: Number.MAX_SAFE_INTEGER - 10, expires_at: Number.MAX_SAFE_INTEGER, device_seq: Number.MAX_SAFE_INTEGER, issuer: 'k'.repeat(128),
      requester: { name: 'u'.repeat(128), role: 'operator' }, rollout_approval: block,
    },
    kid: 'cp-1', seed: cpSeed, provider,
  });
  assert.ok(Value.Check(SignedCommandSchema, command), 'the largest block is within the schema');
  const { sig: _sig, ...unsigned } = command;
  const bytes = commandSigningInput(unsigned).length;
  assert.ok(bytes <= 16_384, `${bytes} signed bytes`);
  // The schema's bounds are the limits': one wave more, or one hash more, is refused.
  assert.equal(Value.Check(SignedCommandSchema, { ...command, rollout_approval: { ...block, subject: { ...block.subject, waves: [...block.subject.waves, 'c'.repeat(64)] } } }), false);
  assert.equal(Value.Check(SignedCommandSchema, { ...command, rollout_approval: { ...block, wave: { ...block.wave, siblings: [...block.wave.siblings, 'd'.repeat(64)] } } }), false);
});
