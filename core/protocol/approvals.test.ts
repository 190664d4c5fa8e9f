import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { nobleSha256 } from '../crypto/sha256-noble.js';
import {
  approvalSubjectHash, assertCommandApprovals, checkApproval, signApproval, verifyCommandApprovals,
  type ApprovalStatement, type ApprovalSubject, type ApproverKey,
} from './approvals.js';
import type { SignedCommand } from './messages/command.js';
import type { ApprovalCondition, PolicyRole } from './policy.js';
import { signCommand, verifyCommand } from './signed-command.js';

/**
 * The approval verifier a device runs (and the control plane's per-approval check): two distinct
 * approvers release a command; the requester, a duplicate, an expired approval, a forged or moved
 * signature, an unknown key and a wrong role are each refused with their own code.
 */

const provider = createNobleEd25519Provider();
const cpSeed = new Uint8Array(randomBytes(32));
const cpKey = provider.publicKeyFromSeed(cpSeed);

interface Person { readonly name: string; readonly role: PolicyRole; readonly kid: string; readonly seed: Uint8Array }
const person = (name: string, role: PolicyRole): Person => ({ name, role, kid: `uk_${name}`, seed: new Uint8Array(randomBytes(32)) });
const people = { alice: person('alice', 'operator'), bob: person('bob', 'approver'), carol: person('carol', 'admin'), dave: person('dave', 'operator') };
const keyOf = (p: Person): ApproverKey => ({ approver: p.name, role: p.role, publicKey: provider.publicKeyFromSeed(p.seed) });
const keys = new Map(Object.values(people).map((p) => [p.kid, keyOf(p)]));
const resolveApproverKey = (kid: string) => keys.get(kid);

const condition: ApprovalCondition = { count: 2, roles: ['approver', 'admin'] };
const issuedAt = 2_000_000;
const subject: ApprovalSubject = {
  id: 'c_approve_1', device_id: 'dev-1', opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 10 }, expires_at: 5_000_000, issuer: 'control-plane', requested_by: 'alice',
};

interface ApprovalSpec { readonly by: Person; readonly expiresAt?: number; readonly kid?: string; readonly subject?: ApprovalSubject }

function approval(spec: ApprovalSpec) {
  const signedSubject = spec.subject ?? subject;
  const statement: ApprovalStatement = {
    command_id: signedSubject.id, command_sha256: approvalSubjectHash(signedSubject, nobleSha256), decision: 'approve',
    approver: spec.by.name, kid: spec.kid ?? spec.by.kid, expires_at: spec.expiresAt ?? 3_000_000,
  };
  return { approver: spec.by.name, kid: statement.kid, decision: 'approve' as const, expires_at: statement.expires_at, sig: signApproval({ statement, seed: spec.by.seed, provider }) };
}

/** The command the control plane releases: signed by it, approvals embedded. */
function released(approvals: ReturnType<typeof approval>[], change: Partial<SignedCommand> = {}): SignedCommand {
  const { requested_by, ...fields } = subject;
  return signCommand({
    command: {
      ...fields, issued_at: issuedAt, device_seq: 4, approval: { requested_by, rule_id: 'commit-with-approval', approvals }, ...change,
    } as Omit<SignedCommand, 'sig'>,
    kid: 'cp-1', seed: cpSeed, provider,
  });
}

const verify = (command: SignedCommand, want: ApprovalCondition = condition) =>
  verifyCommandApprovals({ command, condition: want, resolveApproverKey, provider, sha256: nobleSha256 });
const codeOf = (command: SignedCommand, want: ApprovalCondition = condition) => {
  const verdict = verify(command, want);
  return verdict.valid ? 'valid' : verdict.code;
};

test('two distinct approvers with accepted roles release the command; the control plane signature covers the approvals', () => {
  const command = released([approval({ by: people.bob }), approval({ by: people.carol })]);
  assert.deepEqual(verify(command), { valid: true, approvers: ['bob', 'carol'] });
  verifyCommand({ command, deviceId: 'dev-1', resolveKey: (kid) => (kid === 'cp-1' ? cpKey : undefined), provider, nowMs: issuedAt + 1 });
  // Dropping an approval after signing breaks the control plane's signature.
  const stripped = { ...command, approval: { ...command.approval!, approvals: command.approval!.approvals.slice(0, 1) } };
  assert.throws(() => verifyCommand({ command: stripped, deviceId: 'dev-1', resolveKey: () => cpKey, provider, nowMs: issuedAt + 1 }), (e) => SdcError.is(e, 'CRYPTO_SIGNATURE_INVALID'));
});

test('each bad approval is refused with its own code', () => {
  const good = approval({ by: people.bob });
  assert.equal(codeOf(released([good, approval({ by: people.alice })])), 'APPROVAL_BY_REQUESTER', 'the requester approving');
  assert.equal(codeOf(released([good, good])), 'APPROVAL_DUPLICATE');
  assert.equal(codeOf(released([good, approval({ by: people.carol, expiresAt: issuedAt })])), 'APPROVAL_EXPIRED', 'expired when released');
  assert.equal(codeOf(released([good, approval({ by: people.dave })])), 'APPROVAL_ROLE_NOT_ALLOWED');
  assert.equal(codeOf(released([good, approval({ by: people.carol, kid: 'uk_nobody' })])), 'APPROVAL_KEY_UNKNOWN');
  assert.equal(codeOf(released([good, approval({ by: people.carol, kid: people.bob.kid })])), 'APPROVAL_KEY_UNKNOWN', 'another user\'s key');
  const forged = { ...approval({ by: people.carol }), sig: approval({ by: people.bob }).sig };
  assert.equal(codeOf(released([good, forged])), 'APPROVAL_SIGNATURE_INVALID');
  const garbage = { ...approval({ by: people.carol }), sig: '!'.repeat(86) };
  assert.equal(codeOf(released([good, garbage])), 'APPROVAL_SIGNATURE_INVALID', 'a signature that is not base64url is refused, not thrown');
  assert.equal(codeOf(released([good])), 'APPROVAL_INSUFFICIENT');
  const { approval: _none, ...bare } = released([good]);
  assert.equal(codeOf(signCommand({ command: { ...bare } as Omit<SignedCommand, 'sig'>, kid: 'cp-1', seed: cpSeed, provider })), 'APPROVAL_INSUFFICIENT', 'no approvals at all');
});

test('an approval is bound to its command: moved to another command or to changed args it does not verify', () => {
  const other: ApprovalSubject = { ...subject, id: 'c_other' };
  assert.equal(codeOf(released([approval({ by: people.bob, subject: other }), approval({ by: people.carol })])), 'APPROVAL_SIGNATURE_INVALID');
  const approvals = [approval({ by: people.bob }), approval({ by: people.carol })];
  assert.equal(codeOf(released(approvals, { args: { limit: 11 } })), 'APPROVAL_SIGNATURE_INVALID', 'the control plane changed the args');
  assert.equal(codeOf(released(approvals, { approval: { requested_by: 'bob', rule_id: 'r', approvals } })), 'APPROVAL_SIGNATURE_INVALID', 'another requester');
});

test('assertCommandApprovals throws the refusal as an SdcError with the approver', () => {
  const command = released([approval({ by: people.bob }), approval({ by: people.alice })]);
  assert.throws(() => assertCommandApprovals({ command, condition, resolveApproverKey, provider, sha256: nobleSha256 }),
    (e) => SdcError.is(e, 'APPROVAL_BY_REQUESTER') && (e.details as { approver?: string }).approver === 'alice');
});

test('checkApproval (the control plane, on submission) refuses a statement about another command or decision', () => {
  const commandSha256 = approvalSubjectHash(subject, nobleSha256);
  const statement: ApprovalStatement = { command_id: subject.id, command_sha256: commandSha256, decision: 'approve', approver: 'bob', kid: people.bob.kid, expires_at: 3_000_000 };
  const check = (s: ApprovalStatement, decision: 'approve' | 'reject' = 'approve') => checkApproval({
    statement: s, signature: signApproval({ statement: s, seed: people.bob.seed, provider }), key: keyOf(people.bob),
    commandId: subject.id, commandSha256, decision, requestedBy: 'alice', atMs: issuedAt, roles: condition.roles,
  }, provider)?.code;
  assert.equal(check(statement), undefined);
  assert.equal(check({ ...statement, command_id: 'c_other' }), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(check({ ...statement, command_sha256: '0'.repeat(64) }), 'APPROVAL_STATEMENT_MISMATCH');
  assert.equal(check(statement, 'reject'), 'APPROVAL_STATEMENT_MISMATCH', 'an approval offered as a rejection');
  assert.equal(check({ ...statement, approver: 'carol' }), 'APPROVAL_KEY_UNKNOWN', 'bob\'s key for carol\'s statement');
});

test('property: valid exactly when the distinct good approvers reach the count; any changed byte of a signature refuses', () => {
  const approvers = [people.bob, people.carol];
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 }), fc.subarray(approvers), (count, chosen) => {
    const verdict = verify(released(chosen.map((by) => approval({ by }))), { count, roles: condition.roles });
    assert.equal(verdict.valid, chosen.length >= count);
  }), { numRuns: 30 });
  const good = [approval({ by: people.bob }), approval({ by: people.carol })];
  fc.assert(fc.property(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 85 }), fc.integer({ min: 1, max: 63 }), (which, at, delta) => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sig = good[which]!.sig;
    const changed = sig.slice(0, at) + alphabet[(alphabet.indexOf(sig[at]!) + delta) % 64]! + sig.slice(at + 1);
    const approvals = good.map((a, i) => (i === which ? { ...a, sig: changed } : a));
    assert.notEqual(codeOf(released(approvals)), 'valid');
  }), { numRuns: 100 });
});
