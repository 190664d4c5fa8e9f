import { html } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import './sdc-rollouts.js';
import { formatTime } from '../format.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import type { ApprovalSigner } from './sdc-approvals.js';
import { visibleText as v } from '../visible-text.js';

interface ReleaseRow {
  id: string; release_counter: number; version: string; state: string; target_path: string;
  artifact: { length: number; sha256: string } | null; signatures: ReadonlyArray<{ keyid: string; signed_by: string }>;
  created_by: string; created_at_ms: number; updated_at_ms: number;
}

/** The API's ways of saying there is no image repository here: no routes, or routes without one. */
const absentCodes: ReadonlySet<string> = new Set(['API_NOT_FOUND', 'OTA_REPOSITORY_NOT_INITIALISED']);

/**
 * OTA releases, read-only (docs/ota.md, "Releases"): each with its state and what was signed. The
 * release routes exist only where `sdc ota init` created the image repository; elsewhere the API
 * answers API_NOT_FOUND, which the view says in words. Creating, signing and publishing stay with
 * `sdc release` (signing needs the release signers' offline keys).
 */
export class SdcReleases extends LightElement {
  static override properties = {
    api: { attribute: false }, userRole: {}, userName: {}, signer: { attribute: false }, releases: { state: true }, error: { state: true }, absent: { state: true },
  };

  declare api: ApiClient;
  declare userRole: Role | undefined;
  /** Who is logged in and their approval signing key (from the Approvals view), for deciding on rollouts that wait for approvals. */
  declare userName: string;
  declare signer: ApprovalSigner | undefined;
  declare releases: ReleaseRow[] | undefined;
  declare error: ApiError | undefined;
  declare absent: boolean;

  constructor() {
    super();
    this.releases = undefined;
    this.error = undefined;
    this.absent = false;
    this.userRole = undefined;
    this.userName = '';
    this.signer = undefined;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
  }

  async load(): Promise<void> {
    try {
      this.releases = (await this.api.get<{ items: ReleaseRow[] }>('/v1/releases')).items;
      this.error = undefined;
    } catch (error) {
      const refusal = asApiError(error);
      this.absent = absentCodes.has(refusal.code);
      this.error = this.absent ? undefined : refusal;
    }
  }

  override render() {
    if (this.absent) return html`<section><h1>OTA releases</h1><p data-testid="ota-absent">This control plane has no image repository (<code>sdc ota init</code> creates one).</p></section>`;
    if (this.releases === undefined) return html`<section><h1>OTA releases</h1>${this.error ? errorLine(this.error) : html`<p>Loading…</p>`}</section>`;
    return html`
      <section aria-labelledby="releases-title">
        <h1 id="releases-title">OTA releases</h1>
        ${errorLine(this.error)}
        ${this.releases.length === 0 ? html`<p>No releases yet.</p>` : html`
          <div class="table-scroll"><table data-testid="releases">
            <thead><tr><th scope="col">Release</th><th scope="col">Counter</th><th scope="col">Version</th><th scope="col">State</th><th scope="col">Artifact</th><th scope="col">Signed by</th><th scope="col">Created</th><th scope="col">Updated</th></tr></thead>
            <tbody>${this.releases.map((r) => html`
              <tr data-release=${r.id}>
                <th scope="row">${v(r.id)}</th><td>${v(r.release_counter)}</td><td>${v(r.version)}</td>
                <td><span class="state state-${r.state}">${v(r.state)}</span></td>
                <td>${r.artifact === null ? '—' : html`${v(r.target_path)}, ${v(r.artifact.length)} bytes, sha256 <code title=${r.artifact.sha256}>${v(r.artifact.sha256.slice(0, 12))}…</code>`}</td>
                <td>${r.signatures.length === 0 ? '—' : r.signatures.map((s) => v(s.signed_by)).join(', ')}</td>
                <td>${formatTime(r.created_at_ms)} by ${v(r.created_by)}</td><td>${formatTime(r.updated_at_ms)}</td>
              </tr>`)}</tbody>
          </table></div>`}
        <sdc-rollouts .api=${this.api} .userRole=${this.userRole} .userName=${this.userName} .signer=${this.signer}></sdc-rollouts>
      </section>`;
  }
}

customElements.define('sdc-releases', SdcReleases);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-releases': SdcReleases;
  }
}
