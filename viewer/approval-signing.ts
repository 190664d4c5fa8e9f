/**
 * The approver's side of the approval flow in the browser (docs/policy.md "Approvals"), pure: the
 * same statement and signature as `sdc command approve|reject`, made with the core's own code
 * (RFC 8785 canonical JSON, SHA-256 and Ed25519 from @noble) bundled into the page.
 *
 * Before signing, the subject the server shows is checked against the command it shows and its
 * hash recomputed, so what the approver signs is what the approver saw. The private key (a 32-byte
 * seed) lives in page memory only, like the token: a reload forgets it.
 */
import { base64urlFromBytes, bytesFromBase64url } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { approvalSubjectHash, signApproval, type ApprovalDecision, type ApprovalSubject } from '../core/protocol/approvals.js';
import { canonicalize } from '../core/protocol/canonical-json.js';
import { ApiError } from './api.js';

const provider = createNobleEd25519Provider();
const seedBytes = 32;

/** A command of `GET /v1/approvals` as far as signing needs it. */
export interface PendingCommand {
  readonly id: string; readonly device_id: string; readonly opcode: string; readonly args: Record<string, unknown>;
  readonly state: string; readonly expires_at_ms: number; readonly created_by: string;
  readonly approval?: { readonly command_sha256: string; readonly subject: ApprovalSubject; readonly count?: number; readonly roles?: readonly string[]; readonly rule_id?: string };
  readonly decisions?: ReadonlyArray<{ approver: string; decision: string; role: string; at_ms: number }>;
}

/** The approver's signing key in memory: the seed and what the server registered for it. */
export interface ApprovalKey {
  readonly seed: Uint8Array;
  readonly publicKey: string;
}

export function approvalKeyFromSeed(seed: Uint8Array): ApprovalKey {
  if (seed.length !== seedBytes) throw new ApiError('VIEWER_KEY_INVALID', `a signing key seed is ${seedBytes} bytes, not ${seed.length}`, 0);
  return { seed, publicKey: base64urlFromBytes(provider.publicKeyFromSeed(seed)) };
}

/**
 * An imported key: the CLI's `signing-key-NAME.json` (`{name, alg, seed}`), or the bare base64url
 * seed. A file made for another user is refused, since the server would refuse its kid anyway.
 */
export function parseApprovalKey(text: string, userName: string): ApprovalKey {
  const trimmed = text.trim();
  let seedText = trimmed;
  if (trimmed.startsWith('{')) {
    let parsed: { name?: unknown; alg?: unknown; seed?: unknown };
    try {
      parsed = JSON.parse(trimmed) as typeof parsed;
    } catch {
      throw new ApiError('VIEWER_KEY_INVALID', 'the key file is not JSON', 0);
    }
    if (typeof parsed.seed !== 'string' || (parsed.alg !== undefined && parsed.alg !== 'Ed25519')) throw new ApiError('VIEWER_KEY_INVALID', 'the key file has no Ed25519 seed', 0);
    if (typeof parsed.name === 'string' && parsed.name !== userName) throw new ApiError('VIEWER_KEY_INVALID', `the key file is ${parsed.name}'s, not ${userName}'s`, 0);
    seedText = parsed.seed;
  }
  let seed: Uint8Array;
  try {
    seed = bytesFromBase64url(seedText, { code: 'CRYPTO_BAD_KEY', name: 'seed', length: seedBytes });
  } catch {
    throw new ApiError('VIEWER_KEY_INVALID', 'the seed is not 32 bytes of base64url', 0);
  }
  return approvalKeyFromSeed(seed);
}

/** The subject's hash, after checking the subject is the command shown; a mismatch signs nothing. */
export function checkedSubjectHash(command: PendingCommand): string {
  const approval = command.approval;
  if (command.state !== 'pending_approval' || approval === undefined) {
    throw new ApiError('APPROVAL_NOT_PENDING', `command ${command.id} is ${command.state}, not waiting for approvals`, 0);
  }
  const { subject } = approval;
  const same = subject.id === command.id && subject.device_id === command.device_id && subject.opcode === command.opcode
    && canonicalize(subject.args) === canonicalize(command.args) && subject.expires_at === command.expires_at_ms && subject.requested_by === command.created_by;
  const sha256 = approvalSubjectHash(subject, nobleSha256);
  if (!same || sha256 !== approval.command_sha256) {
    throw new ApiError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s approval subject does not match the command it shows; nothing signed', 0);
  }
  return sha256;
}

/** The body of `POST /v1/commands/{id}/approve|reject`: the approval counts until the command itself expires. */
export function approvalRequestBody(options: {
  command: PendingCommand; decision: ApprovalDecision; approver: string; kid: string; key: ApprovalKey; reason?: string;
}): Record<string, unknown> {
  const { command, decision, approver, kid, key } = options;
  const sha256 = checkedSubjectHash(command);
  const expiresAt = command.expires_at_ms;
  const signature = signApproval({ statement: { command_id: command.id, command_sha256: sha256, decision, approver, kid, expires_at: expiresAt, ...(options.reason === undefined ? {} : { reason: options.reason }) }, seed: key.seed, provider });
  return { command_sha256: sha256, kid, expires_at_ms: expiresAt, signature, ...(options.reason === undefined ? {} : { reason: options.reason }) };
}

/**
 * The body of `PUT /v1/users/me/signing-key`: the public key, and the account's current password
 * when one was typed. The server needs the password to register any key it does not hold yet,
 * first or replacement (APPROVAL_KEY_PROOF_REQUIRED without it; security review 2026-12-05,
 * finding 4); an empty field sends none (enough only to re-state the registered key).
 */
export function signingKeyRegistrationBody(key: ApprovalKey, currentPassword: string): { public_key: string; current_password?: string } {
  return currentPassword === '' ? { public_key: key.publicKey } : { public_key: key.publicKey, current_password: currentPassword };
}
