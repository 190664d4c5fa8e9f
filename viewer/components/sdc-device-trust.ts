import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { formatTime } from '../format.js';
import { roleAtLeast } from '../roles.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

/** The API's revocation reasons (trust/revocation.ts, RFC 5280 names); the route refuses any other. */
export const revocationReasons = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const;
/** Pairing token lifetimes offered; the API takes 1 s to 24 h. */
export const pairingTokenTtls = Object.freeze([{ label: '15 minutes', ms: 15 * 60_000 }, { label: '1 hour', ms: 3_600_000 }, { label: '24 hours', ms: 86_400_000 }]);

/**
 * A device's certificate (serial, expiry) and, for admins, the two trust actions: revoke, which
 * asks for a reason and a second, explicit confirmation naming the device (it cannot be undone:
 * the device must pair again), and a one-time pairing token, shown once and forgotten when the
 * view goes (the API stores only its hash and answers `cache-control: no-store`).
 */
export class SdcDeviceTrust extends LightElement {
  static override properties = {
    api: { attribute: false }, deviceId: {}, status: {}, certSerial: {}, certNotAfterMs: { attribute: false }, userRole: {},
    confirming: { state: true }, outcome: { state: true }, token: { state: true }, error: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare deviceId: string;
  declare status: string;
  declare certSerial: string | null;
  declare certNotAfterMs: number | null;
  declare userRole: Role | undefined;
  /** The reason picked, while the confirmation is shown. */
  declare confirming: string | undefined;
  declare outcome: string | undefined;
  declare token: { token: string; expires_at_ms: number } | undefined;
  declare error: ApiError | undefined;
  declare busy: boolean;

  constructor() {
    super();
    this.status = '';
    this.certSerial = null;
    this.certNotAfterMs = null;
    this.userRole = undefined;
    this.confirming = undefined;
    this.outcome = undefined;
    this.token = undefined;
    this.error = undefined;
    this.busy = false;
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    // A token belongs to the device it was made for; another device's page never shows it.
    if (changed.has('deviceId') && changed.get('deviceId') !== undefined) {
      this.token = undefined;
      this.confirming = undefined;
      this.outcome = undefined;
    }
  }

  async #act<T>(work: () => Promise<T>): Promise<T | undefined> {
    this.busy = true;
    this.error = undefined;
    try {
      return await work();
    } catch (error) {
      this.error = asApiError(error);
      return undefined;
    } finally {
      this.busy = false;
    }
  }

  async #revoke(): Promise<void> {
    const reason = this.confirming ?? 'unspecified';
    const answer = await this.#act(() => this.api.post<{ serial: string; crl_number: string }>(`/v1/devices/${encodeURIComponent(this.deviceId)}/revoke`, { reason }));
    this.confirming = undefined;
    if (answer === undefined) return;
    this.outcome = `Revoked certificate ${v(answer.serial)} (${v(reason)}); CRL number ${v(answer.crl_number)}.`;
    this.dispatchEvent(new CustomEvent('device-changed', { bubbles: true }));
  }

  async #pairingToken(form: HTMLFormElement): Promise<void> {
    const ttlMs = Number(new FormData(form).get('ttl'));
    const answer = await this.#act(() => this.api.post<{ token: string; expires_at_ms: number }>(`/v1/devices/${encodeURIComponent(this.deviceId)}/pairing-tokens`, { ttl_ms: ttlMs }));
    if (answer !== undefined) this.token = { token: answer.token, expires_at_ms: answer.expires_at_ms };
  }

  override render() {
    const admin = roleAtLeast(this.userRole, 'admin');
    const revoked = this.status === 'revoked';
    return html`
      <section class="card" aria-labelledby="trust-title" data-testid="device-trust">
        <h2 id="trust-title">Certificate</h2>
        <dl class="facts">
          <div><dt>Serial</dt><dd data-testid="cert-serial">${v(this.certSerial ?? '—')}</dd></div>
          <div><dt>Expires</dt><dd data-testid="cert-expiry">${formatTime(this.certNotAfterMs)}</dd></div>
          <div><dt>Status</dt><dd>${v(this.status)}</dd></div>
        </dl>
        ${!admin ? html`<p class="hint">Revoking and pairing are for admins.</p>` : html`
          ${this.certSerial === null || revoked ? nothing : this.confirming === undefined ? html`
            <form class="inline" @submit=${(e: SubmitEvent) => { e.preventDefault(); this.confirming = String(new FormData(e.target as HTMLFormElement).get('reason')); }}>
              <label>Reason <select name="reason">${revocationReasons.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
              <button type="submit" class="danger" ?disabled=${this.busy}>Revoke certificate…</button>
            </form>` : html`
            <div class="confirm" role="alertdialog" aria-labelledby="revoke-confirm-text" data-testid="revoke-confirm">
              <p id="revoke-confirm-text">Revoke the certificate of <strong>${v(this.deviceId)}</strong> (${v(this.confirming)})? Its sessions close at once and it must pair again; this cannot be undone.</p>
              <button type="button" class="danger" ?disabled=${this.busy} @click=${() => void this.#revoke()}>Yes, revoke ${v(this.deviceId)}</button>
              <button type="button" @click=${() => { this.confirming = undefined; }}>Cancel</button>
            </div>`}
          ${this.outcome ? html`<p role="status" data-testid="revoke-outcome">${this.outcome}</p>` : nothing}
          <h3>Pairing token</h3>
          <form class="inline" @submit=${(e: SubmitEvent) => { e.preventDefault(); void this.#pairingToken(e.target as HTMLFormElement); }}>
            <label>Valid for <select name="ttl">${pairingTokenTtls.map((t) => html`<option value=${t.ms}>${t.label}</option>`)}</select></label>
            <button type="submit" ?disabled=${this.busy}>Create a pairing token</button>
          </form>
          ${this.token === undefined ? nothing : html`
            <div class="token" role="status" data-testid="pairing-token">
              <p>Shown once: copy it now (the server keeps only its hash). Single use, until ${formatTime(this.token.expires_at_ms)}.</p>
              <output aria-label="Pairing token for ${this.deviceId}"><code>${v(this.token.token)}</code></output>
              <button type="button" @click=${() => { this.token = undefined; }}>Hide it</button>
            </div>`}`}
        ${errorLine(this.error)}
      </section>`;
  }
}

customElements.define('sdc-device-trust', SdcDeviceTrust);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-device-trust': SdcDeviceTrust;
  }
}
