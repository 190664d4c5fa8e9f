import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { artifactDownloadBytesMax, artifactFileName, artifactListPath, artifactRow, type ArtifactRecord } from '../artifacts.js';
import { roleAtLeast } from '../roles.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

/**
 * Artifacts asked of devices (docs/artifacts.md): id, device, kind, state, size, the sealed
 * upload's SHA-256 and when it was asked, newest first (GET /v1/artifacts, at most 200), with an
 * optional device filter. Operators and above download one: the control plane checks its digest
 * and binding, decrypts it (audited), and the page saves the bytes under a file name of the
 * device and id. Asking a device for an artifact stays with the composer (EXEC_COLLECT_ARTIFACT).
 */
export class SdcArtifacts extends LightElement {
  static override properties = {
    api: { attribute: false }, userRole: {}, items: { state: true }, error: { state: true }, deviceFilter: { state: true }, busyId: { state: true }, saved: { state: true },
  };

  declare api: ApiClient;
  declare userRole: Role | undefined;
  declare items: ArtifactRecord[] | undefined;
  declare error: ApiError | undefined;
  declare deviceFilter: string;
  declare busyId: string | undefined;
  declare saved: string | undefined;

  constructor() {
    super();
    this.items = undefined;
    this.error = undefined;
    this.deviceFilter = '';
    this.busyId = undefined;
    this.saved = undefined;
    this.userRole = undefined;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
  }

  async load(): Promise<void> {
    try {
      this.items = (await this.api.get<{ items: ArtifactRecord[] }>(artifactListPath(this.deviceFilter))).items;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async download(record: ArtifactRecord): Promise<void> {
    this.busyId = record.id;
    try {
      const { bytes } = await this.api.getBytes(`/v1/artifacts/${encodeURIComponent(record.id)}`, artifactDownloadBytesMax);
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      const anchor = document.createElement('a');
      anchor.href = url;
      anchor.download = artifactFileName(record);
      anchor.click();
      // After the click has started the save: the object URL holds the bytes until it is revoked.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this.saved = `${anchor.download} (${bytes.length} bytes)`;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busyId = undefined;
    }
  }

  override render() {
    const canDownload = roleAtLeast(this.userRole, 'operator');
    return html`
      <section aria-labelledby="artifacts-title">
        <h1 id="artifacts-title">Artifacts</h1>
        <form @submit=${(event: Event) => { event.preventDefault(); void this.load(); }}>
          <label>Device <input name="device" .value=${this.deviceFilter} placeholder="all devices" @input=${(event: Event) => { this.deviceFilter = (event.target as HTMLInputElement).value; }}></label>
          <button type="submit">Show</button>
        </form>
        ${errorLine(this.error)}
        ${this.saved === undefined ? nothing : html`<p role="status" data-testid="artifact-saved">Saved ${this.saved}</p>`}
        ${this.items === undefined ? html`<p>Loading…</p>` : this.items.length === 0 ? html`<p>No artifacts yet (<code>sdc artifact request</code> asks a device for one).</p>` : html`
          <div class="whole-words"><table data-testid="artifacts">
            <thead><tr><th scope="col">Artifact</th><th scope="col">Device</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">Size</th><th scope="col">SHA-256 (sealed)</th><th scope="col">Asked</th>${canDownload ? html`<th scope="col">Download</th>` : nothing}</tr></thead>
            <tbody>${this.items.map((record) => {
              const row = artifactRow(record);
              return html`
              <tr data-artifact=${row.id}>
                <th scope="row">${v(row.id)}</th><td><a href="#/devices/${encodeURIComponent(row.deviceId)}">${v(row.deviceId)}</a></td><td>${v(row.kind)}</td>
                <td><span class="state state-${row.state}">${v(row.state)}</span></td><td>${row.size}</td>
                <td>${row.digestFull === '' ? row.digest : html`<code title=${row.digestFull}>${v(row.digest)}</code>`}</td><td>${row.created}</td>
                ${canDownload ? html`<td>${row.downloadable
                  ? html`<button type="button" ?disabled=${this.busyId !== undefined} @click=${() => { void this.download(record); }} aria-label="Download ${row.id}">${this.busyId === row.id ? 'Downloading…' : 'Download'}</button>`
                  : '—'}</td>` : nothing}
              </tr>`;
            })}</tbody>
          </table></div>`}
      </section>`;
  }
}

customElements.define('sdc-artifacts', SdcArtifacts);
