import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { base64urlFromBytes, bytesFromBase64url } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { approvalSigningInput, approvalSubjectHash, type ApprovalSubject } from '../core/protocol/approvals.js';
import { ApiError } from './api.js';
import { approvalKeyFromSeed, approvalRequestBody, parseApprovalKey, signingKeyRegistrationBody, type PendingCommand } from './approval-signing.js';

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
