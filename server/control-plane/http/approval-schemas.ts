import { Type, type Static } from '@sinclair/typebox';
import { approvalLimits } from '../../../core/protocol/approvals.js';
import { Command } from './schemas.js';

/** Request and response schemas of the approval routes (routes/approvals.ts); OpenAPI is generated from them. */
const strict = { additionalProperties: false } as const;
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Lower-case hex SHA-256 of the command subject (the command\'s approval.command_sha256)' });
const Kid = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$', description: 'Key id of the approver\'s registered signing key' });
const Signature = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$', description: '64-byte Ed25519 signature over the approval statement, base64url' });
const ExpiresAtMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The approval counts only for a release before this time (ms since the epoch); at most the command\'s own expiry' });

/** An approval: the statement's free fields (the rest is the command id, the caller, the decision) and its signature. */
export const ApproveBody = Type.Object({ command_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature }, strict);
export type ApproveBody = Static<typeof ApproveBody>;

export const RejectBody = Type.Object({
  command_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature,
  reason: Type.String({ minLength: 1, maxLength: approvalLimits.reasonLengthMax, description: 'Why; part of the signed statement (its `reason`), audited with the rejection' }),
}, strict);
export type RejectBody = Static<typeof RejectBody>;

/** POST /v1/commands/{id}/cancel: the requester's or an admin's word, authenticated by the session (nothing signed). */
export const CancelBody = Type.Object({
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: approvalLimits.reasonLengthMax, description: 'Why; audited with the cancellation' })),
}, strict);
export type CancelBody = Static<typeof CancelBody>;

const Decision = Type.Object({
  approver: Type.String(), decision: Type.String(), role: Type.String(), kid: Type.String(), at_ms: Type.Integer(), expires_at_ms: Type.Integer(),
});
export const PendingCommand = Type.Object({ ...Command.properties, decisions: Type.Array(Decision) }, { additionalProperties: true });
export const PendingPage = Type.Object({ items: Type.Array(PendingCommand), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const ApprovalOutcome = Type.Object({
  released: Type.Boolean({ description: 'true when this approval completed the count: the command is signed with the approvals and queued' }),
  command: Type.Object({}, { additionalProperties: true }),
});

export const SigningKeyBody = Type.Object({
  public_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'The 32-byte Ed25519 public key, base64url' }),
  current_password: Type.Optional(Type.String({
    minLength: 1, maxLength: 1024,
    description: 'The account\'s current password: needed to register a key, first or replacement (APPROVAL_KEY_PROOF_REQUIRED without it; the current key again needs none), checked and counted like a login',
  })),
}, strict);
export type SigningKeyBody = Static<typeof SigningKeyBody>;

export const SigningKeyView = Type.Object({ kid: Type.String(), public_key: Type.String(), user: Type.String(), created_at_ms: Type.Integer() });
