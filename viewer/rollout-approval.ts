import type { RolloutApprovalSubject } from '../core/ota/rollout-approval.js';
import type { Role } from './api.js';
import type { PendingRollout, RolloutApprovalView } from './approval-signing.js';
import { formatTime } from './format.js';
import { roleAtLeast } from './roles.js';
import { visibleText as v } from './visible-text.js';

/**
 * The rollouts view's reading of a rollout's approvals (docs/ota.md "Rollouts that need
 * approvals"; the `approval` block of `GET /v1/rollouts`): what it waits for, the decisions so far,
 * until when, how the wait ended, and whether the person looking may decide. Pure, tested in Node;
 * the signing is viewer/approval-signing.ts's.
 */

/** What the rule asks: "needs 2 approvals from approver or admin (rule r, policy revision 4)". */
export function rolloutApprovalNeeds(approval: Pick<RolloutApprovalView, 'count' | 'roles' | 'rule_id' | 'policy_revision'>): string {
  return `needs ${v(approval.count)} approval${approval.count === 1 ? '' : 's'} from ${approval.roles.map(v).join(' or ') || '?'} (rule ${v(approval.rule_id)}, policy revision ${v(approval.policy_revision)})`;
}

/** Approvals that count now: approve decisions not yet expired (the server drops those that no longer hold). */
export function rolloutApprovalsHolding(approval: RolloutApprovalView, nowMs: number): number {
  return approval.decisions.filter((d) => d.decision === 'approve' && d.expires_at_ms > nowMs).length;
}

/** One decision in words: "approve by ann (admin) at …", an expired approval marked, a rejection with its reason. */
export function rolloutDecisionText(decision: RolloutApprovalView['decisions'][number], nowMs: number): string {
  const expired = decision.decision === 'approve' && decision.expires_at_ms <= nowMs ? ' (expired)' : '';
  const reason = decision.reason === undefined ? '' : `: ${v(decision.reason)}`;
  return `${v(decision.decision)} by ${v(decision.approver)} (${v(decision.role)}) at ${formatTime(decision.at_ms)}${expired}${reason}`;
}

/** How the wait ended, or undefined while it goes on. */
export function rolloutApprovalOutcomeText(approval: RolloutApprovalView): string | undefined {
  const outcome = approval.outcome;
  if (outcome === null) return undefined;
  const code = outcome.code === undefined ? '' : ` (${v(outcome.code)})`;
  const at = formatTime(outcome.at_ms);
  switch (outcome.state) {
    case 'started': return `started at ${at}, released by ${v(outcome.by)}${outcome.approvers === undefined || outcome.approvers.length === 0 ? '' : ` with the approvals of ${outcome.approvers.map(v).join(', ')}`}`;
    case 'rejected': return `rejected at ${at} by ${v(outcome.by)}${code}; nothing was sent`;
    case 'expired': return `expired at ${at} without enough approvals${code}; nothing was sent`;
    case 'aborted': return `aborted at ${at} by ${v(outcome.by)} while waiting; nothing was sent`;
    default: return `${v(outcome.state)} at ${at} by ${v(outcome.by)}${code}`;
  }
}

/** How far a rollout reaches: "3 devices in 2 waves". */
export function rolloutScopeText(waves: ReadonlyArray<{ readonly devices: readonly unknown[] }>): string {
  const devices = waves.reduce((n, wave) => n + wave.devices.length, 0);
  return `${devices} device${devices === 1 ? '' : 's'} in ${waves.length} wave${waves.length === 1 ? '' : 's'}`;
}

/** What an approver's decision did, as the server answered it (`started` when it completed what the policy requires). */
export function rolloutDecisionResultText(rolloutId: string, decision: 'approve' | 'reject', started: boolean): string {
  return decision === 'reject' ? `Rejected rollout ${v(rolloutId)}: nothing sent.`
    : started ? `Approved rollout ${v(rolloutId)}: started, its first devices notified.` : `Approved rollout ${v(rolloutId)}: waiting for more approvals.`;
}

/** What the approver signs, in one line (as `sdc rollout approve` prints it before signing). */
export function rolloutSubjectText(subject: RolloutApprovalSubject): string {
  // The server's own shape (core/ota/rollout-approval.ts); a subject without it is said to be so, not rendered half.
  if (typeof subject !== 'object' || subject === null || typeof subject.target !== 'object' || subject.target === null || !Array.isArray(subject.waves)
    || !subject.waves.every((w) => typeof w === 'object' && w !== null && Array.isArray(w.devices))) {
    return 'the server\'s approval subject is incomplete; it cannot be signed';
  }
  // Shown escaped (viewer/visible-text.ts): the figures an approver signs for cannot be hidden or reordered by the requester's text.
  return `release ${v(subject.release_id)} ${v(subject.target.version)} (${v(subject.target.path)}, ${v(subject.target.length)} bytes, sha256 ${v(subject.target.sha256)}) `
    + `on ${v(subject.platform)}, ${rolloutScopeText(subject.waves)}, `
    + `at most ${v(subject.devices_per_minute_max)}/min, asked by ${v(subject.requested_by)}`;
}

/**
 * Whether the person looking may approve or reject this rollout now, and if not, why (in words;
 * the server judges again and refuses with a code): only a waiting rollout, only approvers and
 * admins, never its requester, and one decision per approver.
 */
export type RolloutDecisionAccess =
  | { readonly may: true }
  | { readonly may: false; readonly why: string | undefined };

export function rolloutDecisionAccess(rollout: PendingRollout, userName: string, role: Role | undefined): RolloutDecisionAccess {
  const approval = rollout.approval;
  if (rollout.status !== 'pending_approval' || approval === undefined || approval === null) return { may: false, why: undefined };
  if (!roleAtLeast(role, 'approver')) return { may: false, why: 'Approvers and admins decide on it.' };
  if (rollout.created_by === userName) return { may: false, why: 'You started this rollout; another approver decides.' };
  const own = approval.decisions.find((d) => d.approver === userName);
  if (own !== undefined) return { may: false, why: `You decided already: ${v(own.decision)} at ${formatTime(own.at_ms)}.` };
  return { may: true };
}
