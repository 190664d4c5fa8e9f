import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { decideOperatorAction, type Executions, type RolloutRecord, type WaveStats } from '../../core/ota/rollout-decisions.js';
import {
  rolloutResumeStaleness, rolloutResumeSubject, rolloutResumeSubjectHash, type RolloutResumeSubject,
} from '../../core/ota/rollout-resume-approval.js';
import type { AuditRecord } from '../../core/protocol/command-decisions.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { PolicyActor, PolicyRole } from '../../core/protocol/policy.js';
import { ApprovalRepository, insertDecision, type ApprovalRow } from '../control-plane/approval-repository.js';
import { checkApprovalSubmission, judgeApproval, type DecisionSubmission } from '../control-plane/approvals.js';
import { actors, newId, type ServiceContext } from '../control-plane/context.js';
import type { SigningKeyStore } from '../control-plane/signing-keys.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import type { PolicyRefusal, RolloutPolicyPort } from './rollout-policy.js';
import {
  moveResumeRequest, readRollout, recordJsonOf, rolloutsAwaitingResume, type RolloutResumeApproval, type StoredRollout,
} from './rollout-store.js';

/**
 * Approvals for a resume past a safety stop (decision 0019, docs/ota.md "Resuming after a safety
 * stop"). A resume the policy allows the caller only with approvals (the same rule that made the
 * start wait, decision 0015) is asked for (`request`): the request binds the stop it waives (the
 * wave, the pause reason, the safety stop, the wave's thresholds and figures, what was accepted
 * before, the hash of the rollout's whole record) in a subject approvers sign with the ordinary
 * approval statement (`command_id` the request's `rr-…` id). Each decision passes the checks a
 * command's or a rollout start's does (checkApprovalSubmission: current key, exact subject, not the
 * requester, one per approver, a role the rule takes, not expired) and is a row of
 * `command_approvals` under the request's id. A rejection ends the request; once the policy, judged
 * for the requester with the approvals that hold, needs none more, the rollout resumes in the same
 * transaction, compare-and-set on the waiting request and the record it was asked for: a request
 * for an older stop never resumes a later one. Before that, a decision on a stop that changed (its
 * figures, a resume, a pause) ends the request `stale`. A resume by someone the policy lets resume
 * directly, or an abort, ends the waiting request (RolloutService.act). Every step is audited.
 */

/** The safety stop a resume would waive, with the wave's figures. */
export interface SafetyStop {
  readonly reason: 'error_threshold' | 'success_threshold_not_met';
  readonly stats: WaveStats;
}

/** The policy's word on a resume by one person with some approvals (RolloutService judges it). */
export interface ResumeVerdict {
  readonly deviceIds: readonly string[];
  readonly revision: number;
  /** Devices the policy lets the resumer update only with (more) approvals. */
  readonly needApprovals: ReadonlyArray<PolicyRefusal & { deviceId: string }>;
  /** Set when the resume is refused: with approvals required, or denied beyond what the creator may do. */
  readonly refused?: { readonly code: 'OTA_ROLLOUT_APPROVAL_REQUIRED' | 'OTA_ROLLOUT_POLICY_DENIED'; readonly which: ReadonlyArray<PolicyRefusal & { deviceId: string }>; readonly message: string };
}

export interface RolloutResumeFlowOptions {
  readonly context: ServiceContext;
  readonly policy: Pick<RolloutPolicyPort, 'roleOf' | 'current'>;
  readonly signingKeys: Pick<SigningKeyStore, 'byKid'>;
  /** The rollout's executions as the coordinator sees them, and the stop a resume would waive now. */
  readonly stopOf: (rollout: StoredRollout) => Promise<{ executions: Executions; stop: SafetyStop | null }>;
  readonly judge: (rollout: StoredRollout, stop: SafetyStop, resumer: string, approvals: readonly PolicyActor[], nowMs: number) => Promise<ResumeVerdict>;
  /** Audits a refused resume (`ota.rollout.resume_denied`) and throws its code. */
  readonly refuse: (rollout: StoredRollout, stop: SafetyStop, actor: string, verdict: ResumeVerdict) => Promise<never>;
  /** Runs the tick of a rollout that just resumed. */
  readonly resumed: (rolloutId: string) => Promise<void>;
}

/** How long a resume request waits for approvals unless asked otherwise: a working day and a night, as a start. */
export const resumeApprovalWindowMsDefault = 24 * 3_600_000;
/** A stop is judged on the wave as it stands: a day is long enough, and figures a week old are another stop anyway. */
export const resumeApprovalWindowMsMax = 24 * 3_600_000;

/** Tries at resuming after a stored approval while approvals change under it (bounded, as for a start). */
const resumeAttemptsMax = 3;

/** A decision on a resume request as submitted (POST /v1/rollouts/{id}/resume-request/approve|reject). */
export interface ResumeDecisionSubmission extends DecisionSubmission {
  readonly rolloutId: string;
  readonly requestId: string;
}

/** A resume request as the rollout's view shows it. */
export interface ResumeRequestView {
  readonly id: string;
  readonly rule_id: string; readonly count: number; readonly roles: readonly PolicyRole[]; readonly policy_revision: number; readonly expires_at_ms: number;
  readonly waiting: boolean;
  readonly subject: RolloutResumeSubject;
  readonly subject_sha256: string;
  readonly decisions: ReadonlyArray<{ approver: string; decision: string; role: string; kid: string; at_ms: number; expires_at_ms: number; reason?: string }>;
  readonly outcome: { readonly state: string; readonly at_ms: number; readonly by: string; readonly code?: string; readonly why?: string; readonly approvers?: readonly string[] } | null;
}

type Ended = NonNullable<RolloutResumeApproval['outcome']>;

/** Thrown inside a transaction when the request was no longer waiting: rolls it back. */
class NoLongerWaiting extends Error {}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

export class RolloutResumeFlow {
  readonly #ctx: ServiceContext;
  readonly #o: RolloutResumeFlowOptions;
  readonly #repository: ApprovalRepository;

  constructor(options: RolloutResumeFlowOptions) {
    this.#ctx = options.context;
    this.#o = options;
    this.#repository = new ApprovalRepository({ db: options.context.db, audit: options.context.audit });
  }

  /**
   * Asks approvers to resume a paused rollout past its safety stop. Refused when it is not paused
   * (OTA_ROLLOUT_STATE), when no approval is needed (not a safety stop, or the caller may resume:
   * OTA_ROLLOUT_RESUME_NOT_NEEDED), when a request already waits (OTA_ROLLOUT_RESUME_PENDING), and
   * when the policy denies the caller beyond approvals (OTA_ROLLOUT_POLICY_DENIED, audited).
   */
  async request(rolloutId: string, actor: string, reason: string, windowMs: number = resumeApprovalWindowMsDefault): Promise<void> {
    if (!Number.isSafeInteger(windowMs) || windowMs < 60_000 || windowMs > resumeApprovalWindowMsMax) {
      throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', `the approval window must be 60000..${resumeApprovalWindowMsMax} ms, not ${windowMs}`);
    }
    let rollout = await readRollout(this.#ctx.db, rolloutId);
    const nowMs = this.#ctx.clock.nowMs();
    if (rollout.record.status !== 'paused') throw new SdcError('OTA_ROLLOUT_STATE', `rollout ${rolloutId} is ${rollout.record.status}, not paused`, { rolloutId, status: rollout.record.status });
    if (rollout.resumeRequestId !== null) {
      const waiting = rollout.resumeApproval!;
      if (nowMs < waiting.subject.expires_at) {
        throw new SdcError('OTA_ROLLOUT_RESUME_PENDING', `rollout ${rolloutId} already has resume request ${rollout.resumeRequestId} by ${waiting.subject.requested_by} waiting for approvals`, { rolloutId, requestId: rollout.resumeRequestId });
      }
      await this.#end(rollout, { state: 'expired', by: 'system', nowMs, code: 'OTA_ROLLOUT_RESUME_EXPIRED' }).catch(ignoreNoLongerWaiting);
      rollout = await readRollout(this.#ctx.db, rolloutId);
    }
    const { stop } = await this.#o.stopOf(rollout);
    if (stop === null) throw new SdcError('OTA_ROLLOUT_RESUME_NOT_NEEDED', `rollout ${rolloutId} is paused with no safety stop to waive: resume it`, { rolloutId });
    const verdict = await this.#o.judge(rollout, stop, actor, [], nowMs);
    if (verdict.refused === undefined) throw new SdcError('OTA_ROLLOUT_RESUME_NOT_NEEDED', `the policy lets ${actor} resume rollout ${rolloutId} without approvals: resume it`, { rolloutId });
    if (verdict.refused.code !== 'OTA_ROLLOUT_APPROVAL_REQUIRED') return this.#o.refuse(rollout, stop, actor, verdict);
    const needs = verdict.needApprovals;
    const requestId = newId('rr', this.#ctx.random).replace('_', '-');
    const subject = rolloutResumeSubject({
      requestId, record: rollout.record, releaseId: rollout.releaseId, rolloutSubjectSha256: rollout.approval?.subject_sha256 ?? null, stop: stop.reason, stats: stop.stats,
      requestedBy: actor, reason, requestedAtMs: nowMs, expiresAtMs: nowMs + windowMs,
    }, sha256);
    const approval: RolloutResumeApproval = {
      rule_id: needs[0]!.rule_id ?? '?', count: Math.max(...needs.map((n) => n.approval?.count ?? 1)), roles: [...new Set(needs.flatMap((n) => n.approval?.roles ?? []))],
      policy_revision: verdict.revision, subject, subject_sha256: rolloutResumeSubjectHash(subject, sha256),
    };
    const stored = await this.#ctx.db.transaction(async (tx) => {
      if (!await moveResumeRequest(tx, rolloutId, { from: null, to: requestId, approval, recordJson: recordJsonOf(rollout.record) })) return false;
      await this.#ctx.audit.record(tx, {
        kind: 'ota.rollout.resume_requested', actor: actors.user(actor), subject: `rollout:${rolloutId}`,
        payload: {
          request_id: requestId, reason, rule_id: approval.rule_id, count: approval.count, roles: [...approval.roles], policy_revision: approval.policy_revision,
          devices_needing_approval: needs.length, expires_at: subject.expires_at, subject_sha256: approval.subject_sha256, ...stopFacts(subject),
        },
      });
      return true;
    });
    if (!stored) {
      throw new SdcError('OTA_ROLLOUT_RESUME_STALE', `rollout ${rolloutId} changed while the resume request was stored (another request, a resume or an abort came first)`, { rolloutId });
    }
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: rolloutId, request_id: requestId, rule_id: approval.rule_id, count: approval.count }, 'rollout resume waits for approvals');
  }

  /** Checks and applies one approver's decision on the waiting resume request; true when it resumed the rollout. */
  async decide(submission: ResumeDecisionSubmission): Promise<boolean> {
    const nowMs = this.#ctx.clock.nowMs();
    const rollout = await readRollout(this.#ctx.db, submission.rolloutId);
    const request = requireWaiting(rollout, submission.requestId);
    if (nowMs >= request.subject.expires_at) {
      await this.#end(rollout, { state: 'expired', by: 'system', nowMs, code: 'OTA_ROLLOUT_RESUME_EXPIRED' }).catch(ignoreNoLongerWaiting);
      throw new SdcError('OTA_ROLLOUT_RESUME_EXPIRED', `resume request ${request.subject.request_id} expired at ${request.subject.expires_at}`, { rolloutId: rollout.id, requestId: submission.requestId });
    }
    const { stop } = await this.#o.stopOf(rollout);
    await this.#requireSameStop(rollout, request, stop, nowMs);
    const row = await checkApprovalSubmission(
      { roleOf: (name) => this.#o.policy.roleOf(name), signingKeys: this.#o.signingKeys, ed25519: this.#ctx.ed25519, decisionsOf: (id) => this.#repository.decisionsOf([id]) },
      submission,
      {
        kind: 'rollout', id: request.subject.request_id, sha256: request.subject_sha256, requestedBy: request.subject.requested_by, roles: request.roles,
        expiresAtMs: request.subject.expires_at, details: { rolloutId: rollout.id, requestId: request.subject.request_id },
      },
      nowMs,
    );
    if (row.decision === 'reject') {
      await this.#end(rollout, { state: 'rejected', by: row.approver, nowMs, code: 'OTA_ROLLOUT_RESUME_REJECTED', decision: row });
      return false;
    }
    return this.#approve(rollout, request, stop!, row, nowMs);
  }

  /**
   * Ends the waiting request inside the caller's transaction (an operator's abort, or a resume by
   * someone the policy lets resume directly); audited. False when none was waiting any more.
   */
  async endWithin(tx: SqlExecutor, rollout: StoredRollout, how: { state: 'aborted' | 'superseded'; by: string; nowMs: number }): Promise<boolean> {
    if (rollout.resumeRequestId === null || rollout.resumeApproval === null) return false;
    const outcome: Ended = { state: how.state, at_ms: how.nowMs, by: how.by };
    if (!await moveResumeRequest(tx, rollout.id, { from: rollout.resumeRequestId, to: null, approval: { ...rollout.resumeApproval, outcome } })) return false;
    await this.#ctx.audit.record(tx, endedAudit(rollout, rollout.resumeApproval, outcome));
    return true;
  }

  /** The sweep's part: ends `expired` every waiting resume request whose window closed; how many. */
  async expireDue(): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    let ended = 0;
    for (const rollout of await rolloutsAwaitingResume(this.#ctx.db, 200)) {
      if (rollout.resumeApproval === null || nowMs < rollout.resumeApproval.subject.expires_at) continue;
      try {
        await this.#end(rollout, { state: 'expired', by: 'system', nowMs, code: 'OTA_ROLLOUT_RESUME_EXPIRED' });
        ended += 1;
      } catch (error) {
        ignoreNoLongerWaiting(error);
      }
    }
    return ended;
  }

  /** Rollouts whose waiting resume request `userName` may still decide (not theirs, not decided by them, their role among the rule's, not expired). */
  async awaitingDecisionBy(userName: string, role: PolicyRole, limit: number): Promise<StoredRollout[]> {
    const nowMs = this.#ctx.clock.nowMs();
    const waiting = (await rolloutsAwaitingResume(this.#ctx.db, limit)).filter((rollout) => {
      const request = rollout.resumeApproval;
      return rollout.record.status === 'paused' && request !== null && request.subject.requested_by !== userName && request.roles.includes(role) && nowMs < request.subject.expires_at;
    });
    const decided = await this.#repository.decisionsOf(waiting.map((rollout) => rollout.resumeRequestId!));
    return waiting.filter((rollout) => !decided.some((d) => d.command_id === rollout.resumeRequestId && d.approver === userName));
  }

  async viewOf(rollout: StoredRollout): Promise<ResumeRequestView | null> {
    const request = rollout.resumeApproval;
    if (request === null) return null;
    const decisions = await this.#repository.decisionsOf([request.subject.request_id]);
    const outcome = request.outcome;
    return {
      id: request.subject.request_id, rule_id: request.rule_id, count: request.count, roles: request.roles, policy_revision: request.policy_revision,
      expires_at_ms: request.subject.expires_at, waiting: rollout.resumeRequestId === request.subject.request_id, subject: request.subject, subject_sha256: request.subject_sha256,
      decisions: decisions.map((row) => ({
        approver: row.approver, decision: row.decision, role: row.role, kid: row.kid, at_ms: row.created_at, expires_at_ms: row.expires_at, ...(row.reason === null ? {} : { reason: row.reason }),
      })),
      outcome: outcome === undefined ? null : {
        state: outcome.state, at_ms: outcome.at_ms, by: outcome.by, ...(outcome.code === undefined ? {} : { code: outcome.code }), ...(outcome.why === undefined ? {} : { why: outcome.why }),
        ...(outcome.approvals === undefined ? {} : { approvers: outcome.approvals.map((a) => a.approver) }),
      },
    };
  }

  /** Ends the request `stale` and refuses, when the rollout is no longer at the stop the request was asked for. */
  async #requireSameStop(rollout: StoredRollout, request: RolloutResumeApproval, stop: SafetyStop | null, nowMs: number): Promise<void> {
    const why = rolloutResumeStaleness(request.subject, { record: rollout.record, stop: stop?.reason ?? null, stats: stop?.stats }, sha256);
    if (why === undefined) return;
    await this.#end(rollout, { state: 'stale', by: 'system', nowMs, code: 'OTA_ROLLOUT_RESUME_STALE', why }).catch(ignoreNoLongerWaiting);
    throw new SdcError('OTA_ROLLOUT_RESUME_STALE', `resume request ${request.subject.request_id} is for another stop: ${why}`, { rolloutId: rollout.id, requestId: request.subject.request_id });
  }

  /** Stores the approval; when the approvals that hold now satisfy the policy for the requester, resumes the rollout in the same transaction. */
  async #approve(rollout: StoredRollout, request: RolloutResumeApproval, stop: SafetyStop, row: ApprovalRow, nowMs: number): Promise<boolean> {
    const audit = decisionAudit(rollout.id, row, 'ota.rollout.resume_approved');
    let approvals = [...await this.#holding(request, nowMs), row];
    const verdict = await this.#o.judge(rollout, stop, request.subject.requested_by, actorsOf(approvals), nowMs);
    if (verdict.refused === undefined) return this.#resume(rollout, request, approvals, nowMs, row.approver, { row, audit });
    if (verdict.refused.code === 'OTA_ROLLOUT_POLICY_DENIED') {
      // The policy changed during the wait so that the requester may not update these devices at all: approvals cannot fix it.
      await this.#end(rollout, { state: 'denied', by: 'system', nowMs, code: 'OTA_ROLLOUT_POLICY_DENIED', why: verdict.refused.message, decision: row });
      throw new SdcError('OTA_ROLLOUT_POLICY_DENIED', verdict.refused.message, { rolloutId: rollout.id, requestId: request.subject.request_id });
    }
    await this.#inTransaction(async (tx) => {
      await requireWaitingRow(tx, rollout.id, request.subject.request_id);
      await insertDecision(tx, row);
      await this.#ctx.audit.record(tx, audit);
    });
    await this.#ctx.settleAudit();
    // Two approvals submitted at once may each have missed the other: read again after the commit.
    for (let attempt = 1; attempt <= resumeAttemptsMax; attempt += 1) {
      approvals = await this.#holding(request, nowMs);
      if ((await this.#o.judge(rollout, stop, request.subject.requested_by, actorsOf(approvals), nowMs)).refused !== undefined) return false;
      try {
        return await this.#resume(rollout, request, approvals, nowMs, row.approver);
      } catch (error) {
        if (SdcError.is(error, 'APPROVAL_NOT_PENDING')) return false;
        throw error;
      }
    }
    return false;
  }

  /** The request's stored approvals that still count: not expired, the approver still in a role the rule takes, with a current key. */
  async #holding(request: RolloutResumeApproval, nowMs: number): Promise<ApprovalRow[]> {
    const stored = (await this.#repository.decisionsOf([request.subject.request_id])).filter((d) => d.decision === 'approve' && d.expires_at > nowMs);
    const holding: ApprovalRow[] = [];
    for (const row of stored) {
      const role = await this.#o.policy.roleOf(row.approver);
      const key = role === undefined ? undefined : await this.#o.signingKeys.byKid(row.kid);
      const judged = judgeApproval(row, request, { role, key: key === undefined ? undefined : { userName: key.userName, retiredAtMs: key.retiredAtMs } });
      if (typeof judged !== 'string') holding.push(judged);
    }
    return holding;
  }

  /**
   * Resumes the rollout: compare-and-set on the waiting request and the record it was asked for
   * (so an abort, a resume or a new stop since wins), with the completing decision when there is
   * one; audited `ota.rollout.resume` in the requester's name with the approvers; then a tick.
   */
  async #resume(rollout: StoredRollout, request: RolloutResumeApproval, approvals: readonly ApprovalRow[], nowMs: number, by: string, decision?: { row: ApprovalRow; audit: AuditRecord }): Promise<boolean> {
    // The figures the resume accepts are read here and must still be those approved; one that ends after this read is not accepted.
    const { executions, stop } = await this.#o.stopOf(rollout);
    await this.#requireSameStop(rollout, request, stop, nowMs);
    const next = decideOperatorAction(rollout.record, 'resume', executions);
    if (!next.ok) throw new SdcError(next.code, next.message, { rolloutId: rollout.id });
    const outcome: Ended = {
      state: 'resumed', at_ms: nowMs, by,
      approvals: approvals.map((a) => ({ approver: a.approver, role: a.role, kid: a.kid, expires_at: a.expires_at, signature: a.signature })),
    };
    await this.#inTransaction(async (tx) => {
      if (decision !== undefined) {
        await requireWaitingRow(tx, rollout.id, request.subject.request_id);
        await insertDecision(tx, decision.row);
        await this.#ctx.audit.record(tx, decision.audit);
      }
      const moved = await moveResumeRequest(tx, rollout.id, {
        from: request.subject.request_id, to: null, approval: { ...request, outcome }, recordJson: recordJsonOf(rollout.record), resume: { record: next.next, nowMs },
      });
      if (!moved) throw new NoLongerWaiting();
      await this.#ctx.audit.record(tx, {
        kind: 'ota.rollout.resume', actor: actors.user(request.subject.requested_by), subject: `rollout:${rollout.id}`,
        payload: {
          cancel: 0, wave: next.next.waveIndex, request_id: request.subject.request_id, subject_sha256: request.subject_sha256, approvers: approvals.map((a) => a.approver), released_by: by,
          ...stopFacts(request.subject),
        },
      });
    });
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: rollout.id, request_id: request.subject.request_id, approvers: approvals.map((a) => a.approver) }, 'rollout resume approved: resumed');
    await this.#o.resumed(rollout.id);
    return true;
  }

  /** Ends the waiting request without resuming (rejected with the approver's signed decision, expired, stale, denied); audited. */
  async #end(rollout: StoredRollout, how: { state: Ended['state']; by: string; nowMs: number; code?: string; why?: string; decision?: ApprovalRow }): Promise<void> {
    const request = rollout.resumeApproval!;
    const outcome: Ended = { state: how.state, at_ms: how.nowMs, by: how.by, ...(how.code === undefined ? {} : { code: how.code }), ...(how.why === undefined ? {} : { why: how.why }) };
    await this.#inTransaction(async (tx) => {
      if (how.decision !== undefined) {
        await requireWaitingRow(tx, rollout.id, request.subject.request_id);
        await insertDecision(tx, how.decision);
        if (how.decision.decision === 'approve') await this.#ctx.audit.record(tx, decisionAudit(rollout.id, how.decision, 'ota.rollout.resume_approved'));
      }
      if (!await moveResumeRequest(tx, rollout.id, { from: request.subject.request_id, to: null, approval: { ...request, outcome } })) throw new NoLongerWaiting();
      await this.#ctx.audit.record(tx, how.decision?.decision === 'reject' ? decisionAudit(rollout.id, how.decision, 'ota.rollout.resume_rejected') : endedAudit(rollout, request, outcome));
    });
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: rollout.id, request_id: request.subject.request_id, state: how.state, by: how.by }, 'rollout resume request ended');
  }

  async #inTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      return await this.#ctx.db.transaction(fn);
    } catch (error) {
      if (error instanceof NoLongerWaiting) throw new SdcError('APPROVAL_NOT_PENDING', 'the resume request is no longer waiting for approvals');
      throw error;
    }
  }
}

function requireWaiting(rollout: StoredRollout, requestId: string): RolloutResumeApproval {
  if (rollout.resumeRequestId === null || rollout.resumeRequestId !== requestId || rollout.resumeApproval === null) {
    throw new SdcError('APPROVAL_NOT_PENDING', `resume request ${requestId} of rollout ${rollout.id} is not waiting for approvals`
      + (rollout.resumeRequestId === null ? '' : ` (request ${rollout.resumeRequestId} is)`), { rolloutId: rollout.id, requestId, state: rollout.record.status });
  }
  return rollout.resumeApproval;
}

async function requireWaitingRow(tx: SqlExecutor, rolloutId: string, requestId: string): Promise<void> {
  const [row] = await tx.query<{ resume_request_id: string | null }>('SELECT resume_request_id FROM ota_rollouts WHERE id = ?', [rolloutId]);
  if (row === undefined) throw new SdcError('OTA_ROLLOUT_NOT_FOUND', `no rollout ${rolloutId}`, { rolloutId });
  if (row.resume_request_id !== requestId) throw new NoLongerWaiting();
}

function ignoreNoLongerWaiting(error: unknown): void {
  if (!SdcError.is(error, 'APPROVAL_NOT_PENDING')) throw error;
}

function actorsOf(rows: readonly ApprovalRow[]): PolicyActor[] {
  return rows.map((a) => ({ id: a.approver, role: a.role }));
}

/** The stop a request waives, as its audit entries name it. */
function stopFacts(subject: RolloutResumeSubject): JsonObject {
  return {
    request_id: subject.request_id, requested_by: subject.requested_by, wave: subject.wave, pause_reason: subject.pause_reason, safety_stop: subject.safety_stop,
    error_threshold: { ...subject.error_threshold }, success_threshold: { ...subject.success_threshold }, wave_stats: { ...subject.wave_stats },
    accepted_before: { ...subject.accepted_before }, stop_sha256: subject.stop_sha256,
  };
}

function endedAudit(rollout: StoredRollout, request: RolloutResumeApproval, outcome: Ended): AuditRecord {
  return {
    kind: 'ota.rollout.resume_request_ended', actor: outcome.by === 'system' ? actors.system : actors.user(outcome.by), subject: `rollout:${rollout.id}`,
    payload: {
      request_id: request.subject.request_id, state: outcome.state, subject_sha256: request.subject_sha256, expires_at: request.subject.expires_at,
      ...(outcome.code === undefined ? {} : { code: outcome.code }), ...(outcome.why === undefined ? {} : { why: outcome.why }),
    },
  };
}

function decisionAudit(rolloutId: string, row: ApprovalRow, kind: 'ota.rollout.resume_approved' | 'ota.rollout.resume_rejected'): AuditRecord {
  // The signature and what it covers, so the audit log alone shows who decided what.
  return {
    kind, actor: actors.user(row.approver), subject: `rollout:${rolloutId}`,
    payload: {
      request_id: row.command_id, approver: row.approver, role: row.role, kid: row.kid, expires_at: row.expires_at, signature: row.signature,
      ...(row.reason === null ? {} : { reason: row.reason }),
    },
  };
}
