import { html, nothing } from 'lit';
import { rolloutResumeRequestBody } from '../approval-signing.js';
import { formatTime } from '../format.js';
import { rolloutApprovalNeeds } from '../rollout-approval.js';
import {
  resumeDecisionAccess, resumeDecisionResultText, resumeOutcomeText, resumeStopText, type ResumableRollout,
} from '../rollout-resume.js';
import { rolloutDecisionText } from '../rollout-approval.js';
import { visibleText } from '../visible-text.js';
import type { ApprovalSigner } from './sdc-approvals.js';
import { SignedDecisionPanel, type DecidedRollout, type DecisionWords } from './signed-decision-panel.js';

/** What `rollout-resume-decided` carries: the rollout as the server answered the decision, and what it did in words. */
export type RolloutResumeDecided = DecidedRollout<ResumableRollout>;

/**
 * A rollout's request to resume past a safety stop (decision 0019), the one panel both the
 * rollout's card in Releases and the Approvals inbox show: who asked and why, the stop it waives
 * (the wave, the pause, the figures), what the rule needs, each decision, until when, how it ended.
 * An approver or admin who did not ask, with a signing key registered in the Approvals view,
 * approves or rejects here: the subject is checked against the rollout and request shown and its
 * hash recomputed before the page signs (viewer/approval-signing.ts). A refusal shows here with its
 * code; a decision taken fires `rollout-resume-decided` (bubbling) with the server's answer.
 */
export class SdcRolloutResume extends SignedDecisionPanel<ResumableRollout> {
  protected override readonly words: DecisionWords = {
    decidedEvent: 'rollout-resume-decided', testIdPrefix: 'rollout-resume', signedOver: 'the stop above', approve: 'Approve resume', reject: 'Reject resume',
    subject: (rolloutId) => `resuming rollout ${rolloutId}`,
  };

  /** A decision is about the request shown: the rollout may carry another one by the time the answer comes. */
  protected override subjectId(rollout: ResumableRollout): string {
    return rollout.resume_request?.id ?? '';
  }

  protected override async send(rollout: ResumableRollout, decision: 'approve' | 'reject', signer: ApprovalSigner, reason?: string): Promise<RolloutResumeDecided> {
    const body = rolloutResumeRequestBody({ rollout, decision, approver: this.userName, kid: signer.kid, key: signer.key, ...(reason === undefined ? {} : { reason }) });
    const answer = await this.api.post<{ resumed: boolean; rollout: ResumableRollout }>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/resume-request/${decision}`, body);
    const text = resumeDecisionResultText(rollout.id, decision, answer.resumed);
    return { rollout: answer.rollout, text };
  }

  override render() {
    const r = this.rollout;
    const request = r?.resume_request;
    if (request === undefined || request === null) return nothing;
    const nowMs = Date.now();
    const ended = resumeOutcomeText(request);
    const access = resumeDecisionAccess(r, this.userName, this.userRole);
    const holding = request.decisions.filter((d) => d.decision === 'approve' && d.expires_at_ms > nowMs).length;
    return html`
      <div class="card" data-testid="rollout-resume">
        <h4>${request.waiting ? 'Resume waiting for approvals' : 'Last resume request'}</h4>
        <dl class="facts">
          <div><dt>Asked by</dt><dd data-testid="rollout-resume-requester">${visibleText(request.subject.requested_by)} at ${formatTime(request.subject.requested_at)}: ${visibleText(request.subject.reason)}</dd></div>
          <div><dt>Waives</dt><dd data-testid="rollout-resume-stop">${resumeStopText(request.subject)}</dd></div>
          <div><dt>Needs</dt><dd>${rolloutApprovalNeeds(request)}</dd></div>
          <div><dt>Approved</dt><dd data-testid="rollout-resume-count">${holding} of ${visibleText(request.count)}</dd></div>
          <div><dt>Decisions</dt><dd data-testid="rollout-resume-decisions">${request.decisions.length === 0 ? 'none yet'
            : html`<ul>${request.decisions.map((d) => html`<li>${rolloutDecisionText(d, nowMs)}</li>`)}</ul>`}</dd></div>
          <div><dt>Approvals until</dt><dd>${formatTime(request.expires_at_ms)}</dd></div>
          ${ended === undefined ? nothing : html`<div><dt>Outcome</dt><dd data-testid="rollout-resume-outcome">${ended}</dd></div>`}
          <div><dt>Signed</dt><dd>request <code>${visibleText(request.id)}</code>, subject sha256 <code>${visibleText(request.subject_sha256)}</code></dd></div>
        </dl>
        ${this.decisionPart(r, access)}
      </div>`;
  }
}

customElements.define('sdc-rollout-resume', SdcRolloutResume);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-rollout-resume': SdcRolloutResume;
  }
}
