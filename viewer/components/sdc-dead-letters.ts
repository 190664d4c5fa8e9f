import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { DeadLetterLoads } from '../dead-letter-loads.js';
import { formatTime } from '../format.js';
import { roleAtLeast } from '../roles.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

export interface DeadLetterRow {
  readonly command_id: string; readonly device_id: string; readonly opcode: string; readonly device_seq: number; readonly created_by: string;
  readonly created_at_ms: number; readonly dead_lettered_at_ms: number; readonly expires_at_ms: number; readonly reason: string | null;
  readonly retries: number; readonly last_retry_at_ms: number | null; readonly last_retry_by: string | null;
}
interface RetryResult { command_id: string; outcome: 'retried' | 'refused'; gateway_id?: string; retries?: number; error?: { code: string; message: string } }

/** One page; the API's retry takes at most 100 ids at once (deadLetterLimits.retryIdsMax). */
export const deadLetterViewLimits = Object.freeze({ pageSize: 100, retryIdsMax: 100 });

/**
 * Dead-lettered commands (docs/api.md, "Dead letters"), fleet-wide or one device's: retry one or
 * the selected ones (the same signed command again; each id answered on its own), or discard one
 * with a reason. A dead letter's execution is unknown, which the view says.
 */
export class SdcDeadLetters extends LightElement {
  static override properties = {
    api: { attribute: false }, userRole: {}, deviceId: {},
    rows: { state: true }, selected: { state: true }, results: { state: true }, error: { state: true }, busy: { state: true },
  };

  declare api: ApiClient;
  declare userRole: Role | undefined;
  declare deviceId: string | undefined;
  declare rows: DeadLetterRow[] | undefined;
  declare selected: ReadonlySet<string>;
  declare results: RetryResult[];
  declare error: ApiError | undefined;
  declare busy: boolean;

  constructor() {
    super();
    this.rows = undefined;
    this.selected = new Set();
    this.results = [];
    this.error = undefined;
    this.busy = false;
    this.userRole = undefined;
    this.deviceId = undefined;
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('deviceId') || changed.has('api')) void this.load();
  }

  /** Reads overlap (on showing, a filter change, after a retry or discard): only the newest one's answer is shown (viewer/dead-letter-loads.ts). */
  readonly #loads = new DeadLetterLoads<{ items: DeadLetterRow[] }>({
    read: () => {
      const device = this.deviceId === undefined ? '' : `&device_id=${encodeURIComponent(this.deviceId)}`;
      return this.api.get<{ items: DeadLetterRow[] }>(`/v1/dead-letters?limit=${deadLetterViewLimits.pageSize}${device}`);
    },
    apply: (page) => {
      this.rows = page.items;
      const listed = new Set(page.items.map((r) => r.command_id));
      this.selected = new Set([...this.selected].filter((id) => listed.has(id)));
      this.error = undefined;
    },
    fail: (error) => { this.error = asApiError(error); },
  });

  async load(): Promise<void> {
    await this.#loads.load();
  }

  #toggle(id: string, on: boolean): void {
    const next = new Set(this.selected);
    if (on) next.add(id); else next.delete(id);
    this.selected = next;
  }

  async #retry(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    this.busy = true;
    try {
      const answer = await this.api.post<{ results: RetryResult[] }>('/v1/dead-letters/retry', { ids: ids.slice(0, deadLetterViewLimits.retryIdsMax) });
      this.results = answer.results;
      this.error = undefined;
      await this.load();
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  async #discard(event: SubmitEvent, row: DeadLetterRow): Promise<void> {
    event.preventDefault();
    const reason = String(new FormData(event.target as HTMLFormElement).get('reason') ?? '').trim();
    if (reason === '') {
      this.error = asApiError(new Error('a discard needs a reason'));
      return;
    }
    this.busy = true;
    try {
      await this.api.post(`/v1/dead-letters/${encodeURIComponent(row.command_id)}/discard`, { reason });
      this.results = [];
      this.error = undefined;
      await this.load();
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  override render() {
    // The device id comes from the link followed, which anyone can write: shown as any device id is.
    const title = this.deviceId === undefined ? 'Dead letters' : `Dead letters of ${v(this.deviceId)}`;
    if (this.rows === undefined) return html`<section><h1>${title}</h1>${this.error ? errorLine(this.error) : html`<p>Loading…</p>`}</section>`;
    const canAct = roleAtLeast(this.userRole, 'operator');
    return html`
      <section aria-labelledby="dlq-title">
        <h1 id="dlq-title">${title}</h1>
        <p>A dead-lettered command's execution is unknown: the device may have run it and only its answer was lost. A retry sends the very same signed command; a device that already has it answers from its journal and never runs it twice.</p>
        ${this.deviceId === undefined ? nothing : html`<p><a href="#/dead-letters">All devices</a></p>`}
        ${errorLine(this.error)}
        ${this.results.length === 0 ? nothing : html`
          <ul class="results" role="status" data-testid="retry-results">${this.results.map((r) => html`
            <li>${v(r.command_id)}: ${r.outcome === 'retried' ? `retried through ${v(r.gateway_id ?? '?')} (${v(r.retries ?? '?')} retries)` : html`refused <code>${v(r.error?.code ?? '')}</code> ${v(r.error?.message ?? '')}`}</li>`)}</ul>`}
        ${this.rows.length === 0 ? html`<p data-testid="dlq-empty">No dead letters.</p>` : html`
          ${canAct ? html`<p><button type="button" ?disabled=${this.busy || this.selected.size === 0} @click=${() => void this.#retry([...this.selected])}>Retry selected (${this.selected.size})</button></p>` : nothing}
          <table data-testid="dead-letters">
            <thead><tr>${canAct ? html`<th scope="col"><span class="visually-hidden">Select</span></th>` : nothing}<th scope="col">Command</th><th scope="col">Device</th><th scope="col">Opcode</th><th scope="col">Dead-lettered</th><th scope="col">Why</th><th scope="col">Retries</th><th scope="col">Expires</th>${canAct ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
            <tbody>${this.rows.map((r) => html`
              <tr data-command=${r.command_id}>
                ${canAct ? html`<td><input type="checkbox" aria-label="Select ${r.command_id}" .checked=${this.selected.has(r.command_id)} @change=${(e: Event) => this.#toggle(r.command_id, (e.target as HTMLInputElement).checked)}></td>` : nothing}
                <th scope="row"><a href="#/commands/${encodeURIComponent(r.command_id)}">${v(r.command_id)}</a></th>
                <td><a href="#/devices/${encodeURIComponent(r.device_id)}">${v(r.device_id)}</a></td><td>${v(r.opcode)}</td>
                <td>${formatTime(r.dead_lettered_at_ms)}</td><td>${v(r.reason ?? '—')}</td>
                <td>${v(r.retries)}${r.last_retry_by ? ` (last by ${v(r.last_retry_by)} at ${formatTime(r.last_retry_at_ms)})` : ''}</td>
                <td>${formatTime(r.expires_at_ms)}</td>
                ${canAct ? html`<td>
                  <button type="button" ?disabled=${this.busy} aria-label="Retry ${r.command_id}" @click=${() => void this.#retry([r.command_id])}>Retry</button>
                  <form class="inline" @submit=${(e: SubmitEvent) => void this.#discard(e, r)}>
                    <label>Reason <input name="reason" required maxlength="512" aria-label="Reason to discard ${r.command_id}"></label>
                    <button type="submit" ?disabled=${this.busy} aria-label="Discard ${r.command_id}">Discard</button>
                  </form></td>` : nothing}
              </tr>`)}</tbody>
          </table>`}
      </section>`;
  }
}

customElements.define('sdc-dead-letters', SdcDeadLetters);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-dead-letters': SdcDeadLetters;
  }
}
