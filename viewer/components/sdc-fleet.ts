import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { formatAgo } from '../format.js';
import type { LiveEvent } from '../live.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';

export interface DeviceRow {
  readonly id: string;
  readonly status: string;
  readonly online: boolean;
  readonly last_seen_at_ms: number | null;
  readonly gateway_id: string | null;
  readonly cert_not_after_ms: number | null;
}

/** Pages of 500 read for the fleet; beyond this many devices the view says it shows the first ones. */
export const fleetLimits = Object.freeze({ pageSize: 500, pagesMax: 20 });

/** Every device with presence, kept live by `presence` events; counts at the top; filter by text and presence. */
export class SdcFleet extends LightElement {
  static override properties = {
    api: { attribute: false }, liveBus: { attribute: false },
    devices: { state: true }, error: { state: true }, filterText: { state: true }, presence: { state: true }, truncated: { state: true }, nowMs: { state: true },
  };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare devices: ReadonlyMap<string, DeviceRow> | undefined;
  declare error: ApiError | undefined;
  declare filterText: string;
  declare presence: 'all' | 'online' | 'offline';
  declare truncated: boolean;
  declare nowMs: number;
  #ticker: ReturnType<typeof setInterval> | undefined;
  readonly #onLive = (event: Event) => this.#apply((event as CustomEvent<LiveEvent>).detail);
  readonly #onResync = () => void this.load();

  constructor() {
    super();
    this.devices = undefined;
    this.error = undefined;
    this.filterText = '';
    this.presence = 'all';
    this.truncated = false;
    this.nowMs = Date.now();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.liveBus.addEventListener('live', this.#onLive);
    this.liveBus.addEventListener('resync', this.#onResync);
    // "Last seen" is relative: redraw it now and then, not on every event.
    this.#ticker = setInterval(() => { this.nowMs = Date.now(); }, 5_000);
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.liveBus.removeEventListener('live', this.#onLive);
    this.liveBus.removeEventListener('resync', this.#onResync);
    clearInterval(this.#ticker);
  }

  async load(): Promise<void> {
    try {
      const devices = new Map<string, DeviceRow>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const page: { items: DeviceRow[]; next_cursor: string | null } = await this.api.get(`/v1/devices?limit=${fleetLimits.pageSize}${query}`);
        for (const device of page.items) devices.set(device.id, device);
        cursor = page.next_cursor;
        pages += 1;
      } while (cursor !== null && pages < fleetLimits.pagesMax);
      this.truncated = cursor !== null;
      this.devices = devices;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  #apply(event: LiveEvent): void {
    if (event.type !== 'presence' || this.devices === undefined) return;
    const known = this.devices.get(event.device_id);
    if (known === undefined) {
      // A device we have not listed yet (paired since): read the list again.
      void this.load();
      return;
    }
    const next = new Map(this.devices);
    next.set(event.device_id, { ...known, online: event.online, gateway_id: event.online ? event.gateway_id : null, last_seen_at_ms: Math.max(known.last_seen_at_ms ?? 0, event.at_ms) });
    this.devices = next;
  }

  #visible(rows: readonly DeviceRow[]): DeviceRow[] {
    const text = this.filterText.trim().toLowerCase();
    return rows.filter((d) => (this.presence === 'all' || (this.presence === 'online') === d.online)
      && (text === '' || d.id.toLowerCase().includes(text) || d.status.toLowerCase().includes(text) || (d.gateway_id ?? '').toLowerCase().includes(text)));
  }

  override render() {
    if (this.devices === undefined) return html`<section aria-busy="true"><h1>Fleet</h1>${this.error ? errorLine(this.error) : html`<p>Loading devices…</p>`}</section>`;
    const all = [...this.devices.values()];
    const online = all.filter((d) => d.online).length;
    const rows = this.#visible(all);
    return html`
      <section aria-labelledby="fleet-title">
        <h1 id="fleet-title">Fleet</h1>
        <dl class="counts" data-testid="fleet-counts">
          <div><dt>Devices</dt><dd data-testid="count-total">${all.length}</dd></div>
          <div><dt>Online</dt><dd data-testid="count-online">${online}</dd></div>
          <div><dt>Offline</dt><dd data-testid="count-offline">${all.length - online}</dd></div>
        </dl>
        ${errorLine(this.error)}
        ${this.truncated ? html`<p class="notice">Showing the first ${all.length} devices.</p>` : nothing}
        <div class="filters" role="search">
          <label>Filter <input type="search" .value=${this.filterText} @input=${(e: InputEvent) => { this.filterText = (e.target as HTMLInputElement).value; }} placeholder="id, status or gateway"></label>
          <label>Presence
            <select @change=${(e: Event) => { this.presence = (e.target as HTMLSelectElement).value as SdcFleet['presence']; }}>
              <option value="all">all</option><option value="online">online</option><option value="offline">offline</option>
            </select>
          </label>
        </div>
        <table class="devices">
          <caption class="visually-hidden">Devices, ${rows.length} shown</caption>
          <thead><tr><th scope="col">Device</th><th scope="col">Presence</th><th scope="col">Status</th><th scope="col">Last seen</th><th scope="col">Gateway</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            ${rows.map((d) => html`
              <tr data-device=${d.id}>
                <th scope="row"><a href="#/devices/${encodeURIComponent(d.id)}">${d.id}</a></th>
                <td><span class="presence ${d.online ? 'online' : 'offline'}" data-testid="presence">${d.online ? 'online' : 'offline'}</span></td>
                <td>${d.status}</td>
                <td>${formatAgo(d.last_seen_at_ms, this.nowMs)}</td>
                <td>${d.gateway_id ?? '—'}</td>
                <td><a href="#/compose?device=${encodeURIComponent(d.id)}" aria-label="Send a command to ${d.id}">Command…</a></td>
              </tr>`)}
          </tbody>
        </table>
        ${rows.length === 0 ? html`<p>No device matches.</p>` : nothing}
      </section>`;
  }
}

customElements.define('sdc-fleet', SdcFleet);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-fleet': SdcFleet;
  }
}
