import { html, nothing } from 'lit';
import { cellText } from '../format.js';
import { latencyCdf, parseNumericCsv, researchLimits, runFileKind, type NumericTable, type RunFileKind } from '../research-data.js';
import type { ChartSeries } from './sdc-chart.js';
import './sdc-chart.js';
import { LightElement } from './light-element.js';

const stateColors: Readonly<Record<string, string>> = {
  queued: '#6e7781', sent: '#0969da', ack_received: '#8250df', executing: '#bf8700', succeeded: '#1a7f37', failed: '#cf222e',
  expired: '#953800', rejected: '#a40e26', dead_lettered: '#57606a', timed_out: '#e16f24', succeeded_late: '#2da44e', failed_late: '#fa4549',
};

/**
 * A simulation run (`sdc sim --out DIR`) opened from disk: the summary's facts and verdicts, online
 * agents and commands by state over virtual time, the latency CDF; each plot saved as PNG. The
 * files are read in the page; nothing is sent anywhere.
 */
export class SdcResearch extends LightElement {
  static override properties = { summary: { state: true }, tables: { state: true }, problems: { state: true } };

  declare summary: Record<string, unknown> | undefined;
  declare tables: Partial<Record<RunFileKind, NumericTable>>;
  declare problems: string[];

  constructor() {
    super();
    this.summary = undefined;
    this.tables = {};
    this.problems = [];
  }

  async #open(event: Event): Promise<void> {
    const files = Array.from((event.target as HTMLInputElement).files ?? []);
    const problems: string[] = [];
    const tables = { ...this.tables };
    for (const file of files) {
      const kind = runFileKind(file.name);
      if (kind === undefined) { problems.push(`${file.name}: not a file of sdc sim --out`); continue; }
      if (file.size > researchLimits.fileBytesMax) { problems.push(`${file.name}: larger than ${researchLimits.fileBytesMax} bytes`); continue; }
      try {
        const text = await file.text();
        if (kind === 'summary') {
          const value: unknown = JSON.parse(text);
          if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
          this.summary = value as Record<string, unknown>;
        } else {
          tables[kind] = parseNumericCsv(text);
        }
      } catch (error) {
        problems.push(`${file.name}: ${(error as Error).message}`);
      }
    }
    this.tables = tables;
    this.problems = problems;
  }

  override render() {
    return html`
      <section aria-labelledby="research-title">
        <h1 id="research-title">Simulation run</h1>
        <label>Open a run's files (summary.json, online-agents.csv, commands-by-state.csv, latency-histogram.csv)
          <input type="file" multiple accept=".json,.csv" data-testid="run-files" @change=${this.#open}>
        </label>
        ${this.problems.map((problem) => html`<p class="error" role="alert">${problem}</p>`)}
        ${this.#summary()}
        <div class="charts">${this.#online()}${this.#states()}${this.#latency()}</div>
      </section>`;
  }

  #summary() {
    const s = this.summary;
    if (s === undefined) return nothing;
    const latency = (s.latencyMs ?? {}) as Record<string, unknown>;
    const checkers = (s.checkers ?? {}) as Record<string, unknown>;
    return html`
      <dl class="facts" data-testid="run-facts">
        ${(['scenario', 'seed', 'agents', 'tier', 'gitCommit'] as const).map((key) => html`<div><dt>${key}</dt><dd>${cellText(s[key])}</dd></div>`)}
        <div><dt>latency p50 / p99</dt><dd>${cellText(latency.p50Ms)} / ${cellText(latency.p99Ms)} ms</dd></div>
      </dl>
      ${typeof s.reproduce === 'string' ? html`<p>Reproduce: <code>${s.reproduce}</code></p>` : nothing}
      <table><caption>Checkers</caption><tbody>${Object.entries(checkers).map(([name, verdict]) => html`<tr><th scope="row">${name}</th><td class=${verdict === 'pass' ? '' : 'error'}>${cellText(verdict)}</td></tr>`)}</tbody></table>`;
  }

  #online() {
    const t = this.tables.online;
    const index = t?.columns.indexOf('online_agents') ?? -1;
    if (t === undefined || index < 0) return nothing;
    return html`<sdc-chart label="Online agents" unit="agents" xUnit="virtual s" exportName="online-agents"
      .times=${t.values[0]!.map((ms) => ms / 1000)} .series=${[{ label: 'online', stroke: '#1a7f37', values: t.values[index]! }]}></sdc-chart>`;
  }

  #states() {
    const t = this.tables.states;
    if (t === undefined) return nothing;
    const series: ChartSeries[] = t.columns.slice(1).map((name, i) => ({ label: name, stroke: stateColors[name] ?? '#24292f', values: t.values[i + 1]! }));
    return html`<sdc-chart label="Commands by state" unit="commands" xUnit="virtual s" exportName="commands-by-state"
      .times=${t.values[0]!.map((ms) => ms / 1000)} .series=${series}></sdc-chart>`;
  }

  #latency() {
    const t = this.tables.latency;
    if (t === undefined) return nothing;
    try {
      const cdf = latencyCdf(t);
      return html`<sdc-chart label="Round-trip latency CDF" unit="fraction" xUnit="ms" exportName="latency-cdf"
        .times=${cdf.boundsMs} .series=${[{ label: 'at or below', stroke: '#0969da', values: cdf.fraction }]}></sdc-chart>`;
    } catch (error) {
      return html`<p class="error" role="alert">${(error as Error).message}</p>`;
    }
  }
}

customElements.define('sdc-research', SdcResearch);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-research': SdcResearch;
  }
}
