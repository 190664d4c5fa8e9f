import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { formatTime } from '../format.js';
import type { LiveEvent } from '../live.js';
import { roleAtLeast } from '../roles.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

export interface AlertRow {
  readonly id: string; readonly device_id: string | null; readonly kind: string; readonly severity: string;
  readonly state: 'open' | 'acknowledged'; readonly message: string; readonly created_at_ms: number;
  readonly acknowledged_by: string | null; readonly acknowledged_at_ms: number | null; readonly ack_note: string | null; readonly cleared_at_ms: number | null;
}

/** One page of each list: the open ones are what an operator must see; acknowledged ones are history. */
export const alertListLimits = Object.freeze({ openMax: 200, ackedMax: 50 });

const alertEventTypes: ReadonlySet<string> = new Set(['alert', 'alert_acknowledged', 'alert_cleared']);

/**
 * Alerts, open and acknowledged, kept live: any alert event (raised, acknowledged elsewhere,
 * cleared) reads both lists again, coalesced so a burst of events costs one extra read, not one each.
 * Operators and above acknowledge an open alert with an optional note.
 */
export class SdcAlerts extends LightElement {
  static override properties = {
    api: { attribute: false }, liveBus: { attribute: false }, userRole: {},
    open: { state: true }, acked: { state: true }, error: { state: true }, busyId: { state: true },
  };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare userRole: Role | undefined;
  declare open: AlertRow[] | undefined;
  declare acked: AlertRow[];
  declare error: ApiError | undefined;
  declare busyId: string | undefined;
  #loading: Promise<void> | undefined;
  #again = false;
  readonly #onLive = (event: Event) => {
    if (alertEventTypes.has((event as CustomEvent<LiveEvent>).detail.type)) void this.load();
  };
  readonly #onResync = () => void this.load();

  constructor() {
    super();
    this.open = undefined;
    this.acked = [];
    this.error = undefined;
    this.busyId = undefined;
    this.userRole = undefined;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.liveBus.addEventListener('live', this.#onLive);
    this.liveBus.addEventListener('resync', this.#onResync);
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.liveBus.removeEventListener('live', this.#onLive);
    this.liveBus.removeEventListener('resync', this.#onResync);
  }

  /** One read at a time; a request during it schedules exactly one more. */
  load(): Promise<void> {
    if (this.#loading !== undefined) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = this.#read().finally(() => {
      this.#loading = undefined;
      if (this.#again) {
        this.#again = false;
        void this.load();
      }
    });
    return this.#loading;
  }

  async #read(): Promise<void> {
    try {
      const [open, acked] = await Promise.all([
        this.api.get<{ items: AlertRow[] }>(`/v1/alerts?state=open&limit=${alertListLimits.openMax}`),
        this.api.get<{ items: AlertRow[] }>(`/v1/alerts?state=acked&limit=${alertListLimits.ackedMax}`),
      ]);
      this.open = open.items;
      this.acked = acked.items;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async #acknowledge(event: SubmitEvent, alert: AlertRow): Promise<void> {
    event.preventDefault();
    const note = String(new FormData(event.target as HTMLFormElement).get('note') ?? '').trim();
    this.busyId = alert.id;
    try {
      await this.api.post(`/v1/alerts/${encodeURIComponent(alert.id)}/ack`, note === '' ? {} : { note });
      this.error = undefined;
      await this.load();
    } catch (error) {
      // API_ALERT_ALREADY_ACKED (someone else was first) is shown, and the lists read again.
      this.error = asApiError(error);
      void this.load();
    } finally {
      this.busyId = undefined;
    }
  }

  #device(alert: AlertRow) {
    return alert.device_id === null ? '—' : html`<a href="#/devices/${encodeURIComponent(alert.device_id)}">${v(alert.device_id)}</a>`;
  }

  override render() {
    if (this.open === undefined) return html`<section><h1>Alerts</h1>${this.error ? errorLine(this.error) : html`<p>Loading alerts…</p>`}</section>`;
    const canAck = roleAtLeast(this.userRole, 'operator');
    return html`
      <section aria-labelledby="alerts-title">
        <h1 id="alerts-title">Alerts</h1>
        ${errorLine(this.error)}
        <h2 id="open-alerts">Open <span data-testid="open-alert-count">${this.open.length}</span></h2>
        ${this.open.length === 0 ? html`<p>No open alerts.</p>` : html`
          <table aria-labelledby="open-alerts" data-testid="open-alerts">
            <thead><tr><th scope="col">Raised</th><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">Device</th><th scope="col">Message</th><th scope="col">Condition</th><th scope="col">${canAck ? 'Acknowledge' : html`<span class="visually-hidden">Actions</span>`}</th></tr></thead>
            <tbody>${this.open.map((a) => html`
              <tr data-alert=${a.id}>
                <th scope="row">${formatTime(a.created_at_ms)}</th>
                <td><span class="severity severity-${a.severity}">${v(a.severity)}</span></td>
                <td>${v(a.kind)}</td><td>${this.#device(a)}</td><td>${v(a.message)}</td>
                <td>${a.cleared_at_ms === null ? 'holds' : `over at ${formatTime(a.cleared_at_ms)}`}</td>
                <td>${canAck ? html`
                  <form class="inline" @submit=${(e: SubmitEvent) => void this.#acknowledge(e, a)}>
                    <label>Note <input name="note" maxlength="1024" aria-label="Note for alert ${a.id}"></label>
                    <button type="submit" ?disabled=${this.busyId === a.id} aria-label="Acknowledge alert ${a.id}">Acknowledge</button>
                  </form>` : nothing}</td>
              </tr>`)}</tbody>
          </table>`}
        <h2 id="acked-alerts">Acknowledged (latest ${alertListLimits.ackedMax})</h2>
        ${this.acked.length === 0 ? html`<p>None yet.</p>` : html`
          <table aria-labelledby="acked-alerts" data-testid="acked-alerts">
            <thead><tr><th scope="col">Raised</th><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">Device</th><th scope="col">Message</th><th scope="col">Acknowledged</th><th scope="col">Note</th></tr></thead>
            <tbody>${this.acked.map((a) => html`
              <tr data-alert=${a.id}>
                <th scope="row">${formatTime(a.created_at_ms)}</th>
                <td><span class="severity severity-${a.severity}">${v(a.severity)}</span></td>
                <td>${v(a.kind)}</td><td>${this.#device(a)}</td><td>${v(a.message)}</td>
                <td>by ${v(a.acknowledged_by ?? '?')} at ${formatTime(a.acknowledged_at_ms)}</td><td>${v(a.ack_note ?? '')}</td>
              </tr>`)}</tbody>
          </table>`}
      </section>`;
  }
}

customElements.define('sdc-alerts', SdcAlerts);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-alerts': SdcAlerts;
  }
}
