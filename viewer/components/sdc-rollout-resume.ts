import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { rolloutResumeRequestBody } from '../approval-signing.js';
import { formatTime } from '../format.js';
import { rolloutApprovalNeeds } from '../rollout-approval.js';
import {
  resumeDecisionAccess, resumeDecisionResultText, resumeOutcomeText, resumeStopText, type ResumableRollout, type ResumeRequestView,
} from '../rollout-resume.js';
import { rolloutDecisionText } from '../rollout-approval.js';
import { visibleText } from '../visible-text.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import type { ApprovalSigner } from './sdc-approvals.js';

/** What `rollout-resume-decided` carries: the rollout as the server answered the decision, and what it did in words. */
export interface RolloutResumeDecided {
  readonly rollout: ResumableRollout;
  readonly text: string;
}

/**
 * A rollout's request to resume past a safety stop (decision 0019), the one panel both the
 * rollout's card in Releases and the Approvals inbox show: who asked and why, the stop it waives
 * (the wave, the pause, the figures), what the rule needs, each decision, until when, how it ended.
 * An approver or admin who did not ask, with a signing key registered in the Approvals view,
 * approves or rejects here: the subject is checked against the rollout and request shown and its
 * hash recomputed before the page signs (viewer/approval-signing.ts). A refusal shows here with its
 * code; a decision taken fires `rollout-resume-decided` (bubbling) with the server's answer.
 */
export class SdcRolloutResume extends LightElement {
  static override properties = {
    api: { attribute: false }, rollout: { attribute: false }, userRole: {}, userName: {}, signer: { attribute: false },
    decided: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare rollout: ResumableRollout;
  declare userRole: Role | undefined;
  declare userName: string;
  declare signer: ApprovalSigner | undefined;
  /** What the last decision did, or its refusal, for the request it was about (the element may be handed another rollout). */
  declare decided: { requestId: string; text: string; error?: undefined } | { requestId: string; error: ApiError } | undefined;
  declare busy: boolean;

  constructor() {
    super();
    this.userRole = undefined;
    this.userName = '';
    this.signer = undefined;
    this.decided = undefined;
    this.busy = false;
  }

  async #decide(rollout: ResumableRollout, request: ResumeRequestView, decision: 'approve' | 'reject', reason?: string): Promise<void> {
    const signer = this.signer;
    if (signer === undefined) return;
    this.busy = true;
    this.decided = undefined;
    try {
      const body = rolloutResumeRequestBody({ rollout, decision, approver: this.userName, kid: signer.kid, key: signer.key, ...(reason === undefined ? {} : { reason }) });
      const answer = await this.api.post<{ resumed: boolean; rollout: ResumableRollout }>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/resume-request/${decision}`, body);
      const text = resumeDecisionResultText(rollout.id, decision, answer.resumed);
      this.decided = { requestId: request.id, text };
      this.dispatchEvent(new CustomEvent<RolloutResumeDecided>('rollout-resume-decided', { detail: { rollout: answer.rollout, text }, bubbles: true }));
    } catch (error) {
      this.decided = { requestId: request.id, error: asApiError(error) };
    } finally {
      this.busy = false;
    }
  }

  #reject(event: SubmitEvent, rollout: ResumableRollout, request: ResumeRequestView): void {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.decided = { requestId: request.id, error: asApiError(new Error('a rejection needs a reason')) };
      return;
    }
    void this.#decide(rollout, request, 'reject', reason);
  }

  #controls(r: ResumableRollout, request: ResumeRequestView) {
    const canSign = this.signer !== undefined;
    return html`
      ${canSign ? html`<p>Signing with key <code>${this.signer!.kid}</code>, over the stop above (its hash recomputed in this page).</p>`
        : html`<p data-testid="rollout-resume-no-key">To approve or reject, create or import your signing key in <a href="#/approvals">Approvals</a> first.</p>`}
      <div class="actions">
        <button type="button" ?disabled=${!canSign || this.busy} aria-label="Approve resuming rollout ${r.id}" @click=${() => void this.#decide(r, request, 'approve')}>Approve resume</button>
        <form class="inline" @submit=${(e: SubmitEvent) => this.#reject(e, r, request)}>
          <label>Reason <input name="reason" required maxlength="1024" aria-label="Reason to reject resuming rollout ${r.id}"></label>
          <button type="submit" class="danger" ?disabled=${!canSign || this.busy} aria-label="Reject resuming rollout ${r.id}">Reject resume</button>
        </form>
      </div>`;
  }

  override render() {
    const r = this.rollout;
    const request = r?.resume_request;
    if (request === undefined || request === null) return nothing;
    const nowMs = Date.now();
    const ended = resumeOutcomeText(request);
    const access = resumeDecisionAccess(r, this.userName, this.userRole);
    const decided = this.decided?.requestId === request.id ? this.decided : undefined;
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
        ${decided === undefined ? nothing : decided.error !== undefined ? html`<div data-testid="rollout-resume-refusal">${errorLine(decided.error)}</div>`
          : html`<p role="status" data-testid="rollout-resume-result">${decided.text}</p>`}
        ${access.may ? this.#controls(r, request) : access.why === undefined ? nothing : html`<p data-testid="rollout-resume-why">${access.why}</p>`}
      </div>`;
  }
}

customElements.define('sdc-rollout-resume', SdcRolloutResume);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-rollout-resume': SdcRolloutResume;
  }
}
