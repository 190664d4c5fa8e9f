import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { compareByRisk, formatAgo, riskBand, riskText } from '../format.js';
import { FleetRecheck } from '../fleet-recheck.js';
import type { LiveEvent } from '../live.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

export interface DeviceRow {
  readonly id: string;
  readonly status: string;
  readonly online: boolean;
  readonly last_seen_at_ms: number | null;
  readonly gateway_id: string | null;
  readonly cert_not_after_ms: number | null;
  readonly tags?: readonly string[];
  readonly agent_version?: string | null;
  /** The newest telemetry sample's risk score (0..100); null before any telemetry. */
  readonly risk_score?: number | null;
}

export type ComplianceState = 'compliant' | 'warning' | 'non_compliant' | 'unknown';
/** The states GET /v1/compliance lists devices in; a device in none of them is unknown (nothing reported yet). */
const listedComplianceStates = ['non_compliant', 'warning', 'compliant'] as const;
interface ComplianceSummary { counts: Record<ComplianceState, number>; items: Array<{ device_id: string }>; next_cursor: string | null }

/** Pages of 500 read for the fleet; beyond this many devices the view says it shows the first ones. */
export const fleetLimits = Object.freeze({ pageSize: 500, pagesMax: 20 });

/** Presence events kept during one read of the fleet: one per device, at most this many devices. */
const heldPresenceMax = 10_000;

/** Every device with presence, kept live by `presence` events; counts at the top; filter by text and presence. */
export class SdcFleet extends LightElement {
  static override properties = {
    api: { attribute: false }, liveBus: { attribute: false },
    devices: { state: true }, error: { state: true }, filterText: { state: true }, presence: { state: true }, truncated: { state: true }, nowMs: { state: true },
    compliance: { state: true }, complianceCounts: { state: true }, tag: { state: true }, sortBy: { state: true }, riskAtLeast: { state: true },
  };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare devices: ReadonlyMap<string, DeviceRow> | undefined;
  declare error: ApiError | undefined;
  declare filterText: string;
  declare presence: 'all' | 'online' | 'offline';
  declare truncated: boolean;
  declare nowMs: number;
  declare compliance: ReadonlyMap<string, ComplianceState>;
  declare complianceCounts: Record<ComplianceState, number> | undefined;
  declare tag: string;
  declare sortBy: 'id' | 'risk';
  /** Only devices scoring at least this (0: every device, scored or not). */
  declare riskAtLeast: number;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #loadsInFlight = 0;
  /** Reads numbered as they start; a read that ends after a later one was shown is older news and not shown. */
  #readsStarted = 0;
  #readShown = 0;
  /** Reads the list again while a row is offline with its session on record (fleet-recheck.ts says why). */
  readonly #recheck = new FleetRecheck({ rows: () => this.devices?.values() ?? [], reread: () => void this.load() });
  /** The latest presence event per device seen during a read (bounded: the oldest goes first). */
  readonly #heldPresence = new Map<string, Extract<LiveEvent, { type: 'presence' }>>();
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
    this.compliance = new Map();
    this.complianceCounts = undefined;
    this.tag = '';
    this.sortBy = 'id';
    this.riskAtLeast = 0;
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
    this.#recheck.stop();
  }

  async load(): Promise<void> {
    // Presence events that arrive while the lists are read are kept and applied on top, so a
    // device that went offline during the read is not shown online from the older answer.
    this.#loadsInFlight += 1;
    const read = ++this.#readsStarted;
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
      // Both before either is shown, so a row never flickers from unknown to its state.
      const compliance = await this.#readCompliance();
      // The first read (connected) and the one at the stream's open overlap; under load the first
      // can end last, and its older rows would hide a change made before the stream opened.
      if (read < this.#readShown) return;
      this.#readShown = read;
      this.compliance = compliance.states;
      this.complianceCounts = compliance.counts;
      this.truncated = cursor !== null;
      this.devices = devices;
      this.error = undefined;
      this.#replayHeldPresence();
      this.#recheck.afterRead();
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.#loadsInFlight -= 1;
      if (this.#loadsInFlight === 0) this.#heldPresence.clear();
    }
  }

  #replayHeldPresence(): void {
    for (const event of this.#heldPresence.values()) this.#apply(event, false);
  }

  /**
   * Each device's compliance state, from the fleet summary: one page (at most 500) per listed state.
   * A device beyond a page shows unknown; the counts above stay exact.
   */
  async #readCompliance(): Promise<{ states: ReadonlyMap<string, ComplianceState>; counts: Record<ComplianceState, number> | undefined }> {
    const pages = await Promise.all(listedComplianceStates.map((state) => this.api.get<ComplianceSummary>(`/v1/compliance?state=${state}&limit=${fleetLimits.pageSize}`)));
    const states = new Map<string, ComplianceState>();
    pages.forEach((page, index) => { for (const item of page.items) states.set(item.device_id, listedComplianceStates[index]!); });
    return { states, counts: pages[0]?.counts };
  }

  #apply(event: LiveEvent, hold = true): void {
    if (event.type !== 'presence') return;
    if (hold && this.#loadsInFlight > 0) {
      this.#heldPresence.delete(event.device_id);
      this.#heldPresence.set(event.device_id, event);
      if (this.#heldPresence.size > heldPresenceMax) this.#heldPresence.delete(this.#heldPresence.keys().next().value!);
    }
    if (this.devices === undefined) return;
    const known = this.devices.get(event.device_id);
    if (known === undefined) {
      // A device we have not listed yet (paired since): read the list again; not from a replay,
      // which comes after a read that did not list it.
      if (hold) void this.load();
      return;
    }
    const next = new Map(this.devices);
    next.set(event.device_id, { ...known, online: event.online, gateway_id: event.online ? event.gateway_id : null, last_seen_at_ms: Math.max(known.last_seen_at_ms ?? 0, event.at_ms) });
    this.devices = next;
  }

  #visible(rows: readonly DeviceRow[]): DeviceRow[] {
    const text = this.filterText.trim().toLowerCase();
    const shown = rows.filter((d) => (this.presence === 'all' || (this.presence === 'online') === d.online)
      && (this.riskAtLeast === 0 || (d.risk_score ?? -1) >= this.riskAtLeast)
      && (this.tag === '' || (d.tags ?? []).includes(this.tag))
      && (text === '' || (d.tags ?? []).some((tag) => tag.includes(text)) || d.id.toLowerCase().includes(text) || d.status.toLowerCase().includes(text) || (d.gateway_id ?? '').toLowerCase().includes(text)));
    return this.sortBy === 'risk' ? shown.sort(compareByRisk) : shown;
  }

  override render() {
    if (this.devices === undefined) return html`<section aria-busy="true"><h1>Fleet</h1>${this.error ? errorLine(this.error) : html`<p>Loading devices…</p>`}</section>`;
    const all = [...this.devices.values()];
    const online = all.filter((d) => d.online).length;
    const rows = this.#visible(all);
    const knownTags = [...new Set(all.flatMap((d) => d.tags ?? []))].sort();
    const counts = this.complianceCounts;
    return html`
      <section aria-labelledby="fleet-title">
        <h1 id="fleet-title">Fleet</h1>
        <dl class="counts" data-testid="fleet-counts">
          <div><dt>Devices</dt><dd data-testid="count-total">${all.length}</dd></div>
          <div><dt>Online</dt><dd data-testid="count-online">${online}</dd></div>
          <div><dt>Offline</dt><dd data-testid="count-offline">${all.length - online}</dd></div>
          ${counts === undefined ? nothing : html`
            <div><dt>Compliant</dt><dd data-testid="count-compliant">${counts.compliant}</dd></div>
            <div><dt>Warning</dt><dd>${counts.warning}</dd></div>
            <div><dt>Non-compliant</dt><dd data-testid="count-non-compliant">${counts.non_compliant}</dd></div>
            <div><dt>Not reported</dt><dd>${counts.unknown}</dd></div>`}
        </dl>
        ${errorLine(this.error)}
        ${this.truncated ? html`<p class="notice">Showing the first ${all.length} devices.</p>` : nothing}
        <div class="filters" role="search">
          <label>Filter <input type="search" .value=${this.filterText} @input=${(e: InputEvent) => { this.filterText = (e.target as HTMLInputElement).value; }} placeholder="id, status, gateway or tag"></label>
          <label>Tag
            <select aria-label="Filter by tag" @change=${(e: Event) => { this.tag = (e.target as HTMLSelectElement).value; }}>
              <option value="">any</option>${knownTags.map((tag) => html`<option value=${tag} ?selected=${tag === this.tag}>${v(tag)}</option>`)}
            </select>
          </label>
          <label>Presence
            <select @change=${(e: Event) => { this.presence = (e.target as HTMLSelectElement).value as SdcFleet['presence']; }}>
              <option value="all">all</option><option value="online">online</option><option value="offline">offline</option>
            </select>
          </label>
          <label>Risk
            <select aria-label="Minimum risk score" data-testid="risk-filter" @change=${(e: Event) => { this.riskAtLeast = Number((e.target as HTMLSelectElement).value); }}>
              <option value="0">any</option><option value="50">50 or more</option><option value="80">80 or more</option>
            </select>
          </label>
          <label>Sort
            <select aria-label="Sort devices" data-testid="fleet-sort" @change=${(e: Event) => { this.sortBy = (e.target as HTMLSelectElement).value as SdcFleet['sortBy']; }}>
              <option value="id">by id</option><option value="risk">highest risk first</option>
            </select>
          </label>
        </div>
        <!-- The table scrolls sideways in its own box on a phone; the page does not widen. -->
        <div class="table-scroll fleet-scroll" role="region" aria-label="Devices table" tabindex="0" data-testid="fleet-scroll">
        <table class="devices">
          <caption class="visually-hidden">Devices, ${rows.length} shown</caption>
          <thead><tr><th scope="col">Device</th><th scope="col">Presence</th><th scope="col">Status</th><th scope="col">Compliance</th><th scope="col" aria-sort=${this.sortBy === 'risk' ? 'descending' : 'none'}>Risk</th><th scope="col">Tags</th><th scope="col">Agent</th><th scope="col">Last seen</th><th scope="col">Gateway</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            ${rows.map((d) => html`
              <tr data-device=${d.id}>
                <th scope="row"><a href="#/devices/${encodeURIComponent(d.id)}">${v(d.id)}</a></th>
                <td><span class="presence ${d.online ? 'online' : 'offline'}" data-testid="presence">${d.online ? 'online' : 'offline'}</span></td>
                <td>${v(d.status)}</td>
                <td><span class="compliance compliance-${this.compliance.get(d.id) ?? 'unknown'}" data-testid="compliance">${v((this.compliance.get(d.id) ?? 'unknown').replace('_', '-'))}</span></td>
                <td><span class="risk risk-${riskBand(d.risk_score)}" data-testid="risk">${riskText(d.risk_score)}</span></td>
                <td>${(d.tags ?? []).map((tag) => html`<span class="tag">${v(tag)}</span> `)}</td>
                <td>${v(d.agent_version ?? '—')}</td>
                <td>${formatAgo(d.last_seen_at_ms, this.nowMs)}</td>
                <td>${v(d.gateway_id ?? '—')}</td>
                <td><a href="#/compose?device=${encodeURIComponent(d.id)}" aria-label="Send a command to ${d.id}">Command…</a></td>
              </tr>`)}
          </tbody>
        </table>
        </div>
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
