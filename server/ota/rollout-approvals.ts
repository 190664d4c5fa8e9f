import { SdcError } from '../../core/errors/index.js';
import type { RolloutRecord } from '../../core/ota/rollout-decisions.js';
import type { AuditRecord } from '../../core/protocol/command-decisions.js';
import type { PolicyActor } from '../../core/protocol/policy.js';
import { ApprovalRepository, insertDecision, type ApprovalRow } from '../control-plane/approval-repository.js';
import { checkApprovalSubmission, judgeApproval, type DecisionSubmission } from '../control-plane/approvals.js';
import { actors, type ServiceContext } from '../control-plane/context.js';
import type { SigningKeyStore } from '../control-plane/signing-keys.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import type { RolloutPolicyPort } from './rollout-policy.js';
import { endApprovalWait, pendingApprovalRolloutIds, readRollout, type RolloutApproval, type StoredRollout } from './rollout-store.js';

/**
 * Rollouts that wait for approvals (docs/ota.md "Rollouts that need approvals"). A rollout the
 * command policy lets start only with approvals is stored `pending_approval` by RolloutService.start
 * (no execution, no rate-limit place taken) with the subject approvers sign
 * (core/ota/rollout-approval.ts). Here: each approver's signed decision, checked exactly as a
 * command's is (checkApprovalSubmission: current key, statement about this rollout's id and the
 * hash of its exact content, signature, not the requester, not expired, a role the rule takes, one
 * per approver), stored in `command_approvals` under the rollout's id. A rejection ends the rollout
 * `rejected`; an approval is stored, and once every device of the rollout, judged by the current
 * policy with the approvals that still hold, needs none more, the rollout starts (`running`, the
 * approvals recorded in its outcome) in the same transaction, and its first tick creates
 * executions, each judged again with those approvals. The sweep ends a rollout whose window
 * closed `expired`; an operator's abort ends a waiting one `aborted`.
 */
export interface RolloutApprovalFlowOptions {
  readonly context: ServiceContext;
  readonly policy: Pick<RolloutPolicyPort, 'roleOf'>;
  readonly signingKeys: Pick<SigningKeyStore, 'byKid'>;
  /**
   * Devices of the rollout that would still wait for approvals if it started now with `approvals`
   * (every device judged by the current policy, nothing reserved); throws when the rollout's
   * content no longer matches what was approved (its release changed or was revoked).
   */
  readonly stillWaiting: (rollout: StoredRollout, approvals: readonly PolicyActor[], nowMs: number) => Promise<number>;
  /** Runs the first tick of a rollout that just started. */
  readonly started: (rolloutId: string) => Promise<void>;
}

/** A decision on a rollout as submitted (POST /v1/rollouts/{id}/approve|reject). */
export interface RolloutDecisionSubmission extends DecisionSubmission {
  readonly rolloutId: string;
}

/** A stored decision as the rollout's view shows it. */
export interface RolloutDecisionView {
  readonly approver: string; readonly decision: string; readonly role: string; readonly kid: string; readonly at_ms: number; readonly expires_at_ms: number; readonly reason?: string;
}

/** Thrown inside a transaction when the rollout was no longer waiting: rolls it back. */
class NoLongerPending extends Error {}

/** Releases tried for one submission while approvals change under it (bounded, as for commands). */
const startAttemptsMax = 3;

export class RolloutApprovalFlow {
  readonly #ctx: ServiceContext;
  readonly #o: RolloutApprovalFlowOptions;
  readonly #repository: ApprovalRepository;

  constructor(options: RolloutApprovalFlowOptions) {
    this.#ctx = options.context;
    this.#o = options;
    this.#repository = new ApprovalRepository({ db: options.context.db, audit: options.context.audit });
  }

  async decisionsOf(rolloutId: string): Promise<RolloutDecisionView[]> {
    return (await this.#repository.decisionsOf([rolloutId])).map((row) => ({
      approver: row.approver, decision: row.decision, role: row.role, kid: row.kid, at_ms: row.created_at, expires_at_ms: row.expires_at,
      ...(row.reason === null ? {} : { reason: row.reason }),
    }));
  }

  /** Checks and applies one approver's decision; true when it started the rollout. Refusals are typed SdcErrors (docs/errors.md, `approval`). */
  async decide(submission: RolloutDecisionSubmission): Promise<boolean> {
    const nowMs = this.#ctx.clock.nowMs();
    const rollout = await readRollout(this.#ctx.db, submission.rolloutId);
    const approval = requireWaiting(rollout);
    if (nowMs >= approval.subject.expires_at) {
      await this.#end(rollout, approval, { state: 'expired', by: 'system', nowMs }).catch(ignoreNotPending);
      throw new SdcError('OTA_ROLLOUT_APPROVAL_EXPIRED', `rollout ${rollout.id} expired at ${approval.subject.expires_at} while waiting for approvals`, { rolloutId: rollout.id });
    }
    const row = await checkApprovalSubmission(
      { roleOf: (name) => this.#o.policy.roleOf(name), signingKeys: this.#o.signingKeys, ed25519: this.#ctx.ed25519, decisionsOf: (id) => this.#repository.decisionsOf([id]) },
      submission,
      {
        kind: 'rollout', id: rollout.id, sha256: approval.subject_sha256, requestedBy: approval.subject.requested_by, roles: approval.roles,
        expiresAtMs: approval.subject.expires_at, details: { rolloutId: rollout.id },
      },
      nowMs,
    );
    if (row.decision === 'reject') {
      await this.#end(rollout, approval, { state: 'rejected', by: row.approver, nowMs, decision: row });
      return false;
    }
    return this.#approve(rollout, approval, row, nowMs);
  }

  /** Ends a waiting rollout `aborted` at an operator's word (POST /v1/rollouts/{id}/abort); nothing ever ran. */
  async abort(rollout: StoredRollout, actor: string): Promise<void> {
    await this.#end(rollout, requireWaiting(rollout), { state: 'aborted', by: actor, nowMs: this.#ctx.clock.nowMs() });
  }

  /** The sweep's part: ends `expired` every waiting rollout whose approval window closed; how many. */
  async expireDue(): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    let ended = 0;
    for (const id of await pendingApprovalRolloutIds(this.#ctx.db)) {
      const rollout = await readRollout(this.#ctx.db, id);
      const approval = rollout.approval;
      if (rollout.record.status !== 'pending_approval' || approval === null || nowMs < approval.subject.expires_at) continue;
      try {
        await this.#end(rollout, approval, { state: 'expired', by: 'system', nowMs });
        ended += 1;
      } catch (error) {
        ignoreNotPending(error);
      }
    }
    return ended;
  }

  /** Stores the approval; when the approvals that hold now satisfy the policy for every device, starts the rollout in the same transaction. */
  async #approve(rollout: StoredRollout, approval: RolloutApproval, row: ApprovalRow, nowMs: number): Promise<boolean> {
    const audit = decisionAudit(row, 'ota.rollout.approved');
    const earlier = await this.#holding(rollout, approval, nowMs);
    if (await this.#enough(rollout, [...earlier, row], nowMs)) {
      await this.#start(rollout, approval, [...earlier, row], nowMs, row.approver, { row, audit });
      return true;
    }
    await this.#inTransaction(async (tx) => {
      await requirePendingRow(tx, rollout.id);
      await insertDecision(tx, row);
      await this.#ctx.audit.record(tx, audit);
    });
    await this.#ctx.settleAudit();
    // Two approvals submitted at once may each have missed the other: read again after the commit.
    for (let attempt = 1; attempt <= startAttemptsMax; attempt += 1) {
      const now = await this.#holding(rollout, approval, nowMs);
      if (!await this.#enough(rollout, now, nowMs)) return false;
      try {
        await this.#start(rollout, approval, now, nowMs, row.approver);
        return true;
      } catch (error) {
        // The other submission started (or someone ended) it first: this approval is stored and counted.
        if (SdcError.is(error, 'APPROVAL_NOT_PENDING')) return false;
        throw error;
      }
    }
    return false;
  }

  async #enough(rollout: StoredRollout, approvals: readonly ApprovalRow[], nowMs: number): Promise<boolean> {
    return (await this.#o.stillWaiting(rollout, approvals.map((a) => ({ id: a.approver, role: a.role })), nowMs)) === 0;
  }

  /**
   * The rollout's stored approvals that still count, each with its approver's current role: an
   * expired one is left out; one whose approver was removed or demoted out of the rule's roles, or
   * whose key was retired or removed, is dropped (deleted, audited `ota.rollout.approval_dropped`),
   * so its approver may approve again with a current key.
   */
  async #holding(rollout: StoredRollout, approval: RolloutApproval, nowMs: number): Promise<ApprovalRow[]> {
    const stored = (await this.#repository.decisionsOf([rollout.id])).filter((d) => d.decision === 'approve' && d.expires_at > nowMs);
    const holding: ApprovalRow[] = [];
    const drops: Array<{ row: ApprovalRow; reason: string }> = [];
    for (const row of stored) {
      const role = await this.#o.policy.roleOf(row.approver);
      const key = role === undefined ? undefined : await this.#o.signingKeys.byKid(row.kid);
      const judged = judgeApproval(row, approval, { role, key: key === undefined ? undefined : { userName: key.userName, retiredAtMs: key.retiredAtMs } });
      if (typeof judged === 'string') drops.push({ row, reason: judged });
      else holding.push(judged);
    }
    if (drops.length > 0) {
      await this.#inTransaction(async (tx) => {
        await requirePendingRow(tx, rollout.id);
        for (const { row, reason } of drops) {
          const removed = await tx.execute('DELETE FROM command_approvals WHERE command_id = ? AND approver = ? AND kid = ?', [row.command_id, row.approver, row.kid]);
          if (removed.changes !== 1) continue; // another control plane dropped it first, audited there
          await this.#ctx.audit.record(tx, {
            kind: 'ota.rollout.approval_dropped', actor: actors.system, subject: `rollout:${rollout.id}`,
            payload: { approver: row.approver, role: row.role, kid: row.kid, signature: row.signature, reason },
          });
        }
      }).catch(ignoreNotPending);
      await this.#ctx.settleAudit();
      this.#ctx.logger.warn({ rollout_id: rollout.id, dropped: drops.map(({ row, reason }) => ({ approver: row.approver, reason })) }, 'rollout approvals that no longer hold dropped');
    }
    return holding;
  }

  /** Starts the rollout (compare-and-set from pending_approval), with the completing decision when there is one, then its first tick. */
  async #start(rollout: StoredRollout, approval: RolloutApproval, approvals: readonly ApprovalRow[], nowMs: number, by: string, decision?: { row: ApprovalRow; audit: AuditRecord }): Promise<void> {
    const record: RolloutRecord = { ...rollout.record, status: 'running' };
    const outcome: RolloutApproval['outcome'] = {
      state: 'started', at_ms: nowMs, by,
      approvals: approvals.map((a) => ({ approver: a.approver, role: a.role, kid: a.kid, expires_at: a.expires_at, signature: a.signature })),
    };
    await this.#inTransaction(async (tx) => {
      if (decision !== undefined) {
        await requirePendingRow(tx, rollout.id);
        await insertDecision(tx, decision.row);
        await this.#ctx.audit.record(tx, decision.audit);
      }
      if (!await endApprovalWait(tx, rollout.id, record, { ...approval, outcome }, nowMs)) throw new NoLongerPending();
      await this.#ctx.audit.record(tx, {
        kind: 'ota.rollout.started', actor: actors.user(approval.subject.requested_by), subject: `rollout:${rollout.id}`,
        payload: {
          release_id: rollout.releaseId, platform: rollout.platform, devices: rollout.record.waves.flat().length, waves: rollout.record.waves.length,
          subject_sha256: approval.subject_sha256, approvers: approvals.map((a) => a.approver), released_by: by,
        },
      });
    });
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: rollout.id, approvers: approvals.map((a) => a.approver) }, 'rollout approved and started');
    await this.#o.started(rollout.id);
  }

  /** Ends the wait without starting: rejected (with the approver's signed decision), expired or aborted; audited. */
  async #end(rollout: StoredRollout, approval: RolloutApproval, how: { state: 'rejected' | 'expired' | 'aborted'; by: string; nowMs: number; decision?: ApprovalRow }): Promise<void> {
    const code = { rejected: 'OTA_ROLLOUT_APPROVAL_REJECTED', expired: 'OTA_ROLLOUT_APPROVAL_EXPIRED', aborted: undefined }[how.state];
    const outcome: RolloutApproval['outcome'] = { state: how.state, at_ms: how.nowMs, by: how.by, ...(code === undefined ? {} : { code }) };
    const record: RolloutRecord = { ...rollout.record, status: how.state };
    await this.#inTransaction(async (tx) => {
      if (how.decision !== undefined) {
        await requirePendingRow(tx, rollout.id);
        await insertDecision(tx, how.decision);
      }
      if (!await endApprovalWait(tx, rollout.id, record, { ...approval, outcome }, how.nowMs)) throw new NoLongerPending();
      const actor = how.by === 'system' ? actors.system : actors.user(how.by);
      const audit: AuditRecord = how.decision !== undefined
        ? decisionAudit(how.decision, 'ota.rollout.approval_rejected')
        : {
          kind: how.state === 'expired' ? 'ota.rollout.approval_expired' : 'ota.rollout.abort', actor, subject: `rollout:${rollout.id}`,
          payload: { status: how.state, subject_sha256: approval.subject_sha256, expires_at: approval.subject.expires_at, ...(code === undefined ? {} : { code }) },
        };
      await this.#ctx.audit.record(tx, audit);
    });
    await this.#ctx.settleAudit();
    this.#ctx.logger.info({ rollout_id: rollout.id, status: how.state, by: how.by }, 'rollout ended while waiting for approvals');
  }

  async #inTransaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      return await this.#ctx.db.transaction(fn);
    } catch (error) {
      if (error instanceof NoLongerPending) throw new SdcError('APPROVAL_NOT_PENDING', 'the rollout is no longer waiting for approvals');
      throw error;
    }
  }
}

function requireWaiting(rollout: StoredRollout): RolloutApproval {
  const approval = rollout.approval;
  if (rollout.record.status !== 'pending_approval' || approval === null) {
    throw new SdcError('APPROVAL_NOT_PENDING', `rollout ${rollout.id} is ${rollout.record.status}, not waiting for approvals`, { rolloutId: rollout.id, state: rollout.record.status });
  }
  return approval;
}

async function requirePendingRow(tx: SqlExecutor, rolloutId: string): Promise<void> {
  const [row] = await tx.query<{ status: string }>('SELECT status FROM ota_rollouts WHERE id = ?', [rolloutId]);
  if (row === undefined) throw new SdcError('OTA_ROLLOUT_NOT_FOUND', `no rollout ${rolloutId}`, { rolloutId });
  if (row.status !== 'pending_approval') throw new NoLongerPending();
}

function ignoreNotPending(error: unknown): void {
  if (!SdcError.is(error, 'APPROVAL_NOT_PENDING')) throw error;
}

function decisionAudit(row: ApprovalRow, kind: 'ota.rollout.approved' | 'ota.rollout.approval_rejected'): AuditRecord {
  // The signature and what it covers, so the audit log alone shows who decided what.
  return {
    kind, actor: actors.user(row.approver), subject: `rollout:${row.command_id}`,
    payload: { approver: row.approver, role: row.role, kid: row.kid, expires_at: row.expires_at, signature: row.signature, ...(row.reason === null ? {} : { reason: row.reason }) },
  };
}
