/**
 * The approver's side of the approval flow in the browser (docs/policy.md "Approvals"), pure: the
 * same statement and signature as `sdc command approve|reject` and `sdc rollout approve|reject`
 * (docs/ota.md "Rollouts that need approvals"), made with the core's own code (RFC 8785 canonical
 * JSON, SHA-256 and Ed25519 from @noble) bundled into the page.
 *
 * Before signing, the subject the server shows is checked against the command (or rollout) it
 * shows and its hash recomputed, so what the approver signs is what the approver saw. The private key (a 32-byte
 * seed) lives in page memory only, like the token: a reload forgets it.
 */
import { base64urlFromBytes, bytesFromBase64url } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { rolloutApprovalSubjectHash, type RolloutApprovalSubject } from '../core/ota/rollout-approval.js';
import { rolloutResumeSubjectHash } from '../core/ota/rollout-resume-approval.js';
import type { ResumableRollout } from './rollout-resume.js';
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
  const { command } = options;
  const sha256 = checkedSubjectHash(command);
  return { command_sha256: sha256, ...signedDecision({ id: command.id, sha256, expiresAtMs: command.expires_at_ms }, options) };
}

/**
 * A rollout of `GET /v1/rollouts` as far as signing and showing its approvals need it (docs/ota.md
 * "Rollouts that need approvals"; server/ota/rollout-routes.ts, `approval`).
 */
export interface PendingRollout {
  readonly id: string; readonly release_id: string; readonly status: string; readonly created_by: string;
  readonly waves: ReadonlyArray<{ readonly devices: readonly string[] }>;
  readonly approval?: RolloutApprovalView | null;
}

/** The `approval` block of a rollout: what it waits (or waited) for, the decisions, and how the wait ended. */
export interface RolloutApprovalView {
  readonly rule_id: string; readonly count: number; readonly roles: readonly string[]; readonly policy_revision: number; readonly expires_at_ms: number;
  readonly subject: RolloutApprovalSubject; readonly subject_sha256: string;
  readonly decisions: ReadonlyArray<{ readonly approver: string; readonly decision: string; readonly role: string; readonly kid: string; readonly at_ms: number; readonly expires_at_ms: number; readonly reason?: string }>;
  readonly outcome: null | { readonly state: string; readonly at_ms: number; readonly by: string; readonly code?: string; readonly approvers?: readonly string[] };
}

/**
 * The rollout subject's hash, after checking the subject is the rollout shown (its id, release,
 * requester, approval expiry and every wave's devices) and recomputing the hash over all of it
 * (artifact hashes, thresholds and rate included), as `sdc rollout approve` does; a mismatch
 * signs nothing.
 */
export function checkedRolloutSubjectHash(rollout: PendingRollout): string {
  const approval = rollout.approval;
  if (rollout.status !== 'pending_approval' || approval === undefined || approval === null) {
    throw new ApiError('APPROVAL_NOT_PENDING', `rollout ${rollout.id} is ${rollout.status}, not waiting for approvals`, 0);
  }
  const { subject } = approval;
  let same = false;
  let sha256 = '';
  try {
    same = subject.kind === 'ota_rollout' && subject.id === rollout.id && subject.release_id === rollout.release_id && subject.requested_by === rollout.created_by
      && subject.expires_at === approval.expires_at_ms && canonicalize(subject.waves.map((w) => w.devices)) === canonicalize(rollout.waves.map((w) => w.devices));
    sha256 = rolloutApprovalSubjectHash(subject, nobleSha256);
  } catch {
    same = false; // a subject not of the server's shape (no waves, a value JSON cannot canonicalize): nothing signed
  }
  if (!same || sha256 !== approval.subject_sha256) {
    throw new ApiError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s approval subject does not match the rollout it shows; nothing signed', 0);
  }
  return sha256;
}

/**
 * The body of `POST /v1/rollouts/{id}/approve|reject`: the statement `sdc rollout approve|reject`
 * signs (the rollout's id as `command_id`, the subject's hash as `command_sha256`), counting until
 * the rollout's approval window closes.
 */
export function rolloutApprovalRequestBody(options: {
  rollout: PendingRollout; decision: ApprovalDecision; approver: string; kid: string; key: ApprovalKey; reason?: string;
}): Record<string, unknown> {
  const { rollout } = options;
  const sha256 = checkedRolloutSubjectHash(rollout);
  return { rollout_sha256: sha256, ...signedDecision({ id: rollout.id, sha256, expiresAtMs: rollout.approval!.subject.expires_at }, options) };
}

/**
 * The hash of a rollout's waiting resume request (decision 0019), after checking its subject is
 * about the rollout shown (its id, release and current wave), the request shown (its id, its
 * expiry) and recomputing the hash over all of it (the stop's figures, the reason, the requester);
 * a mismatch signs nothing.
 */
export function checkedResumeSubjectHash(rollout: ResumableRollout): string {
  const request = rollout.resume_request;
  if (request === undefined || request === null || !request.waiting || rollout.status !== 'paused') {
    throw new ApiError('APPROVAL_NOT_PENDING', `rollout ${rollout.id} has no resume request waiting for approvals`, 0);
  }
  const { subject } = request;
  let same = false;
  let sha256 = '';
  try {
    same = subject.kind === 'ota_rollout_resume' && subject.request_id === request.id && subject.rollout_id === rollout.id && subject.release_id === rollout.release_id
      && subject.wave === rollout.wave_index && subject.expires_at === request.expires_at_ms;
    sha256 = rolloutResumeSubjectHash(subject, nobleSha256);
  } catch {
    same = false; // not of the server's shape: nothing signed
  }
  if (!same || sha256 !== request.subject_sha256) {
    throw new ApiError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s resume subject does not match the rollout and request it shows; nothing signed', 0);
  }
  return sha256;
}

/**
 * The body of `POST /v1/rollouts/{id}/resume-request/approve|reject`: the approval statement with
 * the request's id as `command_id` and its subject's hash as `command_sha256`, counting until the
 * request's window closes.
 */
export function rolloutResumeRequestBody(options: {
  rollout: ResumableRollout; decision: ApprovalDecision; approver: string; kid: string; key: ApprovalKey; reason?: string;
}): Record<string, unknown> {
  const sha256 = checkedResumeSubjectHash(options.rollout);
  const request = options.rollout.resume_request!;
  return { request_id: request.id, subject_sha256: sha256, ...signedDecision({ id: request.id, sha256, expiresAtMs: request.expires_at_ms }, options) };
}

/** The signed part of a decision on one subject (a command, or a rollout): the body's fields but the hash, whose name differs by route. */
function signedDecision(subject: { id: string; sha256: string; expiresAtMs: number }, options: { decision: ApprovalDecision; approver: string; kid: string; key: ApprovalKey; reason?: string }): Record<string, unknown> {
  const { decision, approver, kid, key, reason } = options;
  const statement = { command_id: subject.id, command_sha256: subject.sha256, decision, approver, kid, expires_at: subject.expiresAtMs, ...(reason === undefined ? {} : { reason }) };
  const signature = signApproval({ statement, seed: key.seed, provider });
  return { kid, expires_at_ms: subject.expiresAtMs, signature, ...(reason === undefined ? {} : { reason }) };
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
