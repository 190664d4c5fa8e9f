import { html, nothing, type TemplateResult } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import type { ApprovalSigner } from './sdc-approvals.js';

/** What the last decision did, in words, or its refusal (with its code), for the subject it was about. */
export type ShownDecision = { subjectId: string; text: string; error?: undefined } | { subjectId: string; error: ApiError } | undefined;

/** What a decision taken fires (bubbling), for the view holding the list: the rollout as the server answered the decision, and what it did in words. */
export interface DecidedRollout<R> {
  readonly rollout: R;
  readonly text: string;
}

/** The words and test ids that tell one panel's controls from the other's. */
export interface DecisionWords {
  /** `rollout-approval` or `rollout-resume`: the prefix of the panel's data-testids. */
  readonly testIdPrefix: string;
  /** The name of the event a decision taken fires. */
  readonly decidedEvent: string;
  /** What the page signs over, as the key line says it ("the content above"). */
  readonly signedOver: string;
  /** The buttons' labels ("Approve", "Reject"). */
  readonly approve: string;
  readonly reject: string;
  /** What is decided, for the controls' aria-labels ("rollout r-1", "resuming rollout r-1"). */
  readonly subject: (rolloutId: string) => string;
}

/**
 * The part the rollout approval panel (sdc-rollout-approval) and the resume panel
 * (sdc-rollout-resume) share: the same inputs (the API, the rollout, who the user is, the signing
 * key the Approvals view holds in page memory), the sign-and-post step with its busy flag and its
 * refusal shown with the code, the rejection that needs a reason, and the controls under the facts.
 * A panel says what it signs and posts (send; a decision taken fires words.decidedEvent, bubbling), which subject a decision is about (subjectId: the
 * element may be handed another rollout, or the rollout another request, by a list that changed)
 * and its words; the facts it shows stay its own.
 */
export abstract class SignedDecisionPanel<R extends { readonly id: string }> extends LightElement {
  static override properties = {
    api: { attribute: false }, rollout: { attribute: false }, userRole: {}, userName: {}, signer: { attribute: false },
    decided: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare rollout: R;
  declare userRole: Role | undefined;
  declare userName: string;
  /** The approver's signing key, registered in the Approvals view and held by the app in page memory. */
  declare signer: ApprovalSigner | undefined;
  declare decided: ShownDecision;
  declare busy: boolean;

  protected abstract readonly words: DecisionWords;

  /** The subject a decision on this rollout is about (the rollout itself, or its resume request). */
  protected abstract subjectId(rollout: R): string;

  /** Signs the decision with the key and posts it; resolves with the server's answer and what it did in words, or rejects with the refusal. */
  protected abstract send(rollout: R, decision: 'approve' | 'reject', signer: ApprovalSigner, reason?: string): Promise<DecidedRollout<R>>;

  constructor() {
    super();
    this.userRole = undefined;
    this.userName = '';
    this.signer = undefined;
    this.decided = undefined;
    this.busy = false;
  }

  /** Signs and sends one approver's decision; a refusal, the page's or the server's, shows with its code. */
  async #decide(rollout: R, decision: 'approve' | 'reject', reason?: string): Promise<void> {
    const signer = this.signer;
    if (signer === undefined) return;
    const subjectId = this.subjectId(rollout);
    this.busy = true;
    this.decided = undefined;
    try {
      const answered = await this.send(rollout, decision, signer, reason);
      this.decided = { subjectId, text: answered.text };
      this.dispatchEvent(new CustomEvent<DecidedRollout<R>>(this.words.decidedEvent, { detail: answered, bubbles: true }));
    } catch (error) {
      this.decided = { subjectId, error: asApiError(error) };
    } finally {
      this.busy = false;
    }
  }

  #reject(event: SubmitEvent, rollout: R): void {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.decided = { subjectId: this.subjectId(rollout), error: asApiError(new Error('a rejection needs a reason')) };
      return;
    }
    void this.#decide(rollout, 'reject', reason);
  }

  #controls(r: R): TemplateResult {
    const w = this.words;
    const canSign = this.signer !== undefined;
    return html`
      ${canSign ? html`<p>Signing with key <code>${this.signer!.kid}</code>, over ${w.signedOver} (its hash recomputed in this page).</p>`
        : html`<p data-testid="${w.testIdPrefix}-no-key">To approve or reject, create or import your signing key in <a href="#/approvals">Approvals</a> first.</p>`}
      <div class="actions">
        <button type="button" ?disabled=${!canSign || this.busy} aria-label="Approve ${w.subject(r.id)}" @click=${() => void this.#decide(r, 'approve')}>${w.approve}</button>
        <form class="inline" @submit=${(e: SubmitEvent) => this.#reject(e, r)}>
          <label>Reason <input name="reason" required maxlength="1024" aria-label="Reason to reject ${w.subject(r.id)}"></label>
          <button type="submit" class="danger" ?disabled=${!canSign || this.busy} aria-label="Reject ${w.subject(r.id)}">${w.reject}</button>
        </form>
      </div>`;
  }

  /** Under the facts: what the last decision on this subject did (or its refusal), then the controls, or why there are none. */
  protected decisionPart(r: R, access: { readonly may: true } | { readonly may: false; readonly why: string | undefined }): TemplateResult {
    const prefix = this.words.testIdPrefix;
    const decided = this.decided?.subjectId === this.subjectId(r) ? this.decided : undefined;
    return html`
        ${decided === undefined ? nothing : decided.error !== undefined ? html`<div data-testid="${prefix}-refusal">${errorLine(decided.error)}</div>`
          : html`<p role="status" data-testid="${prefix}-result">${decided.text}</p>`}
        ${access.may ? this.#controls(r) : access.why === undefined ? nothing : html`<p data-testid="${prefix}-why">${access.why}</p>`}`;
  }
}
