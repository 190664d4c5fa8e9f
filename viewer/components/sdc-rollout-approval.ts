import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { rolloutApprovalRequestBody, type PendingRollout } from '../approval-signing.js';
import { formatTime } from '../format.js';
import {
  rolloutApprovalNeeds, rolloutApprovalOutcomeText, rolloutApprovalsHolding, rolloutDecisionAccess, rolloutDecisionResultText, rolloutDecisionText, rolloutSubjectText,
} from '../rollout-approval.js';
import { visibleText } from '../visible-text.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import type { ApprovalSigner } from './sdc-approvals.js';

/** What `rollout-decided` carries: the rollout as the server answered the decision, and what it did in words. */
export interface RolloutDecided {
  readonly rollout: PendingRollout;
  readonly text: string;
}

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
export class SdcRolloutApproval extends LightElement {
  static override properties = {
    api: { attribute: false }, rollout: { attribute: false }, userRole: {}, userName: {}, signer: { attribute: false },
    decided: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare rollout: PendingRollout;
  declare userRole: Role | undefined;
  declare userName: string;
  /** The approver's signing key, registered in the Approvals view and held by the app in page memory. */
  declare signer: ApprovalSigner | undefined;
  /**
   * What the last approval or rejection did, in words, or its refusal (with its code), for the
   * rollout it was about (the element may be handed another rollout by a list that changed).
   */
  declare decided: { rolloutId: string; text: string; error?: undefined } | { rolloutId: string; error: ApiError } | undefined;
  declare busy: boolean;

  constructor() {
    super();
    this.userRole = undefined;
    this.userName = '';
    this.signer = undefined;
    this.decided = undefined;
    this.busy = false;
  }

  /** Signs and sends one approver's decision (POST /v1/rollouts/{id}/approve|reject); a refusal, the page's or the server's, shows with its code. */
  async #decide(rollout: PendingRollout, decision: 'approve' | 'reject', reason?: string): Promise<void> {
    const signer = this.signer;
    if (signer === undefined) return;
    this.busy = true;
    this.decided = undefined;
    try {
      const body = rolloutApprovalRequestBody({ rollout, decision, approver: this.userName, kid: signer.kid, key: signer.key, ...(reason === undefined ? {} : { reason }) });
      const answer = await this.api.post<{ started: boolean; rollout: PendingRollout }>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/${decision}`, body);
      const text = rolloutDecisionResultText(rollout.id, decision, answer.started);
      this.decided = { rolloutId: rollout.id, text };
      this.dispatchEvent(new CustomEvent<RolloutDecided>('rollout-decided', { detail: { rollout: answer.rollout, text }, bubbles: true }));
    } catch (error) {
      this.decided = { rolloutId: rollout.id, error: asApiError(error) };
    } finally {
      this.busy = false;
    }
  }

  #reject(event: SubmitEvent, rollout: PendingRollout): void {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.decided = { rolloutId: rollout.id, error: asApiError(new Error('a rejection needs a reason')) };
      return;
    }
    void this.#decide(rollout, 'reject', reason);
  }

  #decisionControls(r: PendingRollout) {
    const canSign = this.signer !== undefined;
    return html`
      ${canSign ? html`<p>Signing with key <code>${this.signer!.kid}</code>, over the content above (its hash recomputed in this page).</p>`
        : html`<p data-testid="rollout-approval-no-key">To approve or reject, create or import your signing key in <a href="#/approvals">Approvals</a> first.</p>`}
      <div class="actions">
        <button type="button" ?disabled=${!canSign || this.busy} aria-label="Approve rollout ${r.id}" @click=${() => void this.#decide(r, 'approve')}>Approve</button>
        <form class="inline" @submit=${(e: SubmitEvent) => this.#reject(e, r)}>
          <label>Reason <input name="reason" required maxlength="1024" aria-label="Reason to reject rollout ${r.id}"></label>
          <button type="submit" class="danger" ?disabled=${!canSign || this.busy} aria-label="Reject rollout ${r.id}">Reject</button>
        </form>
      </div>`;
  }

  override render() {
    const r = this.rollout;
    const approval = r?.approval;
    if (approval === undefined || approval === null) return nothing;
    const nowMs = Date.now();
    const ended = rolloutApprovalOutcomeText(approval);
    const access = rolloutDecisionAccess(r, this.userName, this.userRole);
    const decided = this.decided?.rolloutId === r.id ? this.decided : undefined;
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
        ${decided === undefined ? nothing : decided.error !== undefined ? html`<div data-testid="rollout-approval-refusal">${errorLine(decided.error)}</div>`
          : html`<p role="status" data-testid="rollout-approval-result">${decided.text}</p>`}
        ${access.may ? this.#decisionControls(r) : access.why === undefined ? nothing : html`<p data-testid="rollout-approval-why">${access.why}</p>`}
      </div>`;
  }
}

customElements.define('sdc-rollout-approval', SdcRolloutApproval);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-rollout-approval': SdcRolloutApproval;
  }
}
