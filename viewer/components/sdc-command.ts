import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { commandTerminalStates } from '../../core/protocol/command-machine.js';
import { cellText, formatTime, isTable, tableColumns } from '../format.js';
import type { LiveEvent } from '../live.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

interface ResultBody { status?: string; output?: Record<string, unknown>; error?: { code?: string; message?: string } }
interface CommandDetail {
  id: string; device_id: string; opcode: string; args: Record<string, unknown>; state: string; device_seq: number | null;
  created_by: string; created_at_ms: number; expires_at_ms: number; attempts: number;
  history: Array<{ state: string; at_ms: number }>;
  result_frame: { body?: ResultBody } | null;
}

/** Rows of a result table shown at most; the rest is counted, not drawn. */
const resultRowsMax = 500;

/** One command: a live timeline of its states with times, and its result (tables for lists, errors with code and message). */
export class SdcCommand extends LightElement {
  static override properties = { api: { attribute: false }, liveBus: { attribute: false }, commandId: {}, command: { state: true }, error: { state: true } };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare commandId: string;
  declare command: CommandDetail | undefined;
  declare error: ApiError | undefined;
  readonly #onLive = (event: Event) => {
    const live = (event as CustomEvent<LiveEvent>).detail;
    if (live.type === 'command' && live.command_id === this.commandId) void this.load();
  };
  readonly #onResync = () => void this.load();

  constructor() {
    super();
    this.command = undefined;
    this.error = undefined;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.liveBus.addEventListener('live', this.#onLive);
    this.liveBus.addEventListener('resync', this.#onResync);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.liveBus.removeEventListener('live', this.#onLive);
    this.liveBus.removeEventListener('resync', this.#onResync);
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('commandId')) void this.load();
  }

  async load(): Promise<void> {
    try {
      this.command = await this.api.get<CommandDetail>(`/v1/commands/${encodeURIComponent(this.commandId)}`);
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  override render() {
    const c = this.command;
    if (c === undefined) return html`<section><h1>Command ${v(this.commandId)}</h1>${this.error ? errorLine(this.error) : html`<p>Loading…</p>`}</section>`;
    const terminal = commandTerminalStates.includes(c.state as never);
    return html`
      <section aria-labelledby="command-title">
        <h1 id="command-title">${v(c.opcode)} on <a href="#/devices/${encodeURIComponent(c.device_id)}">${v(c.device_id)}</a></h1>
        ${errorLine(this.error)}
        <p>Command <code>${v(c.id)}</code>, ${c.device_seq === null ? 'waiting for approvals (no device seq yet)' : `device seq ${v(c.device_seq)}`}, by ${v(c.created_by)}, expires ${formatTime(c.expires_at_ms)}.
          State: <strong class="state state-${c.state}" data-testid="command-state" aria-live="polite">${v(c.state)}</strong>${terminal ? '' : ' (following live)'}</p>
        <h2>Timeline</h2>
        <ol class="timeline" data-testid="timeline">
          ${c.history.map((h) => html`<li><span class="state state-${h.state}">${v(h.state)}</span> <time datetime=${new Date(h.at_ms).toISOString()}>${formatTime(h.at_ms)}</time></li>`)}
        </ol>
        <h2>Result</h2>
        ${this.#result(c.result_frame?.body)}
      </section>`;
  }

  #result(body: ResultBody | undefined) {
    if (body === undefined) return html`<p>No result yet.</p>`;
    const error = body.error;
    return html`
      <p>Device reported <strong>${v(body.status ?? 'unknown')}</strong>.</p>
      ${error ? html`<p class="error" role="alert" data-testid="result-error"><code>${v(error.code ?? 'UNKNOWN')}</code> ${v(error.message ?? '')}</p>` : nothing}
      ${Object.entries(body.output ?? {}).map(([key, value]) => this.#output(key, value))}`;
  }

  #output(key: string, value: unknown) {
    if (!isTable(value)) return html`<dl class="facts"><div><dt>${v(key)}</dt><dd>${cellText(value)}</dd></div></dl>`;
    const columns = tableColumns(value);
    const rows = value.slice(0, resultRowsMax);
    return html`
      <table class="result" data-testid="result-table">
        <caption>${v(key)} (${value.length}${value.length > rows.length ? `, first ${rows.length} shown` : ''})</caption>
        <thead><tr>${columns.map((col) => html`<th scope="col">${v(col)}</th>`)}</tr></thead>
        <tbody>${rows.map((row) => html`<tr>${columns.map((col) => html`<td>${cellText(row[col])}</td>`)}</tr>`)}</tbody>
      </table>`;
  }
}

customElements.define('sdc-command', SdcCommand);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-command': SdcCommand;
  }
}
