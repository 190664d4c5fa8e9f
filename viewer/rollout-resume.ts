import type { RolloutResumeSubject } from '../core/ota/rollout-resume-approval.js';
import type { Role } from './api.js';
import { formatTime } from './format.js';
import { roleAtLeast } from './roles.js';
import { visibleText as v } from './visible-text.js';

/**
 * The console's reading of a resume past a safety stop (decision 0019, docs/ota.md "Resuming after
 * a safety stop"): whether the person looking may resume, must ask approvers, or may not; the
 * waiting request in words (who asked, why, the stop it waives); whether they may decide it. Pure,
 * tested in Node; the signing is viewer/approval-signing.ts's, the server judges everything again.
 */

/** `GET /v1/rollouts/{id}/resume-authority` (server/ota/rollout-routes.ts). */
export interface ResumeAuthorityView {
  readonly status: string;
  readonly safety_stop: null | 'error_threshold' | 'success_threshold_not_met';
  readonly verdict: 'allowed' | 'approval_required' | 'denied' | 'not_paused';
  readonly code?: string;
  readonly message?: string;
}

/** A rollout's `resume_request` block: the latest request to resume past a safety stop with approvals, waiting or ended. */
export interface ResumeRequestView {
  readonly id: string;
  readonly rule_id: string; readonly count: number; readonly roles: readonly string[]; readonly policy_revision: number; readonly expires_at_ms: number;
  readonly waiting: boolean;
  readonly subject: RolloutResumeSubject;
  readonly subject_sha256: string;
  readonly decisions: ReadonlyArray<{ readonly approver: string; readonly decision: string; readonly role: string; readonly kid: string; readonly at_ms: number; readonly expires_at_ms: number; readonly reason?: string }>;
  readonly outcome: null | { readonly state: string; readonly at_ms: number; readonly by: string; readonly code?: string; readonly why?: string; readonly approvers?: readonly string[] };
}

/** A rollout as far as its resume request needs it. */
export interface ResumableRollout {
  readonly id: string; readonly release_id: string; readonly status: string; readonly wave_index: number;
  readonly resume_request?: ResumeRequestView | null;
}

/**
 * What a paused rollout's card offers the person looking, from the server's word on their
 * authority: `resume` (the policy lets them), `request` (approvers must agree: ask them), `pending`
 * (a request waits: its panel shows), `none` (not an operator, denied, or the answer not in yet:
 * no button that would only be refused).
 */
export type ResumeOffer = 'resume' | 'request' | 'pending' | 'none';

export function resumeOffer(rollout: ResumableRollout, role: Role | undefined, authority: ResumeAuthorityView | undefined): ResumeOffer {
  if (rollout.status !== 'paused' || !roleAtLeast(role, 'operator')) return 'none';
  if (rollout.resume_request?.waiting === true) return 'pending';
  if (authority === undefined) return 'none';
  if (authority.verdict === 'allowed') return 'resume';
  if (authority.verdict === 'approval_required') return 'request';
  return 'none';
}

const stopText: Readonly<Record<string, string>> = {
  error_threshold: 'its error threshold was crossed', success_threshold_not_met: 'it ended below its success threshold',
};

/** The stop a request waives, in one line: "wave 1: its error threshold was crossed (2 of 3 executed failed; at most 0% of at least 1)". */
export function resumeStopText(subject: RolloutResumeSubject): string {
  const s = subject.wave_stats;
  const figures = `${v(s.failed)} of ${v(s.executed)} executed failed, ${v(s.succeeded)} of ${v(s.size)} succeeded`;
  const bar = subject.safety_stop === 'error_threshold'
    ? `at most ${v(subject.error_threshold.failed_percent_max)}% failed of at least ${v(subject.error_threshold.executed_min)}`
    : `at least ${v(subject.success_threshold.succeeded_min)} and ${v(subject.success_threshold.succeeded_percent_min)}% succeeded`;
  return `wave ${v(subject.wave + 1)}: ${stopText[subject.safety_stop] ?? v(subject.safety_stop)} (${figures}; ${bar})`;
}

/** How the request ended, or undefined while it waits. */
export function resumeOutcomeText(request: ResumeRequestView): string | undefined {
  const outcome = request.outcome;
  if (outcome === null) return undefined;
  const at = formatTime(outcome.at_ms);
  const code = outcome.code === undefined ? '' : ` (${v(outcome.code)})`;
  switch (outcome.state) {
    case 'resumed': return `resumed at ${at}${outcome.approvers === undefined || outcome.approvers.length === 0 ? '' : ` with the approvals of ${outcome.approvers.map(v).join(', ')}`}`;
    case 'rejected': return `rejected at ${at} by ${v(outcome.by)}${code}; the rollout stays paused`;
    case 'expired': return `expired at ${at} without enough approvals${code}; the rollout stays paused`;
    case 'stale': return `ended at ${at}: the stop changed since it was asked${outcome.why === undefined ? '' : ` (${v(outcome.why)})`}${code}; ask again`;
    case 'superseded': return `ended at ${at}: ${v(outcome.by)} resumed the rollout, needing no approvals`;
    case 'aborted': return `ended at ${at}: ${v(outcome.by)} aborted the rollout`;
    case 'denied': return `ended at ${at}: the policy no longer allows the resume${code}`;
    default: return `${v(outcome.state)} at ${at} by ${v(outcome.by)}${code}`;
  }
}

/** Whether the person looking may approve or reject the waiting request, and if not why (the server judges again). */
export function resumeDecisionAccess(rollout: ResumableRollout, userName: string, role: Role | undefined): { readonly may: true } | { readonly may: false; readonly why: string | undefined } {
  const request = rollout.resume_request;
  if (request === undefined || request === null || !request.waiting || rollout.status !== 'paused') return { may: false, why: undefined };
  if (!roleAtLeast(role, 'approver')) return { may: false, why: 'Approvers and admins decide on it.' };
  if (request.subject.requested_by === userName) return { may: false, why: 'You asked for this resume; another approver decides.' };
  const own = request.decisions.find((d) => d.approver === userName);
  if (own !== undefined) return { may: false, why: `You decided already: ${v(own.decision)} at ${formatTime(own.at_ms)}.` };
  return { may: true };
}

/** What an approver's decision did, as the server answered it. */
export function resumeDecisionResultText(rolloutId: string, decision: 'approve' | 'reject', resumed: boolean): string {
  return decision === 'reject' ? `Rejected the resume of rollout ${v(rolloutId)}: it stays paused.`
    : resumed ? `Approved the resume of rollout ${v(rolloutId)}: it runs again.` : `Approved the resume of rollout ${v(rolloutId)}: waiting for more approvals.`;
}
