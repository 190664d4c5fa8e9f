import { Buffer } from 'node:buffer';
import { SdcError } from '../../core/errors/index.js';
import { approvalLimits, checkApproval, type ApprovalDecision, type ApprovalStatement } from '../../core/protocol/approvals.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { AuditRecord } from '../../core/protocol/command-decisions.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { commandRequester, type SignedCommand } from '../../core/protocol/messages/command.js';
import { evaluatePolicy, type PolicyDecision, type PolicyRole } from '../../core/protocol/policy.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import type { ServiceSigner } from '../materials/materials.js';
import { ApprovalRepository, ApprovalsChanged, type ApprovalRow, type ApproverNow, type PendingApproval } from './approval-repository.js';
import type { Actor, CommandDetail, CommandService, CommandView } from './commands.js';
import { actors, type ServiceContext } from './context.js';
import type { PolicyStore } from './policy-store.js';
import type { SigningKeyStore } from './signing-keys.js';
import { isRole, type Role } from './users.js';

/**
 * The approval flow (docs/policy.md "Approvals"). A command the policy allows only with approvals
 * is stored `pending_approval` by CommandService.create (unsigned, no seq, not delivered). Here:
 * the list of what waits, and each approver's signed decision. A decision is checked against the
 * approver's registered key and the command as it was created (core checkApproval); a rejection
 * ends the command; an approval is stored, and when the approvals collected so far satisfy the
 * current policy the command is signed with them embedded and queued in the same transaction,
 * then dispatched like any new command. The pending command's TTL is its approval window: the
 * expiry sweep ends it `expired` like a queued command that never left.
 */
export interface ApprovalServiceOptions {
  readonly context: ServiceContext;
  readonly commands: CommandService;
  readonly signingKeys: SigningKeyStore;
  readonly policy: PolicyStore;
  readonly signer: ServiceSigner;
  /** The requester's current role, re-read at release (a demoted or removed requester releases nothing). */
  readonly roleOf: (userName: string) => Promise<Role | undefined>;
}

/** One approver's decision as submitted (POST /v1/commands/{id}/approve|reject). */
export interface ApprovalSubmission {
  readonly actor: Actor;
  readonly commandId: string;
  readonly decision: ApprovalDecision;
  readonly commandSha256: string;
  readonly kid: string;
  readonly expiresAtMs: number;
  readonly signature: string;
  readonly reason?: string;
}

export interface ApprovalOutcome {
  readonly command: CommandDetail;
  /** True when this approval completed the count and the command was signed and queued. */
  readonly released: boolean;
}

export interface PendingView extends CommandView {
  readonly decisions: ReadonlyArray<{ approver: string; decision: ApprovalDecision; role: string; kid: string; at_ms: number; expires_at_ms: number }>;
}

export class ApprovalService {
  readonly #ctx: ServiceContext;
  readonly #options: ApprovalServiceOptions;
  readonly #repository: ApprovalRepository;

  constructor(options: ApprovalServiceOptions) {
    this.#ctx = options.context;
    this.#options = options;
    this.#repository = new ApprovalRepository({ db: options.context.db, audit: options.context.audit });
  }

  /**
   * Pending commands, newest first, each with the decisions collected so far: one page of the
   * command list in state `pending_approval` (its cursor), without those past their expiry that
   * the sweep has not ended yet (so a page may hold fewer than `limit`).
   */
  async listPending(query: { limit?: number; cursor?: string }): Promise<{ items: PendingView[]; next_cursor: string | null }> {
    const nowMs = this.#ctx.clock.nowMs();
    const page = await this.#options.commands.list({ state: 'pending_approval', ...query });
    const live = page.items.filter((command) => command.expires_at_ms > nowMs);
    const decisions = await this.#repository.decisionsOf(live.map((command) => command.id));
    const items = live.map((command) => ({ ...command, decisions: decisions.filter((d) => d.command_id === command.id).map(decisionView) }));
    return { items, next_cursor: page.next_cursor };
  }

  /** Checks and applies one approver's decision; every refusal is a typed SdcError (docs/errors.md, `approval`). */
  async decide(submission: ApprovalSubmission): Promise<ApprovalOutcome> {
    const nowMs = this.#ctx.clock.nowMs();
    const command = await this.#options.commands.get(submission.commandId);
    const pending = command.approval;
    if (command.state !== 'pending_approval' || pending === undefined || pending === null) {
      throw new SdcError('APPROVAL_NOT_PENDING', `command ${command.id} is ${command.state}, not waiting for approvals`, { state: command.state });
    }
    if (nowMs >= pending.subject.expires_at) throw new SdcError('COMMAND_EXPIRED', `command ${command.id} expired while waiting for approvals`, { commandId: command.id });
    const row = await this.#checked(submission, pending, nowMs);
    if (submission.decision === 'reject') return this.#reject(row, command);
    return this.#approve(row, command, pending, nowMs);
  }

  /**
   * Cancels a command waiting for approvals (POST /v1/commands/{id}/cancel): only its requester or
   * an admin (APPROVAL_CANCEL_FORBIDDEN), only while it waits (APPROVAL_NOT_PENDING); it ends
   * `rejected`, audited as `command.approval_cancelled` with the reason given.
   */
  async cancel(options: { actor: Actor; commandId: string; reason?: string }): Promise<CommandDetail> {
    const { actor, commandId } = options;
    const nowMs = this.#ctx.clock.nowMs();
    const command = await this.#options.commands.get(commandId);
    const pending = command.approval;
    if (command.state !== 'pending_approval' || pending === undefined || pending === null) {
      throw new SdcError('APPROVAL_NOT_PENDING', `command ${command.id} is ${command.state}, not waiting for approvals`, { state: command.state });
    }
    if (actor.name !== pending.subject.requested_by && actor.role !== 'admin') {
      throw new SdcError('APPROVAL_CANCEL_FORBIDDEN', `${actor.name} neither requested command ${command.id} nor is an admin`, { commandId: command.id });
    }
    if (options.reason !== undefined && options.reason.length > approvalLimits.reasonLengthMax) {
      throw new SdcError('API_VALIDATION', `reason is longer than ${approvalLimits.reasonLengthMax} characters`, { path: 'body/reason' });
    }
    const reason = options.reason ?? null;
    await this.#repository.cancel({
      commandId: command.id, by: actor.name, reason, atMs: nowMs,
      audit: {
        kind: 'command.approval_cancelled', actor: actors.user(actor.name), subject: `command:${command.id}`,
        payload: { by: actor.name, role: actor.role, requested_by: pending.subject.requested_by, ...(reason === null ? {} : { reason }) },
      },
    });
    await this.#afterChange(command, 'rejected', nowMs);
    return this.#options.commands.get(command.id);
  }

  /** The submission checked against the registered key and the command; the row to store. */
  async #checked(submission: ApprovalSubmission, pending: PendingApproval, nowMs: number): Promise<ApprovalRow> {
    return checkApprovalSubmission({ roleOf: this.#options.roleOf, signingKeys: this.#options.signingKeys, ed25519: this.#ctx.ed25519, decisionsOf: (id) => this.#repository.decisionsOf([id]) }, {
      actor: submission.actor, decision: submission.decision, subjectSha256: submission.commandSha256, kid: submission.kid, expiresAtMs: submission.expiresAtMs,
      signature: submission.signature, ...(submission.reason === undefined ? {} : { reason: submission.reason }),
    }, {
      kind: 'command', id: submission.commandId, sha256: pending.command_sha256, requestedBy: pending.subject.requested_by, roles: pending.roles,
      expiresAtMs: pending.subject.expires_at, details: { commandId: submission.commandId },
    }, nowMs);
  }

  async #reject(row: ApprovalRow, command: CommandDetail): Promise<ApprovalOutcome> {
    await this.#repository.reject(row, decisionAudit(row, 'command.approval_rejected'));
    // This process's compare-and-set ended it: it never ran, so its rate-limit places go back (a requester's cancel keeps them: CommandService.givePendingPlacesBack).
    await this.#options.commands.givePendingPlacesBack(command.id, () => command.approval ?? undefined);
    await this.#afterChange(command, 'rejected', row.created_at);
    return { command: await this.#options.commands.get(command.id), released: false };
  }

  /** Stores the approval; when the approvals now satisfy the current policy, releases the command in the same transaction. */
  async #approve(row: ApprovalRow, command: CommandDetail, pending: PendingApproval, nowMs: number): Promise<ApprovalOutcome> {
    const earlier = await this.#holding(command.id, pending, nowMs);
    const approvals = [...earlier, row];
    const { decision, revision, requesterRole } = await this.#evaluate(pending, command, approvals, nowMs);
    const audit = decisionAudit(row, 'command.approved');
    if (decision.decision === 'allow') return this.#release({ command, pending, approvals, decision, revision, requesterRole, nowMs, by: row.approver, approval: { row, audit } });
    if (decision.approval === undefined) throw new SdcError('COMMAND_POLICY_DENIED', `policy no longer lets this command through: ${decision.reason}`, { reason: decision.reason });
    await this.#repository.recordApproval(row, audit);
    await this.#ctx.settleAudit();
    // Two approvals submitted at once (two control planes) may each have seen only the other's
    // absence; reading again after the commit, the later of the two sees both and releases.
    const now = await this.#holding(command.id, pending, nowMs);
    const again = await this.#evaluate(pending, command, now, nowMs);
    if (again.decision.decision === 'allow') {
      try {
        return await this.#release({ command, pending, approvals: now, decision: again.decision, revision: again.revision, requesterRole: again.requesterRole, nowMs, by: row.approver });
      } catch (error) {
        // The other submission released it first: this approval is stored and counted.
        if (!SdcError.is(error, 'APPROVAL_NOT_PENDING')) throw error;
      }
    }
    return { command: await this.#options.commands.get(command.id), released: false };
  }

  /**
   * The command's stored approvals that still count, each with its approver's current role
   * (security review finding 2): an approval is judged at release by who its approver is now, not
   * who they were when they signed. One whose approver was removed, whose role is no longer one the
   * rule accepts, or whose signing key was retired (or is no longer theirs) is dropped, audited as
   * `command.approval_dropped` with the reason; expired ones are left out (they expire on their own).
   */
  async #holding(commandId: string, pending: PendingApproval, nowMs: number): Promise<ApprovalRow[]> {
    const stored = (await this.#repository.decisionsOf([commandId])).filter((d) => d.decision === 'approve' && d.expires_at > nowMs);
    const holding: ApprovalRow[] = [];
    const drops: Array<{ row: ApprovalRow; audit: AuditRecord }> = [];
    for (const row of stored) {
      const reason = await this.#noLongerHolds(row, pending);
      if (typeof reason === 'string') {
        drops.push({
          row, audit: {
            kind: 'command.approval_dropped', actor: actors.system, subject: `command:${commandId}`,
            payload: { approver: row.approver, role: row.role, kid: row.kid, signature: row.signature, reason },
          },
        });
      } else {
        holding.push(reason);
      }
    }
    if (drops.length > 0) {
      await this.#repository.dropApprovals(commandId, drops);
      await this.#ctx.settleAudit();
      this.#ctx.logger.warn({ commandId, dropped: drops.map(({ row, audit }) => ({ approver: row.approver, reason: audit.payload['reason'] })) }, 'approvals that no longer hold dropped');
    }
    return holding;
  }

  /** Why an approval no longer holds, or the row with its approver's current role. */
  async #noLongerHolds(row: ApprovalRow, pending: PendingApproval): Promise<ApprovalDropReason | ApprovalRow> {
    const role = await this.#options.roleOf(row.approver);
    const key = role === undefined ? undefined : await this.#options.signingKeys.byKid(row.kid);
    return judgeApproval(row, pending, { role, key });
  }

  /** Signs the command with `approvals` embedded and queues it (storing `approval` in the same transaction), then dispatches it. */
  async #release(facts: ReleaseFacts, attempt = 1): Promise<ApprovalOutcome> {
    const { command, pending, approvals, decision, revision, nowMs } = facts;
    const signer = this.#options.signer;
    const requester = commandRequester(pending.subject.requested_by, facts.requesterRole);
    try {
      await this.#repository.release({
        commandId: command.id, deviceId: command.device_id, atMs: nowMs, by: facts.by, ...(facts.approval === undefined ? {} : { approval: facts.approval }),
        // Judged again inside the release's transaction (review finding 5): #holding ran before it.
        approvers: { rows: approvals, holds: (row, now) => typeof judgeApproval(row, pending, now) !== 'string' },
        sign: (deviceSeq) => signCommand({
          command: {
            id: pending.subject.id, device_id: pending.subject.device_id, opcode: pending.subject.opcode as SignedCommand['opcode'], args: pending.subject.args,
            issued_at: nowMs, expires_at: pending.subject.expires_at, device_seq: deviceSeq, issuer: pending.subject.issuer,
            ...(requester === undefined ? {} : { requester }),
            approval: {
              requested_by: pending.subject.requested_by, rule_id: decision.ruleId ?? pending.rule_id,
              approvals: approvals.slice(0, approvalLimits.approvalsMax).map((a) => ({ approver: a.approver, kid: a.kid, decision: 'approve' as const, expires_at: a.expires_at, sig: a.signature })),
            },
          },
          kid: signer.kid, seed: signer.seed, provider: this.#ctx.ed25519,
        }),
        audit: (signed) => ({
          kind: 'command.released', actor: actors.user(facts.by), subject: `command:${command.id}`,
          payload: { command: signed as unknown as JsonObject, policy: { decision: decision.decision, reason: decision.reason, ...(decision.ruleId === undefined ? {} : { rule_id: decision.ruleId }), revision } },
        }),
      });
    } catch (error) {
      if (!(error instanceof ApprovalsChanged)) throw error;
      return this.#afterApprovalsChanged(facts, attempt);
    }
    await this.#afterChange(command, 'queued', nowMs);
    await this.#options.commands.dispatchWaiting(command.device_id);
    return { command: await this.#options.commands.get(command.id), released: true };
  }

  /**
   * An approval the release was to embed stopped holding between #holding and the release's
   * transaction, which rolled back. The approval being submitted is stored, those that no longer
   * hold are dropped and audited (#holding), and the release is judged again with what is left, at
   * most approvalReleaseAttemptsMax times in all; otherwise the command keeps waiting.
   */
  async #afterApprovalsChanged(facts: ReleaseFacts, attempt: number): Promise<ApprovalOutcome> {
    const { command, pending, nowMs } = facts;
    if (facts.approval !== undefined) {
      await this.#repository.recordApproval(facts.approval.row, facts.approval.audit);
      await this.#ctx.settleAudit();
    }
    const now = await this.#holding(command.id, pending, nowMs);
    const again = await this.#evaluate(pending, command, now, nowMs);
    if (again.decision.decision === 'allow' && attempt < approvalReleaseAttemptsMax) {
      const { approval: _stored, ...rest } = facts;
      return this.#release({ ...rest, approvals: now, decision: again.decision, revision: again.revision, requesterRole: again.requesterRole }, attempt + 1);
    }
    return { command: await this.#options.commands.get(command.id), released: false };
  }

  /** The current policy's decision for the requester (with their current role) and these approvals. */
  async #evaluate(pending: PendingApproval, command: CommandDetail, approvals: readonly ApprovalRow[], nowMs: number): Promise<{ decision: PolicyDecision; revision: number; requesterRole: Role }> {
    const requester = pending.subject.requested_by;
    const role = await this.#options.roleOf(requester);
    if (role === undefined) throw new SdcError('COMMAND_POLICY_DENIED', `the requester ${requester} no longer exists`, { reason: 'requester removed' });
    const { policy, revision } = await this.#options.policy.current();
    const reason = pending.admission?.reason;
    // The same facts admission gathered (policy-facts.ts): tags and posture, the reason it stated, its rate counts.
    const request = await this.#options.commands.policyFacts.atRelease(policy, {
      actor: { id: requester, role }, opcode: command.opcode, device: { id: command.device_id }, nowMs,
      argsBytes: Buffer.byteLength(canonicalize(pending.subject.args), 'utf8'), approvals: approvals.map((a) => ({ id: a.approver, role: a.role })),
      ...(reason === undefined ? {} : { reason }),
    }, pending.admission?.rate_counts);
    return { decision: evaluatePolicy(policy, request), revision, requesterRole: role };
  }

  async #afterChange(command: CommandDetail, state: 'queued' | 'rejected', atMs: number): Promise<void> {
    await this.#ctx.settleAudit();
    this.#ctx.publishLive({ type: 'command', command_id: command.id, device_id: command.device_id, state, at_ms: atMs });
  }
}

/** What a release is judged and signed with. */
interface ReleaseFacts {
  readonly command: CommandDetail; readonly pending: PendingApproval; readonly approvals: readonly ApprovalRow[]; readonly decision: PolicyDecision;
  readonly revision: number; readonly nowMs: number; readonly by: string;
  /** The requester's role the release was judged with; signed into the command (`requester`). */
  readonly requesterRole: Role;
  readonly approval?: { row: ApprovalRow; audit: AuditRecord };
}

/** Releases tried for one submission when approvals keep changing under it (each re-judged; bounded so a flapping approver cannot loop it). */
const approvalReleaseAttemptsMax = 3;

/** Why an approval no longer holds, or the row with its approver's current role, from the approver and key as they are now. */
export function judgeApproval(row: ApprovalRow, pending: { readonly roles: readonly PolicyRole[] }, now: ApproverNow): ApprovalDropReason | ApprovalRow {
  const { role, key } = now;
  if (role === undefined || !isRole(role)) return 'approver_removed';
  if (role !== row.role && !pending.roles.includes(role)) return 'role_not_accepted';
  if (key === undefined || key.userName !== row.approver) return 'signing_key_removed';
  if (key.retiredAtMs !== null) return 'signing_key_retired';
  return role === row.role ? row : { ...row, role };
}

/** What one decision is about: a command waiting for approvals, or a rollout (server/ota/rollout-approvals.ts). */
export interface ApprovalTarget {
  readonly kind: 'command' | 'rollout';
  /** The statement's `command_id`: the command's or the rollout's id. */
  readonly id: string;
  /** The subject's hash the statement's `command_sha256` must be. */
  readonly sha256: string;
  readonly requestedBy: string;
  /** Roles the rule(s) take approvals from. */
  readonly roles: readonly PolicyRole[];
  /** The subject's own expiry: no approval may outlive it. */
  readonly expiresAtMs: number;
  /** Error details naming the subject (`commandId`, `rolloutId`). */
  readonly details: Readonly<Record<string, string>>;
}

/** What checking a decision reads: the approver's role now, their keys, the earlier decisions on the subject. */
export interface ApprovalCheckPorts {
  readonly roleOf: (userName: string) => Promise<Role | undefined>;
  readonly signingKeys: Pick<SigningKeyStore, 'byKid'>;
  readonly ed25519: ServiceContext['ed25519'];
  readonly decisionsOf: (id: string) => Promise<ApprovalRow[]>;
}

/** One approver's decision as submitted, whatever it is about. */
export interface DecisionSubmission {
  readonly actor: Actor;
  readonly decision: ApprovalDecision;
  readonly subjectSha256: string;
  readonly kid: string;
  readonly expiresAtMs: number;
  readonly signature: string;
  readonly reason?: string;
}

/**
 * The checks every decision passes, on a command or a rollout alike (decision 0005): the approver
 * still a user (their role now), their current signing key, a statement about exactly this subject
 * and decision whose signature verifies (core checkApproval: not the requester, not expired, a role
 * the rule takes), no later than the subject's own expiry, one decision per approver, a reason that
 * fits. Returns the row to store; every refusal is a typed SdcError (docs/errors.md, `approval`).
 */
export async function checkApprovalSubmission(ports: ApprovalCheckPorts, submission: DecisionSubmission, target: ApprovalTarget, nowMs: number): Promise<ApprovalRow> {
  const { actor } = submission;
  // The role the approver holds now, not the one their token was issued with: a demoted or
  // removed user's token still verifies until it expires, and the approval must not count as more.
  const role = await ports.roleOf(actor.name);
  if (role === undefined) throw new SdcError('APPROVAL_ROLE_NOT_ALLOWED', `${actor.name} is no longer a user`, { ...target.details, approver: actor.name });
  const stored = await ports.signingKeys.byKid(submission.kid);
  // Only the approver's current key signs new decisions; a retired one stays readable for old ones.
  const key = stored === undefined || stored.retiredAtMs !== null ? undefined : { approver: stored.userName, role, publicKey: stored.publicKey };
  const statement: ApprovalStatement = {
    command_id: target.id, command_sha256: submission.subjectSha256, decision: submission.decision,
    approver: actor.name, kid: submission.kid, expires_at: submission.expiresAtMs,
    // The reason is part of what the approver signed (decision 0005): the audited words are theirs.
    ...(submission.reason === undefined ? {} : { reason: submission.reason }),
  };
  const refused = checkApproval({
    statement, signature: submission.signature, key, commandId: target.id, commandSha256: target.sha256,
    decision: submission.decision, ...(submission.reason === undefined ? {} : { reason: submission.reason }), requestedBy: target.requestedBy, atMs: nowMs, roles: target.roles,
  }, ports.ed25519);
  if (refused !== undefined) throw new SdcError(refused.code, refused.reason, { ...target.details, approver: actor.name });
  if (submission.expiresAtMs > target.expiresAtMs) {
    throw new SdcError('APPROVAL_EXPIRY_TOO_LONG', `approval expires at ${submission.expiresAtMs}, after the ${target.kind} (${target.expiresAtMs})`, { ...target.details });
  }
  const earlier = await ports.decisionsOf(target.id);
  if (earlier.some((d) => d.approver === actor.name)) throw new SdcError('APPROVAL_DUPLICATE', `${actor.name} has already decided on ${target.kind} ${target.id}`, { approver: actor.name });
  // Never cut: the stored reason must be the signed one (the route's schema bounds it).
  if (submission.reason !== undefined && submission.reason.length > approvalLimits.reasonLengthMax) {
    throw new SdcError('API_VALIDATION', `reason is longer than ${approvalLimits.reasonLengthMax} characters`, { path: 'body/reason' });
  }
  return {
    command_id: target.id, approver: actor.name, decision: submission.decision, role, kid: submission.kid,
    expires_at: submission.expiresAtMs, signature: submission.signature, reason: submission.reason ?? null, created_at: nowMs,
  };
}

/** Why a stored approval stopped counting (the `reason` of `command.approval_dropped`). */
export type ApprovalDropReason = 'approver_removed' | 'role_not_accepted' | 'signing_key_removed' | 'signing_key_retired';

function decisionAudit(row: ApprovalRow, kind: 'command.approved' | 'command.approval_rejected'): AuditRecord {
  // The signature and what it covers, so the audit log alone shows who decided what.
  return {
    kind, actor: actors.user(row.approver), subject: `command:${row.command_id}`,
    payload: { approver: row.approver, role: row.role, kid: row.kid, expires_at: row.expires_at, signature: row.signature, ...(row.reason === null ? {} : { reason: row.reason }) },
  };
}

function decisionView(row: ApprovalRow) {
  return { approver: row.approver, decision: row.decision, role: row.role, kid: row.kid, at_ms: row.created_at, expires_at_ms: row.expires_at };
}
