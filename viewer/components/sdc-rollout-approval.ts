import { html, nothing } from 'lit';
import { rolloutApprovalRequestBody, type PendingRollout } from '../approval-signing.js';
import { formatTime } from '../format.js';
import {
  rolloutApprovalNeeds, rolloutApprovalOutcomeText, rolloutApprovalsHolding, rolloutDecisionAccess, rolloutDecisionResultText, rolloutDecisionText, rolloutSubjectText,
} from '../rollout-approval.js';
import { visibleText } from '../visible-text.js';
import type { ApprovalSigner } from './sdc-approvals.js';
import { SignedDecisionPanel, type DecidedRollout, type DecisionWords } from './signed-decision-panel.js';

/** What `rollout-decided` carries: the rollout as the server answered the decision, and what it did in words. */
export type RolloutDecided = DecidedRollout<PendingRollout>;

/**
 * One rollout's approval panel (docs/ota.md "Rollouts that need approvals"), the one place both
 * the rollout's card in Releases and the Approvals inbox show it: what it waits (or waited) for
 * (the rule's count and roles, approvals holding of how many, each decision, the window's end, how
 * the wait ended) and what approvers sign (release, artifact hash, devices, waves, rate, requester).
 * An approver or admin who is not the requester, with a signing key registered in the Approvals
 * view, approves or rejects here: the subject shown is checked against the rollout shown and its
 * hash recomputed before the page signs (viewer/approval-signing.ts), the statement
 * `sdc rollout approve|reject` signs. A refusal, the page's or the server's, shows here with its
 * code (the rollout stays as the server holds it); a decision taken fires `rollout-decided`
 * (bubbling) with the server's answer, for the view holding the list.
 */
export class SdcRolloutApproval extends SignedDecisionPanel<PendingRollout> {
  protected override readonly words: DecisionWords = {
    decidedEvent: 'rollout-decided', testIdPrefix: 'rollout-approval', signedOver: 'the content above', approve: 'Approve', reject: 'Reject',
    subject: (rolloutId) => `rollout ${rolloutId}`,
  };

  protected override subjectId(rollout: PendingRollout): string {
    return rollout.id;
  }

  /** POST /v1/rollouts/{id}/approve|reject with the statement `sdc rollout approve|reject` signs. */
  protected override async send(rollout: PendingRollout, decision: 'approve' | 'reject', signer: ApprovalSigner, reason?: string): Promise<RolloutDecided> {
    const body = rolloutApprovalRequestBody({ rollout, decision, approver: this.userName, kid: signer.kid, key: signer.key, ...(reason === undefined ? {} : { reason }) });
    const answer = await this.api.post<{ started: boolean; rollout: PendingRollout }>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/${decision}`, body);
    const text = rolloutDecisionResultText(rollout.id, decision, answer.started);
    return { rollout: answer.rollout, text };
  }

  override render() {
    const r = this.rollout;
    const approval = r?.approval;
    if (approval === undefined || approval === null) return nothing;
    const nowMs = Date.now();
    const ended = rolloutApprovalOutcomeText(approval);
    const access = rolloutDecisionAccess(r, this.userName, this.userRole);
    return html`
      <div class="card" data-testid="rollout-approval">
        <h4>Approvals</h4>
        <dl class="facts">
          <div><dt>Needs</dt><dd data-testid="rollout-approval-needs">${rolloutApprovalNeeds(approval)}</dd></div>
          <div><dt>Approved</dt><dd data-testid="rollout-approval-count">${rolloutApprovalsHolding(approval, nowMs)} of ${visibleText(approval.count)}</dd></div>
          <div><dt>Decisions</dt><dd data-testid="rollout-approval-decisions">${approval.decisions.length === 0 ? 'none yet'
            : html`<ul>${approval.decisions.map((d) => html`<li>${rolloutDecisionText(d, nowMs)}</li>`)}</ul>`}</dd></div>
          <div><dt>Approvals until</dt><dd data-testid="rollout-approval-expires">${formatTime(approval.expires_at_ms)}</dd></div>
          ${ended === undefined ? nothing : html`<div><dt>Outcome</dt><dd data-testid="rollout-approval-outcome">${ended}</dd></div>`}
          <div><dt>Signed</dt><dd>${rolloutSubjectText(approval.subject)}; subject sha256 <code>${visibleText(approval.subject_sha256)}</code></dd></div>
        </dl>
        ${this.decisionPart(r, access)}
      </div>`;
  }
}

customElements.define('sdc-rollout-approval', SdcRolloutApproval);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-rollout-approval': SdcRolloutApproval;
  }
}
