import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { base64urlFromBytes, bytesFromBase64url } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { rolloutApprovalSubjectHash, type RolloutApprovalSubject } from '../core/ota/rollout-approval.js';
import { approvalSigningInput, approvalSubjectHash, type ApprovalSubject } from '../core/protocol/approvals.js';
import { ApiError } from './api.js';
import {
  approvalKeyFromSeed, approvalRequestBody, checkedRolloutSubjectHash, parseApprovalKey, rolloutApprovalRequestBody, signingKeyRegistrationBody,
  type PendingCommand, type PendingRollout, type RolloutApprovalView,
} from './approval-signing.js';

const provider = createNobleEd25519Provider();
const seed = new Uint8Array(32).map((_, i) => i + 1);
const subject: ApprovalSubject = { id: 'c_1', device_id: 'dev-1', opcode: 'EXEC_LOCK_SCREEN', args: { b: 2, a: 1 }, expires_at: 9_000, issuer: 'cp', requested_by: 'olga' };

function pending(overrides: Partial<PendingCommand> = {}): PendingCommand {
  return {
    id: 'c_1', device_id: 'dev-1', opcode: 'EXEC_LOCK_SCREEN', args: { a: 1, b: 2 }, state: 'pending_approval', expires_at_ms: 9_000, created_by: 'olga',
    approval: { command_sha256: approvalSubjectHash(subject, nobleSha256), subject, count: 1, roles: ['approver'], rule_id: 'r1' }, ...overrides,
  };
}

function refusedWith(code: string) {
  return (error: unknown) => error instanceof ApiError && error.code === code;
}

describe('approvals signed in the browser', () => {
  it('signs the statement the server checks, valid until the command expires, the reason signed with it', () => {
    const key = approvalKeyFromSeed(seed);
    const body = approvalRequestBody({ command: pending(), decision: 'reject', approver: 'ann', kid: 'uk-1', key, reason: 'not today' });
    assert.deepEqual({ ...body, signature: undefined }, { command_sha256: approvalSubjectHash(subject, nobleSha256), kid: 'uk-1', expires_at_ms: 9_000, signature: undefined, reason: 'not today' });
    const statement = { command_id: 'c_1', command_sha256: String(body.command_sha256), decision: 'reject' as const, approver: 'ann', kid: 'uk-1', expires_at: 9_000, reason: 'not today' };
    const signature = bytesFromBase64url(String(body.signature), { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'signature', length: 64 });
    const publicKey = bytesFromBase64url(key.publicKey, { code: 'CRYPTO_BAD_KEY', name: 'key', length: 32 });
    assert.equal(provider.verify(publicKey, approvalSigningInput(statement), signature), true);
    // The same signature says nothing about an approval: the decision is signed.
    assert.equal(provider.verify(publicKey, approvalSigningInput({ ...statement, decision: 'approve' }), signature), false);
    // Nor about another reason: the reason is signed (decision 0005).
    assert.equal(provider.verify(publicKey, approvalSigningInput({ ...statement, reason: 'whenever' }), signature), false);
  });

  it('signs nothing when the shown subject is not the command shown, its hash differs, or it no longer waits', () => {
    const key = approvalKeyFromSeed(seed);
    const sign = (command: PendingCommand) => approvalRequestBody({ command, decision: 'approve', approver: 'ann', kid: 'uk-1', key });
    assert.throws(() => sign(pending({ args: { a: 1, b: 3 } })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(pending({ device_id: 'dev-2' })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(pending({ approval: { ...pending().approval!, command_sha256: 'f'.repeat(64) } })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(pending({ state: 'queued' })), refusedWith('APPROVAL_NOT_PENDING'));
    assert.throws(() => sign({ ...pending(), approval: undefined } as PendingCommand), refusedWith('APPROVAL_NOT_PENDING'));
  });

  it('imports the CLI\'s key file or a bare seed, and refuses another user\'s file or a malformed one', () => {
    const seedText = base64urlFromBytes(seed);
    const expected = approvalKeyFromSeed(seed).publicKey;
    assert.equal(parseApprovalKey(JSON.stringify({ name: 'ann', alg: 'Ed25519', seed: seedText }) + '\n', 'ann').publicKey, expected);
    assert.equal(parseApprovalKey(`  ${seedText}\n`, 'ann').publicKey, expected);
    for (const bad of [JSON.stringify({ name: 'bob', alg: 'Ed25519', seed: seedText }), JSON.stringify({ name: 'ann', alg: 'RSA', seed: seedText }), '{not json', 'short', base64urlFromBytes(new Uint8Array(31)), '']) {
      assert.throws(() => parseApprovalKey(bad, 'ann'), refusedWith('VIEWER_KEY_INVALID'), bad);
    }
    assert.throws(() => approvalKeyFromSeed(new Uint8Array(16)), refusedWith('VIEWER_KEY_INVALID'));
  });
});

// Security review 2026-12-05, finding 4: registering a key (first or replacement) needs the current password.
describe('the signing key registration body', () => {
  it('carries the current password only when one was typed', () => {
    const key = approvalKeyFromSeed(seed);
    assert.deepEqual(signingKeyRegistrationBody(key, ''), { public_key: key.publicKey });
    assert.deepEqual(signingKeyRegistrationBody(key, 'pw here'), { public_key: key.publicKey, current_password: 'pw here' });
  });
});

// Rollouts that need approvals (docs/ota.md): the statement `sdc rollout approve|reject` signs, over the rollout shown.
describe('rollout approvals signed in the browser', () => {
  const rolloutSubject: RolloutApprovalSubject = {
    kind: 'ota_rollout', id: 'ro-1', release_id: 'rel-2', platform: 'linux-x64',
    target: { path: 'fw.bin', length: 3, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128), release_counter: 2, version: '2.0.0' },
    waves: [
      { devices: ['dev-1'], success_threshold: { succeeded_min: 1, succeeded_percent_min: 100, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 } },
      { devices: ['dev-2', 'dev-3'], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 50 } },
    ],
    devices_per_minute_max: 10, expires_at: 7_000, issuer: 'cp-key', requested_by: 'rhea',
  };
  const subjectSha256 = rolloutApprovalSubjectHash(rolloutSubject, nobleSha256);

  function waiting(overrides: Partial<PendingRollout> = {}, approval: Partial<RolloutApprovalView> = {}): PendingRollout {
    return {
      id: 'ro-1', release_id: 'rel-2', status: 'pending_approval', created_by: 'rhea', waves: [{ devices: ['dev-1'] }, { devices: ['dev-2', 'dev-3'] }],
      approval: {
        rule_id: 'updates', count: 2, roles: ['approver', 'admin'], policy_revision: 3, expires_at_ms: 7_000, subject: rolloutSubject, subject_sha256: subjectSha256,
        decisions: [], outcome: null, ...approval,
      },
      ...overrides,
    };
  }

  it('signs the statement the server checks: the rollout id and its recomputed subject hash, valid until its approval window closes', () => {
    const key = approvalKeyFromSeed(seed);
    const publicKey = bytesFromBase64url(key.publicKey, { code: 'CRYPTO_BAD_KEY', name: 'key', length: 32 });
    const approve = rolloutApprovalRequestBody({ rollout: waiting(), decision: 'approve', approver: 'ann', kid: 'uk-1', key });
    assert.deepEqual({ ...approve, signature: undefined }, { rollout_sha256: subjectSha256, kid: 'uk-1', expires_at_ms: 7_000, signature: undefined });
    const statement = { command_id: 'ro-1', command_sha256: subjectSha256, decision: 'approve' as const, approver: 'ann', kid: 'uk-1', expires_at: 7_000 };
    const signatureOf = (body: Record<string, unknown>) => bytesFromBase64url(String(body.signature), { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'signature', length: 64 });
    assert.equal(provider.verify(publicKey, approvalSigningInput(statement), signatureOf(approve)), true);
    assert.equal(provider.verify(publicKey, approvalSigningInput({ ...statement, decision: 'reject' }), signatureOf(approve)), false);

    const reject = rolloutApprovalRequestBody({ rollout: waiting(), decision: 'reject', approver: 'ann', kid: 'uk-1', key, reason: 'change freeze' });
    assert.equal(reject.reason, 'change freeze');
    assert.equal(provider.verify(publicKey, approvalSigningInput({ ...statement, decision: 'reject', reason: 'change freeze' }), signatureOf(reject)), true);
    assert.equal(provider.verify(publicKey, approvalSigningInput({ ...statement, decision: 'reject', reason: 'whenever' }), signatureOf(reject)), false);
    assert.equal(checkedRolloutSubjectHash(waiting()), subjectSha256);
  });

  it('signs nothing when the subject is not the rollout shown, its content differs from its hash, or the rollout no longer waits', () => {
    const key = approvalKeyFromSeed(seed);
    const sign = (rollout: PendingRollout) => rolloutApprovalRequestBody({ rollout, decision: 'approve', approver: 'ann', kid: 'uk-1', key });
    // Another device list shown than the one signed.
    assert.throws(() => sign(waiting({ waves: [{ devices: ['dev-1'] }, { devices: ['dev-2', 'dev-4'] }] })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({ release_id: 'rel-3' })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({ created_by: 'mallory' })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({ id: 'ro-2' })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({}, { expires_at_ms: 8_000 })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    // The hash the server asks to be signed is not the hash of what it shows (another artifact, another rate).
    assert.throws(() => sign(waiting({}, { subject: { ...rolloutSubject, target: { ...rolloutSubject.target, sha256: '0'.repeat(64) } } })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({}, { subject: { ...rolloutSubject, devices_per_minute_max: 1_000 } })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({}, { subject_sha256: 'f'.repeat(64) })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    // A subject not of the server's shape signs nothing either (no TypeError).
    assert.throws(() => sign(waiting({}, { subject: { ...rolloutSubject, waves: undefined } as unknown as RolloutApprovalSubject })), refusedWith('APPROVAL_STATEMENT_MISMATCH'));
    assert.throws(() => sign(waiting({ status: 'running' })), refusedWith('APPROVAL_NOT_PENDING'));
    assert.throws(() => sign(waiting({ approval: null })), refusedWith('APPROVAL_NOT_PENDING'));
  });
});
