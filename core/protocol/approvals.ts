import type { ErrorCode } from '../errors/index.js';
import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, bytesFromBase64url, concatBytes, hexFromBytes } from '../crypto/bytes.js';
import type { Ed25519Provider, Sha256 } from '../ports/ports.js';
import { canonicalBytes } from './canonical-json.js';
import type { JsonObject } from './json-value.js';
import type { SignedCommand } from './messages/command.js';
import type { ApprovalCondition, PolicyRole } from './policy.js';

/**
 * Multi-approval, the pure part (docs/policy.md "Approvals", docs/decisions/0005-approvals.md).
 *
 * An approver signs an approval statement with their own Ed25519 key: the command id, the hash of
 * the command subject (what the command does, to which device, until when, asked by whom), the
 * decision, the approver and the key id, and the statement's own expiry. The control plane checks
 * each statement when it is submitted (`checkApproval`), and, once the policy is satisfied, signs
 * the command with the approvals embedded (`SignedCommand.approval`). The device rebuilds each
 * statement from the command it received and checks them all (`verifyCommandApprovals`), so a
 * control plane cannot make up an approval nor move one to another command.
 *
 * Nothing here reads a clock or a store: time, keys, the hash and the signature provider come in.
 */

/** Separates approval signatures from command, envelope and audit signatures. */
const approvalSigningPrefix = new TextEncoder().encode('sdc-approval-v1\n');

export const approvalDecisions = ['approve', 'reject'] as const;
export type ApprovalDecision = (typeof approvalDecisions)[number];

export const approvalLimits = Object.freeze({
  /** Approvals one command may carry; the policy engine's bound on collected approvals. */
  approvalsMax: 16,
  /** A rejection's reason, audited with it. */
  reasonLengthMax: 1024,
});

/** What approvers approve: fixed when the command is created, all of it carried in the signed command. */
export interface ApprovalSubject {
  readonly id: string;
  readonly device_id: string;
  readonly opcode: string;
  readonly args: JsonObject;
  readonly expires_at: number;
  readonly issuer: string;
  readonly requested_by: string;
}

/** The text an approver signs (RFC 8785 canonical JSON after the prefix). */
export interface ApprovalStatement {
  readonly command_id: string;
  /** Lower-case hex SHA-256 of the canonical ApprovalSubject. */
  readonly command_sha256: string;
  readonly decision: ApprovalDecision;
  readonly approver: string;
  readonly kid: string;
  /** The approval counts only for a command released before this time (ms since the epoch). */
  readonly expires_at: number;
  /**
   * Why (a rejection's reason, which the API requires): signed with the decision, so the audited
   * reason is the approver's own words. Absent, the signed text is exactly the one before reasons
   * were signed, so the approvals embedded in commands (which carry none) verify as they did.
   */
  readonly reason?: string;
}

/** An approver's registered signing key as the checker needs it. */
export interface ApproverKey {
  readonly approver: string;
  readonly role: PolicyRole;
  readonly publicKey: Uint8Array;
}

export function approvalSubjectHash(subject: ApprovalSubject, sha256: Sha256): string {
  const { id, device_id, opcode, args, expires_at, issuer, requested_by } = subject;
  return hexFromBytes(sha256(canonicalBytes({ id, device_id, opcode, args, expires_at, issuer, requested_by })));
}

/** The subject of a command released with approvals; undefined for a command that carries none. */
export function approvalSubjectOf(command: SignedCommand): ApprovalSubject | undefined {
  if (command.approval === undefined) return undefined;
  const { id, device_id, opcode, args, expires_at, issuer } = command;
  return { id, device_id, opcode, args: args as JsonObject, expires_at, issuer, requested_by: command.approval.requested_by };
}

export function approvalSigningInput(statement: ApprovalStatement): Uint8Array {
  const { command_id, command_sha256, decision, approver, kid, expires_at, reason } = statement;
  return concatBytes(approvalSigningPrefix, canonicalBytes({ command_id, command_sha256, decision, approver, kid, expires_at, ...(reason === undefined ? {} : { reason }) }));
}

/** The approver's side (the CLI): the base64url signature over the statement. */
export function signApproval(options: { statement: ApprovalStatement; seed: Uint8Array; provider: Ed25519Provider }): string {
  return base64urlFromBytes(options.provider.sign(options.seed, approvalSigningInput(options.statement)));
}

/** Why one approval, or a command's set of approvals, is refused: an error code of the registry and words. */
export interface ApprovalRefusal {
  readonly code: ApprovalRefusalCode;
  readonly reason: string;
  /** The approver concerned, when one is. */
  readonly approver?: string;
}

export type ApprovalRefusalCode = Extract<ErrorCode,
  | 'APPROVAL_SIGNATURE_INVALID' | 'APPROVAL_BY_REQUESTER' | 'APPROVAL_DUPLICATE' | 'APPROVAL_EXPIRED'
  | 'APPROVAL_ROLE_NOT_ALLOWED' | 'APPROVAL_KEY_UNKNOWN' | 'APPROVAL_STATEMENT_MISMATCH' | 'APPROVAL_INSUFFICIENT' | 'APPROVAL_DEVICE_PROOF_INVALID'>;

/** One approval to check: the statement as signed, its signature, and the facts it must agree with. */
export interface ApprovalCheck {
  readonly statement: ApprovalStatement;
  readonly signature: string;
  /** The signing key registered under `statement.kid`; undefined when there is none. */
  readonly key: ApproverKey | undefined;
  readonly commandId: string;
  readonly commandSha256: string;
  readonly decision: ApprovalDecision;
  /** The reason submitted with the decision; the statement must carry exactly it (undefined: none). */
  readonly reason?: string;
  readonly requestedBy: string;
  /** The approval must not have expired at this time. */
  readonly atMs: number;
  /** Roles the rule accepts approvals from; undefined: not checked here (a rejection). */
  readonly roles?: readonly PolicyRole[];
}

/**
 * Checks one approval, in this order: a registered key for this approver, a statement about this
 * command and decision, a signature that verifies, not the requester, not expired, an accepted
 * role. Returns the first refusal, or undefined when the approval holds.
 */
export function checkApproval(check: ApprovalCheck, provider: Ed25519Provider): ApprovalRefusal | undefined {
  const { statement, key } = check;
  const approver = statement.approver;
  if (key === undefined || key.approver !== approver) return refusal('APPROVAL_KEY_UNKNOWN', `no signing key ${statement.kid} registered for ${approver}`, approver);
  if (statement.command_id !== check.commandId || statement.command_sha256 !== check.commandSha256 || statement.decision !== check.decision
    || statement.reason !== check.reason) {
    return refusal('APPROVAL_STATEMENT_MISMATCH', `the statement does not ${check.decision} command ${check.commandId} as it stands`, approver);
  }
  if (!signatureVerifies(check, key, provider)) return refusal('APPROVAL_SIGNATURE_INVALID', `signature of ${approver} does not verify`, approver);
  if (approver === check.requestedBy) return refusal('APPROVAL_BY_REQUESTER', `${approver} requested the command and may not decide on it`, approver);
  if (!(statement.expires_at > check.atMs)) return refusal('APPROVAL_EXPIRED', `approval of ${approver} expired at ${statement.expires_at}`, approver);
  if (check.roles !== undefined && !check.roles.includes(key.role)) {
    return refusal('APPROVAL_ROLE_NOT_ALLOWED', `${approver} is ${key.role}; the rule takes approvals from ${check.roles.join(', ')}`, approver);
  }
  return undefined;
}

function signatureVerifies(check: ApprovalCheck, key: ApproverKey, provider: Ed25519Provider): boolean {
  let signature: Uint8Array;
  try {
    signature = bytesFromBase64url(check.signature, { code: 'APPROVAL_SIGNATURE_INVALID', name: 'signature', length: 64 });
  } catch (error) {
    if (SdcError.is(error, 'APPROVAL_SIGNATURE_INVALID')) return false;
    throw error;
  }
  return provider.verify(key.publicKey, approvalSigningInput(check.statement), signature);
}

function refusal(code: ApprovalRefusalCode, reason: string, approver?: string): ApprovalRefusal {
  return { code, reason, ...(approver === undefined ? {} : { approver }) };
}

export type ApprovalVerdict =
  | { readonly valid: true; readonly approvers: readonly string[] }
  | ({ readonly valid: false } & ApprovalRefusal);

/**
 * The device's check of a signed command against the approval condition its policy bundle names
 * for it (the caller has verified the control plane's signature first: `verifyCommand`). Every
 * embedded approval must hold (`checkApproval`, at the command's `issued_at`, the time the control
 * plane released it), no approver may appear twice, and at least `condition.count` distinct
 * approvers with a role in `condition.roles` must remain. A command without an approval block
 * fails with APPROVAL_INSUFFICIENT. `resolveApproverKey` answers from the policy bundle's keys.
 */
export function verifyCommandApprovals(options: {
  readonly command: SignedCommand;
  readonly condition: ApprovalCondition;
  readonly resolveApproverKey: (kid: string) => ApproverKey | undefined;
  readonly provider: Ed25519Provider;
  readonly sha256: Sha256;
}): ApprovalVerdict {
  const { command, condition } = options;
  const subject = approvalSubjectOf(command);
  if (subject === undefined || command.approval === undefined) {
    return { valid: false, code: 'APPROVAL_INSUFFICIENT', reason: `command ${command.id} carries no approvals; ${condition.count} required` };
  }
  return countEmbeddedApprovals({
    approvals: command.approval.approvals, subjectId: command.id, subjectSha256: approvalSubjectHash(subject, options.sha256),
    requestedBy: subject.requested_by, atMs: command.issued_at, condition, resolveApproverKey: options.resolveApproverKey, provider: options.provider,
  });
}

/** One approval as a signed block carries it (a command's `approval`, a rollout's `rollout_approval`). */
export interface EmbeddedApproval {
  readonly approver: string; readonly kid: string; readonly decision: ApprovalDecision; readonly expires_at: number; readonly sig: string;
}

/**
 * Counts the approvals a signed block carries for one subject (a command, or a rollout's reduced
 * subject: core/ota/rollout-approval.ts), the one place both device-side checks share: no approver
 * twice, each statement checked by checkApproval at `atMs`. A refusal whose code is in `uncounted`
 * leaves that approval out instead of refusing the block (the rollout's waves run days apart, and
 * the device's bundle may have dropped a key or a role since the start); any other refusal refuses
 * it. Valid when at least `condition.count` distinct approvers count; when too few do and one was
 * left out, the refusal names why.
 */
export function countEmbeddedApprovals(options: {
  readonly approvals: readonly EmbeddedApproval[];
  readonly subjectId: string;
  readonly subjectSha256: string;
  readonly requestedBy: string;
  readonly atMs: number;
  readonly condition: ApprovalCondition;
  readonly resolveApproverKey: (kid: string) => ApproverKey | undefined;
  readonly provider: Ed25519Provider;
  readonly uncounted?: ReadonlySet<ApprovalRefusalCode>;
}): ApprovalVerdict {
  const { condition, subjectId, subjectSha256 } = options;
  const seen = new Set<string>();
  const counted: string[] = [];
  let skipped: ApprovalRefusal | undefined;
  for (const approval of options.approvals) {
    if (seen.has(approval.approver)) return { valid: false, code: 'APPROVAL_DUPLICATE', reason: `${approval.approver} approves twice`, approver: approval.approver };
    seen.add(approval.approver);
    const statement: ApprovalStatement = {
      command_id: subjectId, command_sha256: subjectSha256, decision: approval.decision, approver: approval.approver, kid: approval.kid, expires_at: approval.expires_at,
    };
    const refused = checkApproval({
      statement, signature: approval.sig, key: options.resolveApproverKey(approval.kid), commandId: subjectId, commandSha256: subjectSha256,
      decision: 'approve', requestedBy: options.requestedBy, atMs: options.atMs, roles: condition.roles,
    }, options.provider);
    if (refused === undefined) counted.push(approval.approver);
    else if (options.uncounted?.has(refused.code) === true) skipped ??= refused;
    else return { valid: false, ...refused };
  }
  if (counted.length < condition.count) {
    const reason = `${counted.length} valid approval(s) of ${condition.count} required`;
    if (skipped !== undefined) return { valid: false, ...skipped, reason: `${skipped.reason}; ${reason}` };
    return { valid: false, code: 'APPROVAL_INSUFFICIENT', reason };
  }
  return { valid: true, approvers: counted };
}

/** verifyCommandApprovals as a throw: the SdcError of the first refusal (for callers that refuse by exception). */
export function assertCommandApprovals(options: Parameters<typeof verifyCommandApprovals>[0]): void {
  const verdict = verifyCommandApprovals(options);
  if (!verdict.valid) {
    throw new SdcError(verdict.code, verdict.reason, { commandId: options.command.id, ...(verdict.approver === undefined ? {} : { approver: verdict.approver }) });
  }
}
