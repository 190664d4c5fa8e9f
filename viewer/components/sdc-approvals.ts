import { html, nothing } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import type { ApiClient, ApiError, Role } from '../api.js';
import { approvalKeyFromSeed, approvalRequestBody, parseApprovalKey, signingKeyRegistrationBody, type ApprovalKey, type PendingCommand, type PendingRollout } from '../approval-signing.js';
import { formatTime } from '../format.js';
import type { LiveEvent } from '../live.js';
import { roleAtLeast } from '../roles.js';
import { rolloutScopeText } from '../rollout-approval.js';
import { visibleJson, visibleText as v } from '../visible-text.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import './sdc-rollout-approval.js';
import type { RolloutDecided } from './sdc-rollout-approval.js';
import './sdc-rollout-resume.js';
import type { RolloutResumeDecided } from './sdc-rollout-resume.js';
import { resumeStopText, type ResumeRequestView } from '../rollout-resume.js';

/** The approver's registered key in page memory; the app keeps it across views and forgets it at logout. */
export interface ApprovalSigner {
  readonly key: ApprovalKey;
  readonly kid: string;
}

/** One page of pending commands; an approver works the newest first. */
export const approvalsPageSize = 100;

/**
 * How often the inbox reads the rollouts waiting on this approver again while it is open: rollouts
 * have no events on the live stream yet (as the Releases view polls a rollout in progress).
 */
export const approvalsRolloutPollMs = 2_000;

/**
 * The approvals inbox (docs/policy.md "Approvals"; docs/viewer.md "Approvals"): everything waiting
 * on this approver. Commands waiting for approvals with what they ask, and rollouts waiting for
 * approvals that this approver may still decide (`GET /v1/approvals/rollouts`: not their own, not
 * decided by them, their role among the rule's), each in the same approval panel as its card in
 * Releases (sdc-rollout-approval: checked against the rollout and its hash recomputed before
 * signing). Both are approved or rejected with the approver's own Ed25519 key, signed in this page
 * (viewer/approval-signing.ts) over the same statement the CLI signs. The key is created here or
 * imported from the CLI's key file, registered with `PUT /v1/users/me/signing-key` (which sends
 * only the public key and the current password, which any new key needs) and held in
 * page memory: a reload forgets it, as it forgets the token.
 */
export class SdcApprovals extends LightElement {
  static override properties = {
    api: { attribute: false }, liveBus: { attribute: false }, userRole: {}, userName: {},
    signer: { attribute: false }, pending: { state: true }, rollouts: { state: true }, error: { state: true }, outcome: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare userRole: Role | undefined;
  declare userName: string;
  declare pending: PendingCommand[] | undefined;
  /** Rollouts waiting on this approver; empty where the control plane has no image repository. */
  declare rollouts: PendingRollout[] | undefined;
  declare signer: ApprovalSigner | undefined;
  declare error: ApiError | undefined;
  declare outcome: string | undefined;
  declare busy: boolean;
  readonly #onLive = (event: Event) => {
    // A `resync` is a plain Event (no detail): read everything again. Before, it threw reading
    // `detail.type` (a page error at each live-stream (re)connect while this view was open).
    if (event.type === 'resync' || (event as CustomEvent<LiveEvent>).detail?.type === 'command') void this.load();
  };

  constructor() {
    super();
    this.pending = undefined;
    this.rollouts = undefined;
    this.signer = undefined;
    this.error = undefined;
    this.outcome = undefined;
    this.busy = false;
    this.userRole = undefined;
    this.userName = '';
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.liveBus.addEventListener('live', this.#onLive);
    this.liveBus.addEventListener('resync', this.#onLive);
    void this.load();
    void this.loadRollouts();
    this.#poller = setInterval(() => { if (!this.busy) void this.loadRollouts(); }, approvalsRolloutPollMs);
  }

  #poller: ReturnType<typeof setInterval> | undefined;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.liveBus.removeEventListener('live', this.#onLive);
    this.liveBus.removeEventListener('resync', this.#onLive);
    clearInterval(this.#poller);
  }

  async load(): Promise<void> {
    try {
      this.pending = (await this.api.get<{ items: PendingCommand[] }>(`/v1/approvals?limit=${approvalsPageSize}`)).items;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async loadRollouts(): Promise<void> {
    if (!roleAtLeast(this.userRole, 'approver')) return;
    try {
      this.rollouts = (await this.api.get<{ items: PendingRollout[] }>('/v1/approvals/rollouts?limit=50')).items;
    } catch (error) {
      const refusal = asApiError(error);
      // No image repository (or no rollout routes in this build): no rollout waits on anyone.
      if (refusal.code === 'OTA_REPOSITORY_NOT_INITIALISED' || refusal.code === 'API_NOT_FOUND') this.rollouts = [];
      else this.error = refusal;
    }
  }

  /** A decision taken in a rollout's panel: said at the top (the rollout leaves the inbox once decided), and the list read again. */
  #rolloutDecided(event: CustomEvent<RolloutDecided | RolloutResumeDecided>): void {
    this.outcome = event.detail.text;
    this.error = undefined;
    void this.loadRollouts();
  }

  /**
   * A paused rollout whose resume past a safety stop waits for approvals (decision 0019): what it
   * is, who asked and the stop it waives, in the same panel as its card in Releases.
   */
  #resumeCard(r: PendingRollout, request: ResumeRequestView) {
    return html`
      <li class="card" data-rollout=${r.id} data-resume-request=${request.id}>
        <h3>Resume of the rollout of <code>${v(r.release_id)}</code> past a safety stop</h3>
        <dl class="facts">
          <div><dt>Rollout</dt><dd><a href="#/releases">${v(r.id)}</a> (${rolloutScopeText(r.waves)}, started by ${v(r.created_by)})</dd></div>
          <div><dt>Asked by</dt><dd data-testid="approvals-resume-requester">${v(request.subject.requested_by)}</dd></div>
          <div><dt>Stop</dt><dd>${resumeStopText(request.subject)}</dd></div>
        </dl>
        <sdc-rollout-resume .api=${this.api} .rollout=${r} .userRole=${this.userRole} .userName=${this.userName} .signer=${this.signer}
          @rollout-resume-decided=${(e: CustomEvent<RolloutResumeDecided>) => this.#rolloutDecided(e)}></sdc-rollout-resume>
      </li>`;
  }

  /** What the key panel's password field holds, emptied as it is read (it is sent once, if at all). */
  #takePassword(): string {
    const field = this.querySelector<HTMLInputElement>('input[name="current-password"]');
    const value = field?.value ?? '';
    if (field !== null) field.value = '';
    return value;
  }

  async #register(key: ApprovalKey): Promise<void> {
    const currentPassword = this.#takePassword();
    this.busy = true;
    try {
      const answer = await this.api.put<{ kid: string }>('/v1/users/me/signing-key', signingKeyRegistrationBody(key, currentPassword));
      this.signer = { key, kid: answer.kid };
      this.dispatchEvent(new CustomEvent<ApprovalSigner>('signer-changed', { detail: this.signer, bubbles: true }));
      this.error = undefined;
      this.outcome = `Signing key ${answer.kid} registered.`;
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  #create(): void {
    void this.#register(approvalKeyFromSeed(crypto.getRandomValues(new Uint8Array(32))));
  }

  #import(event: SubmitEvent): void {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    try {
      const key = parseApprovalKey(String(new FormData(form).get('key') ?? ''), this.userName);
      form.reset();
      void this.#register(key);
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async #decide(command: PendingCommand, decision: 'approve' | 'reject', reason?: string): Promise<void> {
    const signer = this.signer;
    if (signer === undefined) return;
    this.busy = true;
    try {
      const body = approvalRequestBody({ command, decision, approver: this.userName, kid: signer.kid, key: signer.key, ...(reason === undefined ? {} : { reason }) });
      const answer = await this.api.post<{ released: boolean; command: { state?: string } }>(`/v1/commands/${encodeURIComponent(command.id)}/${decision}`, body);
      this.outcome = decision === 'reject' ? `Rejected ${v(command.id)}.`
        : answer.released ? `Approved ${v(command.id)}: released and queued.` : `Approved ${v(command.id)}: waiting for more approvals.`;
      this.error = undefined;
      await this.load();
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  #reject(event: SubmitEvent, command: PendingCommand): void {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.error = asApiError(new Error('a rejection needs a reason'));
      return;
    }
    void this.#decide(command, 'reject', reason);
  }

  #keyPanel() {
    if (this.signer !== undefined) return html`<p data-testid="approval-key">Signing with key <code>${this.signer.kid}</code> (held in this page only, until you log out or reload).</p>`;
    return html`
      <div class="card" data-testid="approval-key-setup">
        <p>Approvals are signed with your own Ed25519 key, in this page. Create one here (it replaces any key you registered before,
          the CLI's included) or import the CLI's <code>signing-key-${this.userName}.json</code>. Only the public key is sent.
          Registering a key needs your current password.</p>
        <label>Current password (to register the key)
          <input type="password" name="current-password" autocomplete="current-password" data-testid="approval-key-password"></label>
        <button type="button" ?disabled=${this.busy} @click=${() => this.#create()}>Create a signing key</button>
        <form @submit=${(e: SubmitEvent) => this.#import(e)}>
          <label>Key file or seed <textarea name="key" rows="2" autocomplete="off" spellcheck="false"></textarea></label>
          <button type="submit" ?disabled=${this.busy}>Import key</button>
        </form>
      </div>`;
  }

  // Both lists are keyed by id (repeat): they are re-read while the page is open, and a card's
  // half-typed reason or its approval panel must stay with its own item when another leaves.
  override render() {
    if (!roleAtLeast(this.userRole, 'approver')) return html`<section><h1>Approvals</h1><p>Approvals are decided by approvers and admins; you are ${this.userRole ?? 'not logged in'}.</p></section>`;
    const canSign = this.signer !== undefined;
    return html`
      <section aria-labelledby="approvals-title">
        <h1 id="approvals-title">Approvals</h1>
        ${this.#keyPanel()}
        ${errorLine(this.error)}
        ${this.outcome ? html`<p role="status" data-testid="approval-outcome">${this.outcome}</p>` : nothing}
        ${this.pending === undefined ? html`<p>Loading…</p>`
          : this.pending.length === 0 && this.rollouts !== undefined && this.rollouts.length === 0 ? html`<p data-testid="approvals-empty">Nothing waits for approval.</p>` : nothing}
        ${(this.rollouts ?? []).length === 0 ? nothing : html`
          <h2>Rollouts</h2>
          <ul class="approvals" data-testid="approvals-rollouts">${repeat(this.rollouts!, (r) => `${r.id} ${waitingResume(r)?.id ?? 'start'}`, (r) => waitingResume(r) !== undefined ? this.#resumeCard(r, waitingResume(r)!) : html`
            <li class="card" data-rollout=${r.id}>
              <h3>Rollout of <code>${v(r.release_id)}</code> to ${rolloutScopeText(r.waves)}</h3>
              <dl class="facts">
                <div><dt>Rollout</dt><dd><a href="#/releases">${v(r.id)}</a></dd></div>
                <div><dt>Asked by</dt><dd data-testid="approvals-rollout-requester">${v(r.created_by)}</dd></div>
              </dl>
              <sdc-rollout-approval .api=${this.api} .rollout=${r} .userRole=${this.userRole} .userName=${this.userName} .signer=${this.signer}
                @rollout-decided=${(e: CustomEvent<RolloutDecided>) => this.#rolloutDecided(e)}></sdc-rollout-approval>
            </li>`)}</ul>`}
        ${this.pending === undefined || this.pending.length === 0 ? nothing : html`
          ${(this.rollouts ?? []).length === 0 ? nothing : html`<h2>Commands</h2>`}
          <ul class="approvals">${repeat(this.pending, (c) => c.id, (c) => html`
            <li class="card" data-command=${c.id}>
              <h2><code>${v(c.opcode)}</code> on <a href="#/devices/${encodeURIComponent(c.device_id)}">${v(c.device_id)}</a></h2>
              <dl class="facts">
                <div><dt>Command</dt><dd><a href="#/commands/${encodeURIComponent(c.id)}">${v(c.id)}</a></dd></div>
                <div><dt>Asked by</dt><dd data-testid="approvals-command-requester">${v(c.created_by)}</dd></div>
                <div><dt>Expires</dt><dd>${formatTime(c.expires_at_ms)}</dd></div>
                <div><dt>Needs</dt><dd>${v(c.approval?.count ?? '?')} approvals from ${(c.approval?.roles ?? []).map(v).join(', ') || '?'} (rule ${v(c.approval?.rule_id ?? '?')})</dd></div>
                <div><dt>Arguments</dt><dd data-testid="approvals-command-args"><code>${visibleJson(c.args)}</code></dd></div>
                <div><dt>Decisions</dt><dd>${(c.decisions ?? []).length === 0 ? 'none yet' : (c.decisions ?? []).map((d) => `${v(d.decision)} by ${v(d.approver)} (${v(d.role)})`).join('; ')}</dd></div>
              </dl>
              ${c.created_by === this.userName ? html`<p>You asked for this command; another approver decides.</p>` : html`
                <button type="button" ?disabled=${!canSign || this.busy} aria-label="Approve ${c.id}" @click=${() => void this.#decide(c, 'approve')}>Approve</button>
                <form class="inline" @submit=${(e: SubmitEvent) => this.#reject(e, c)}>
                  <label>Reason <input name="reason" required maxlength="1024" aria-label="Reason to reject ${c.id}"></label>
                  <button type="submit" ?disabled=${!canSign || this.busy} aria-label="Reject ${c.id}">Reject</button>
                </form>`}
            </li>`)}</ul>`}
      </section>`;
  }
}

customElements.define('sdc-approvals', SdcApprovals);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-approvals': SdcApprovals;
  }
}

/** The resume request a listed rollout waits on, when it is a paused rollout's resume and not a start (GET /v1/approvals/rollouts lists both). */
function waitingResume(rollout: PendingRollout): ResumeRequestView | undefined {
  const request = (rollout as PendingRollout & { resume_request?: ResumeRequestView | null; wave_index?: number }).resume_request;
  return rollout.status === 'paused' && request !== undefined && request !== null && request.waiting ? request : undefined;
}
