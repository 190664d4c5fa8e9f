import { html, nothing } from 'lit';
import type { ApiClient, ApiError, Role } from '../api.js';
import { roleAtLeast } from '../roles.js';
import './sdc-tags-editor.js';
import './sdc-device-trust.js';
import { formatAgo, formatTime, riskText } from '../format.js';
import type { LiveEvent } from '../live.js';
import type { ChartSeries } from './sdc-chart.js';
import './sdc-chart.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

interface DeviceDetail {
  id: string; status: string; online: boolean; last_seen_at_ms: number | null; gateway_id: string | null;
  cert_serial: string | null; cert_not_after_ms: number | null; last_command_seq: number | null; clock_offset_ms: number | null;
  tags?: string[]; agent_version?: string | null; risk_score?: number | null; risk_scored_at_ms?: number | null;
}
interface DeviceCompliance {
  state: string; reasons: Array<{ code: string; severity: string; message: string }>;
  facts: Record<string, unknown>; reported_at_ms: number | null; evaluated_at_ms: number | null;
}
interface Sample { ts_ms: number; risk_score: number; metrics: Record<string, number | undefined> }
interface CommandSummary { id: string; opcode: string; state: string; created_at_ms: number; created_by: string }
interface DeviceAlert { id: string; kind: string; severity: string; message: string; state: string; created_at_ms: number; acknowledged_by?: string | null }

/** Telemetry ranges offered; the API returns at most 500 samples, newest first. */
export const telemetryRanges = Object.freeze([
  { label: 'last 15 minutes', ms: 15 * 60_000 }, { label: 'last hour', ms: 3_600_000 }, { label: 'last 24 hours', ms: 86_400_000 },
]);

/** One device: its state, telemetry charts over a chosen range, and its latest commands. */
export class SdcDevice extends LightElement {
  static override properties = {
    api: { attribute: false }, liveBus: { attribute: false }, deviceId: {}, userRole: {},
    device: { state: true }, compliance: { state: true }, samples: { state: true }, commands: { state: true }, alerts: { state: true }, error: { state: true }, rangeMs: { state: true },
  };

  declare api: ApiClient;
  declare liveBus: EventTarget;
  declare deviceId: string;
  declare userRole: Role | undefined;
  declare compliance: DeviceCompliance | undefined;
  declare device: DeviceDetail | undefined;
  declare samples: Sample[];
  declare commands: CommandSummary[];
  declare alerts: DeviceAlert[];
  declare error: ApiError | undefined;
  declare rangeMs: number;
  readonly #onLive = (event: Event) => {
    // A reconnect ('resync') reads everything again; a live event only when it is about this device.
    const live = event.type === 'live' ? (event as CustomEvent<LiveEvent>).detail : undefined;
    if (live === undefined || live.device_id === this.deviceId) void this.load();
  };

  constructor() {
    super();
    this.device = undefined;
    this.compliance = undefined;
    this.userRole = undefined;
    this.samples = [];
    this.commands = [];
    this.alerts = [];
    this.error = undefined;
    this.rangeMs = telemetryRanges[0]!.ms;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.liveBus.addEventListener('live', this.#onLive);
    this.liveBus.addEventListener('resync', this.#onLive);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.liveBus.removeEventListener('live', this.#onLive);
    this.liveBus.removeEventListener('resync', this.#onLive);
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('deviceId') || changed.has('rangeMs')) void this.load();
  }

  async load(): Promise<void> {
    const id = encodeURIComponent(this.deviceId);
    const fromMs = Date.now() - this.rangeMs;
    try {
      const [device, telemetry, commands, compliance, alerts] = await Promise.all([
        this.api.get<DeviceDetail>(`/v1/devices/${id}`),
        this.api.get<{ items: Sample[] }>(`/v1/devices/${id}/telemetry?from_ms=${fromMs}&limit=500`),
        this.api.get<{ items: CommandSummary[] }>(`/v1/commands?device_id=${id}&limit=20`),
        this.api.get<DeviceCompliance>(`/v1/devices/${id}/compliance`),
        this.api.get<{ items: DeviceAlert[] }>(`/v1/alerts?device_id=${id}&limit=20`),
      ]);
      this.alerts = alerts.items;
      this.compliance = compliance;
      this.device = device;
      this.samples = [...telemetry.items].sort((a, b) => a.ts_ms - b.ts_ms);
      this.commands = commands.items;
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  #series(keys: ReadonlyArray<[string, string, string]>): ChartSeries[] {
    return keys.map(([key, label, stroke]) => ({ label, stroke, values: this.samples.map((s) => s.metrics[key] ?? null) }));
  }

  /** The kernel backend the device reported at AUTH; a mock one is called out, since its privileged commands do nothing. */
  #kernelBackend() {
    const backend = this.compliance?.facts.kernel_backend;
    if (typeof backend !== 'string') return '—';
    return backend === 'mock' ? html`<strong class="compliance compliance-warning">mock</strong> <span class="hint">(simulated: nothing is locked or installed)</span>` : v(backend);
  }

  #compliance() {
    const c = this.compliance;
    if (c === undefined) return nothing;
    return html`
      <h2>Compliance</h2>
      <p>State: <span class="compliance compliance-${c.state}" data-testid="device-compliance">${v(c.state.replace('_', '-'))}</span>
        ${c.evaluated_at_ms === null ? '(nothing reported yet)' : html`(judged ${formatTime(c.evaluated_at_ms)}, reported ${formatTime(c.reported_at_ms)})`}</p>
      ${c.reasons.length === 0 ? nothing : html`<ul data-testid="compliance-reasons">${c.reasons.map((r) => html`<li><code>${v(r.code)}</code> (${v(r.severity)}) ${v(r.message)}</li>`)}</ul>`}
      <details><summary>Facts judged</summary><dl class="facts">${Object.entries(c.facts).map(([key, value]) => html`<div><dt>${v(key)}</dt><dd>${value === null ? '—' : v(value)}</dd></div>`)}</dl></details>`;
  }

  override render() {
    const d = this.device;
    if (d === undefined) return html`<section><h1>Device ${v(this.deviceId)}</h1>${this.error ? errorLine(this.error) : html`<p>Loading…</p>`}</section>`;
    const times = this.samples.map((s) => s.ts_ms);
    return html`
      <section aria-labelledby="device-title">
        <h1 id="device-title">Device ${v(d.id)} <span class="presence ${d.online ? 'online' : 'offline'}">${d.online ? 'online' : 'offline'}</span></h1>
        ${errorLine(this.error)}
        <dl class="facts">
          <div><dt>Status</dt><dd>${v(d.status)}</dd></div>
          <div><dt>Last seen</dt><dd>${formatAgo(d.last_seen_at_ms, Date.now())}</dd></div>
          <div><dt>Gateway</dt><dd>${v(d.gateway_id ?? '—')}</dd></div>
          <div><dt>Last command seq</dt><dd>${v(d.last_command_seq ?? '—')}</dd></div>
          <div><dt>Agent version</dt><dd>${v(d.agent_version ?? '—')}</dd></div>
          <div><dt>Kernel</dt><dd data-testid="device-kernel-backend">${this.#kernelBackend()}</dd></div>
          <div><dt>Risk score</dt><dd data-testid="device-risk">${riskText(d.risk_score)}${d.risk_scored_at_ms == null ? '' : html` <span class="hint">(${formatAgo(d.risk_scored_at_ms, Date.now())})</span>`}</dd></div>
          <div><dt>Clock offset</dt><dd>${d.clock_offset_ms === null ? '—' : `${v(d.clock_offset_ms)} ms`}</dd></div>
        </dl>
        <sdc-device-trust .api=${this.api} .deviceId=${d.id} .status=${d.status} .certSerial=${d.cert_serial} .certNotAfterMs=${d.cert_not_after_ms}
          .userRole=${this.userRole} @device-changed=${() => void this.load()}></sdc-device-trust>
        <sdc-tags-editor .api=${this.api} .deviceId=${d.id} .tags=${d.tags ?? []} ?editable=${roleAtLeast(this.userRole, 'operator')} @tags-saved=${() => void this.load()}></sdc-tags-editor>
        ${this.#compliance()}
        <p><a class="button" href="#/compose?device=${encodeURIComponent(d.id)}">Send a command to ${v(d.id)}</a>
          <a href="#/dead-letters?device=${encodeURIComponent(d.id)}">Its dead letters</a></p>
        <h2>Telemetry</h2>
        <label>Range
          <select @change=${(e: Event) => { this.rangeMs = Number((e.target as HTMLSelectElement).value); }}>
            ${telemetryRanges.map((r) => html`<option value=${r.ms} ?selected=${r.ms === this.rangeMs}>${r.label}</option>`)}
          </select>
        </label>
        ${this.samples.length === 0 ? html`<p>No telemetry in this range.</p>` : html`
          <div class="charts">
            <sdc-chart label="CPU, memory and disk" unit="%" .times=${times} .series=${this.#series([['cpu_pct', 'CPU', '#c0392b'], ['mem_pct', 'memory', '#2471a3'], ['disk_pct', 'disk', '#7d3c98']])}></sdc-chart>
            <sdc-chart label="Network" unit="bytes/s" .times=${times} .series=${this.#series([['net_rx_bytes_per_sec', 'received', '#1e8449'], ['net_tx_bytes_per_sec', 'sent', '#b9770e']])}></sdc-chart>
          </div>`}
        <h2>Commands</h2>
        ${this.commands.length === 0 ? html`<p>No commands yet.</p>` : html`
          <table>
            <thead><tr><th scope="col">Command</th><th scope="col">Opcode</th><th scope="col">State</th><th scope="col">Created</th><th scope="col">By</th></tr></thead>
            <tbody>${this.commands.map((c) => html`<tr>
              <th scope="row"><a href="#/commands/${encodeURIComponent(c.id)}">${v(c.id)}</a></th><td>${v(c.opcode)}</td>
              <td><span class="state state-${c.state}">${v(c.state)}</span></td><td>${formatTime(c.created_at_ms)}</td><td>${v(c.created_by)}</td></tr>`)}</tbody>
          </table>`}
        <h2>Alerts</h2>
        ${this.alerts.length === 0 ? html`<p>No alerts for this device.</p>` : html`
          <div class="table-scroll"><table data-testid="device-alerts">
            <thead><tr><th scope="col">Raised</th><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">Message</th><th scope="col">State</th></tr></thead>
            <tbody>${this.alerts.map((a) => html`<tr data-alert=${a.id}>
              <td>${formatTime(a.created_at_ms)}</td><td><span class="severity severity-${a.severity}">${v(a.severity)}</span></td>
              <td>${v(a.kind)}</td><td>${v(a.message)}</td><td>${v(a.state)}${a.acknowledged_by ? ` by ${v(a.acknowledged_by)}` : ''}</td></tr>`)}</tbody>
          </table></div>`}
        <p><a href="#/alerts">All alerts</a></p>
      </section>`;
  }
}

customElements.define('sdc-device', SdcDevice);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-device': SdcDevice;
  }
}
