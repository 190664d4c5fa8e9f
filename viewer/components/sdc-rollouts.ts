import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import type { RolloutApprovalView } from '../approval-signing.js';
import { formatTime } from '../format.js';
import { roleAtLeast } from '../roles.js';
import { policyRefusalText, policyRefusedCount, type PolicyRefusalView } from '../rollout-refusal.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import type { ApprovalSigner } from './sdc-approvals.js';
import './sdc-rollout-approval.js';
import type { RolloutDecided } from './sdc-rollout-approval.js';
import './sdc-rollout-resume.js';
import type { RolloutResumeDecided } from './sdc-rollout-resume.js';
import { resumeOffer, type ResumeAuthorityView, type ResumeOffer, type ResumeRequestView } from '../rollout-resume.js';
import { visibleText as v } from '../visible-text.js';

interface RolloutView {
  id: string; release_id: string; status: 'pending_approval' | 'running' | 'paused' | 'completed' | 'aborted' | 'rejected' | 'expired';
  pause_reason: null | 'error_threshold' | 'success_threshold_not_met' | 'operator'; wave_index: number;
  waves: Array<{ devices: string[]; size: number; started: number; succeeded: number; failed: number; terminal: number }>;
  executions: Array<{
    id: string; device_id: string; wave: number; state: string; created_at_ms: number; ended_at_ms: number | null; last_error_code: string | null;
    /** Set when the command policy kept the device out: canceled, never notified (server/ota/rollout-routes.ts). */
    policy_refusal?: PolicyRefusalView;
  }>;
  created_by: string; created_at_ms: number; updated_at_ms: number;
  /** Set when the policy required approvals (docs/ota.md "Rollouts that need approvals"); null or absent otherwise. */
  approval?: RolloutApprovalView | null;
  /** The latest request to resume past a safety stop with approvals (decision 0019); null or absent when none was asked. */
  resume_request?: ResumeRequestView | null;
}

type Action = 'pause' | 'resume' | 'abort' | 'emergency-abort';

/**
 * Which actions the API takes in which status (server/ota/rollout-routes.ts); the server judges
 * again. Resume only when the policy lets this operator resume now (`offer`, from
 * `GET /v1/rollouts/{id}/resume-authority`): past a safety stop that is a start's authority
 * (decision 0019); otherwise the card offers a resume request, or nothing.
 */
export function rolloutActions(status: RolloutView['status'], role: Role | undefined, offer: ResumeOffer = 'none'): Action[] {
  if (!roleAtLeast(role, 'operator') || status === 'completed' || status === 'aborted' || status === 'rejected' || status === 'expired') return [];
  // Waiting for approvals (docs/ota.md "Rollouts that need approvals"): nothing runs, only an abort ends the wait;
  // approvers approve or reject in the rollout's approval panel (signed in the page) or with `sdc rollout approve|reject`.
  if (status === 'pending_approval') return ['abort'];
  const actions: Action[] = [...(status === 'running' ? ['pause' as const] : offer === 'resume' ? ['resume' as const] : []), 'abort'];
  if (roleAtLeast(role, 'admin')) actions.push('emergency-abort');
  return actions;
}

/** How often an in-progress rollout is read again while the view is open. */
export const rolloutPollMs = 2_000;

const actionText: Readonly<Record<Action, string>> = { pause: 'Pause', resume: 'Resume', abort: 'Abort', 'emergency-abort': 'Emergency abort' };
const pauseText: Readonly<Record<string, string>> = {
  error_threshold: 'paused: the wave crossed its error threshold', success_threshold_not_met: 'paused: the wave did not reach its success threshold', operator: 'paused by an operator',
};

/**
 * OTA rollouts (docs/ota.md "Rollouts", `GET /v1/rollouts`): each with its status, waves (size,
 * started, succeeded, failed, terminal; the current one marked) and every device's execution state;
 * pause, resume and abort for operators, emergency abort for admins, the last two after a
 * confirmation naming the rollout. Starting one stays with the CLI and API (it names a fleet and
 * thresholds). Absent (the view says nothing) where the control plane has no image repository.
 *
 * A rollout that needs approvals shows what it waits for (the rule's count and roles, the decisions
 * so far, the expiry, how the wait ended) and what approvers sign (release, artifact hash, devices,
 * waves, rate). An approver with a signing key registered in the Approvals view approves or rejects
 * it here: the subject shown is checked against the rollout shown and its hash recomputed before
 * the page signs (viewer/approval-signing.ts), the same statement as `sdc rollout approve|reject`.
 * That panel is sdc-rollout-approval, the same one the Approvals inbox shows.
 */
export class SdcRollouts extends LightElement {
  static override properties = {
    api: { attribute: false }, userRole: {}, userName: {}, signer: { attribute: false },
    rollouts: { state: true }, error: { state: true }, confirming: { state: true }, busy: { state: true }, authority: { state: true }, asked: { state: true },
  };

  declare api: ApiClient;
  declare userRole: Role | undefined;
  declare userName: string;
  /** The approver's signing key, registered in the Approvals view and held by the app in page memory. */
  declare signer: ApprovalSigner | undefined;
  declare rollouts: RolloutView[] | undefined;
  declare error: ApiError | undefined;
  /** `rollout id action` awaiting its confirmation (abort and emergency abort). */
  declare confirming: string | undefined;
  declare busy: boolean;
  /** Per paused rollout, the server's word on whether this operator may resume it (GET /v1/rollouts/{id}/resume-authority). */
  declare authority: ReadonlyMap<string, ResumeAuthorityView>;
  /** The rollout whose "Request resume" form is open. */
  declare asked: string | undefined;

  constructor() {
    super();
    this.userRole = undefined;
    this.userName = '';
    this.signer = undefined;
    this.rollouts = undefined;
    this.error = undefined;
    this.confirming = undefined;
    this.busy = false;
    this.authority = new Map();
    this.asked = undefined;
  }

  #poller: ReturnType<typeof setInterval> | undefined;

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
    // No rollout events on the live stream yet: while a rollout is in progress its waves and
    // device states are read again every few seconds (one small request), so they move on screen;
    // a rollout waiting for approvals too, so other approvers' decisions and its end show.
    this.#poller = setInterval(() => {
      if (!this.busy && (this.rollouts ?? []).some((r) => r.status === 'running' || r.status === 'paused' || r.status === 'pending_approval')) void this.load();
    }, rolloutPollMs);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.#poller);
  }

  async load(): Promise<void> {
    try {
      this.rollouts = (await this.api.get<{ items: RolloutView[] }>('/v1/rollouts?limit=50')).items;
      this.error = undefined;
      await this.#loadAuthority(this.rollouts);
    } catch (error) {
      const refusal = asApiError(error);
      // No image repository (or no rollout routes in this build): the releases view already says so.
      if (refusal.code === 'OTA_REPOSITORY_NOT_INITIALISED' || refusal.code === 'API_NOT_FOUND') this.rollouts = undefined;
      else this.error = refusal;
    }
  }

  /**
   * Asks the server, for each paused rollout, whether this operator may resume it: the policy
   * decides (a start's authority past a safety stop), so the Resume button shows only when the
   * resume would be taken. A failed question leaves no button (the server would judge anyway).
   */
  async #loadAuthority(rollouts: readonly RolloutView[]): Promise<void> {
    if (!roleAtLeast(this.userRole, 'operator')) return;
    const paused = rollouts.filter((r) => r.status === 'paused');
    const answers = await Promise.all(paused.map(async (r) => {
      try {
        return [r.id, await this.api.get<ResumeAuthorityView>(`/v1/rollouts/${encodeURIComponent(r.id)}/resume-authority`)] as const;
      } catch {
        return undefined;
      }
    }));
    this.authority = new Map(answers.filter((a) => a !== undefined));
  }

  /** Asks approvers to resume a rollout past its safety stop (POST /v1/rollouts/{id}/resume-request), with the reason typed. */
  async #requestResume(event: SubmitEvent, rollout: RolloutView): Promise<void> {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.error = asApiError(new Error('a resume request needs a reason'));
      return;
    }
    this.busy = true;
    this.error = undefined;
    try {
      this.#replace(await this.api.post<RolloutView>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/resume-request`, { reason }));
      this.asked = undefined;
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  #resumeRequestForm(r: RolloutView, authority: ResumeAuthorityView | undefined) {
    if (this.asked !== r.id) {
      return html`<p data-testid="rollout-resume-needs-approval">${v(authority?.message ?? 'Resuming past this safety stop needs approvals.')}</p>
        <button type="button" ?disabled=${this.busy} @click=${() => { this.asked = r.id; }}>Request resume<span class="visually-hidden"> of rollout ${r.id}</span></button>`;
    }
    return html`<form class="inline" data-testid="rollout-resume-request" @submit=${(e: SubmitEvent) => void this.#requestResume(e, r)}>
      <label>Why should approvers waive this stop? <input name="reason" required maxlength="1024" aria-label="Reason to resume rollout ${r.id}"></label>
      <button type="submit" ?disabled=${this.busy}>Send resume request</button>
      <button type="button" @click=${() => { this.asked = undefined; }}>Cancel</button>
    </form>`;
  }

  async #act(rollout: RolloutView, action: Action): Promise<void> {
    if ((action === 'abort' || action === 'emergency-abort') && this.confirming !== `${rollout.id} ${action}`) {
      this.confirming = `${rollout.id} ${action}`;
      return;
    }
    this.confirming = undefined;
    this.busy = true;
    this.error = undefined;
    try {
      this.#replace(await this.api.post<RolloutView>(`/v1/rollouts/${encodeURIComponent(rollout.id)}/${action}`, {}));
      // A pause makes a paused rollout whose Resume depends on the policy's word: ask it now, not at the next poll.
      await this.#loadAuthority(this.rollouts ?? []);
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  /** A rollout as the server last answered for it, in place in the list. */
  #replace(updated: RolloutView): void {
    this.rollouts = (this.rollouts ?? []).map((r) => (r.id === updated.id ? updated : r));
  }

  /** The Error cell: a policy refusal in words with its code, else the last error code. */
  #errorCell(e: RolloutView['executions'][number]) {
    if (e.policy_refusal !== undefined) {
      return html`<span data-testid="policy-refusal"><code>${v(e.policy_refusal.code)}</code> ${policyRefusalText(e.policy_refusal)}</span>`;
    }
    return e.last_error_code ? html`<code>${v(e.last_error_code)}</code>` : '—';
  }

  #rollout(r: RolloutView) {
    const refused = policyRefusedCount(r.executions);
    const authority = this.authority.get(r.id);
    const offer = resumeOffer(r, this.userRole, authority);
    const actions = rolloutActions(r.status, this.userRole, offer);
    const confirmingAction = this.confirming?.startsWith(`${r.id} `) ? this.confirming.slice(r.id.length + 1) as Action : undefined;
    return html`
      <article class="card" data-rollout=${r.id} aria-labelledby="rollout-${r.id}">
        <h3 id="rollout-${r.id}">${v(r.release_id)} <small><code>${v(r.id)}</code></small>
          <span class="state state-${r.status}" data-testid="rollout-status">${v(r.status)}</span></h3>
        <p>${r.pause_reason ? html`<span class="notice">${pauseText[r.pause_reason] ?? v(r.pause_reason)}</span>; ` : nothing}wave ${r.wave_index + 1} of ${r.waves.length};
          started ${formatTime(r.created_at_ms)} by ${v(r.created_by)}, updated ${formatTime(r.updated_at_ms)}${refused === 0 ? nothing : html`;
          <span class="notice" data-testid="rollout-policy-refused">${refused} device${refused === 1 ? '' : 's'} refused by the command policy, not notified (see Devices)</span>`}</p>
        <div class="table-scroll"><table data-testid="rollout-waves"><caption>Waves</caption>
          <thead><tr><th scope="col">Wave</th><th scope="col">Devices</th><th scope="col">Started</th><th scope="col">Succeeded</th><th scope="col">Failed</th><th scope="col">Finished</th></tr></thead>
          <tbody>${r.waves.map((w, i) => html`<tr aria-current=${i === r.wave_index ? 'step' : 'false'}>
            <th scope="row">${i + 1}${i === r.wave_index ? ' (current)' : ''}</th><td>${v(w.size)}</td><td>${v(w.started)}</td><td>${v(w.succeeded)}</td><td>${v(w.failed)}</td><td>${v(w.terminal)}</td></tr>`)}</tbody>
        </table></div>
        <details><summary>Devices (${r.executions.length})</summary>
          <div class="table-scroll"><table class="rollout-devices" data-testid="rollout-devices">
            <thead><tr><th scope="col">Device</th><th scope="col">Wave</th><th scope="col">State</th><th scope="col">Error</th><th scope="col">Ended</th></tr></thead>
            <tbody>${r.executions.map((e) => html`<tr data-device=${e.device_id}><th scope="row">${v(e.device_id)}</th><td>${e.wave + 1}</td>
              <td><span class="state state-${e.state}">${v(e.state)}</span></td><td class="reason">${this.#errorCell(e)}</td><td>${formatTime(e.ended_at_ms)}</td></tr>`)}</tbody>
          </table></div>
        </details>
        <sdc-rollout-approval .api=${this.api} .rollout=${r} .userRole=${this.userRole} .userName=${this.userName} .signer=${this.signer}
          @rollout-decided=${(e: CustomEvent<RolloutDecided>) => this.#replace(e.detail.rollout as unknown as RolloutView)}></sdc-rollout-approval>
        <sdc-rollout-resume .api=${this.api} .rollout=${r} .userRole=${this.userRole} .userName=${this.userName} .signer=${this.signer}
          @rollout-resume-decided=${(e: CustomEvent<RolloutResumeDecided>) => { this.#replace(e.detail.rollout as unknown as RolloutView); void this.load(); }}></sdc-rollout-resume>
        ${offer === 'request' ? this.#resumeRequestForm(r, authority) : nothing}
        ${actions.length === 0 ? nothing : html`<div class="actions">${actions.map((a) => html`
          <button type="button" class=${a === 'pause' || a === 'resume' ? '' : 'danger'} ?disabled=${this.busy} @click=${() => void this.#act(r, a)}>${actionText[a]}<span class="visually-hidden"> rollout ${r.id}</span></button>`)}</div>`}
        ${confirmingAction === undefined ? nothing : html`
          <div class="confirm" role="alertdialog" aria-labelledby="confirm-${r.id}" data-testid="rollout-confirm">
            <p id="confirm-${r.id}">${actionText[confirmingAction]} the rollout of ${v(r.release_id)}? ${confirmingAction === 'abort' ? 'No further device is notified; queued executions are canceled.' : 'Every execution in flight is canceled, rolled back after commit.'}</p>
            <button type="button" class="danger" @click=${() => void this.#act(r, confirmingAction)}>Yes, ${actionText[confirmingAction].toLowerCase()}</button>
            <button type="button" @click=${() => { this.confirming = undefined; }}>Cancel</button>
          </div>`}
      </article>`;
  }

  override render() {
    if (this.rollouts === undefined && this.error === undefined) return nothing;
    return html`
      <section aria-labelledby="rollouts-title" data-testid="rollouts">
        <h2 id="rollouts-title">Rollouts</h2>
        ${errorLine(this.error)}
        ${this.rollouts === undefined ? nothing : this.rollouts.length === 0 ? html`<p>No rollouts yet (<code>POST /v1/rollouts</code> starts one).</p>` : this.rollouts.map((r) => this.#rollout(r))}
      </section>`;
  }
}

customElements.define('sdc-rollouts', SdcRollouts);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-rollouts': SdcRollouts;
  }
}
