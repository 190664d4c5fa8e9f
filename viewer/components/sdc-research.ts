import { html, nothing } from 'lit';
import { cellText } from '../format.js';
import {
  benchBars, benchNumericFields, faultWindowsOf, latencyCdf, parseBenchJson, parseNumericCsv, recoveryCurves, researchLimits, runFileKind,
  type BenchFile, type NumericTable, type RunFileKind,
} from '../research-data.js';
import { svgBarPlot, svgDataUrl, svgLinePlot } from '../svg-plot.js';
import type { ChartSeries } from './sdc-chart.js';
import './sdc-chart.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

const stateColors: Readonly<Record<string, string>> = {
  queued: '#6e7781', sent: '#0969da', ack_received: '#8250df', executing: '#bf8700', succeeded: '#1a7f37', failed: '#cf222e',
  expired: '#953800', rejected: '#a40e26', dead_lettered: '#57606a', timed_out: '#e16f24', succeeded_late: '#2da44e', failed_late: '#fa4549',
};

const faultColors = ['#cf222e', '#0969da', '#8250df', '#bf8700', '#1a7f37', '#953800'];

/** A link that saves an SVG document under a name. */
function svgDownload(svg: string, name: string, label: string) {
  return html`<a class="button small" href=${svgDataUrl(svg)} download=${`${name}.svg`}>Save SVG<span class="visually-hidden"> of ${label}</span></a>`;
}

/**
 * A simulation run (`sdc sim --out DIR`) opened from disk: the summary's facts and verdicts, online
 * agents and commands by state over virtual time, the latency CDF, the recovery after each fault
 * the run injected; or a bench report (`sdc bench ... --json`, `--out`'s `<bench>.json`) as bars of
 * one result field. Each plot saved as PNG and SVG. The files are read in the page; nothing is sent anywhere.
 */
export class SdcResearch extends LightElement {
  static override properties = { summary: { state: true }, tables: { state: true }, problems: { state: true }, bench: { state: true }, benchField: { state: true } };

  declare summary: Record<string, unknown> | undefined;
  declare bench: BenchFile | undefined;
  declare benchField: string;
  declare tables: Partial<Record<RunFileKind, NumericTable>>;
  declare problems: string[];

  constructor() {
    super();
    this.summary = undefined;
    this.tables = {};
    this.problems = [];
    this.bench = undefined;
    this.benchField = '';
  }

  async #open(event: Event): Promise<void> {
    const files = Array.from((event.target as HTMLInputElement).files ?? []);
    const problems: string[] = [];
    const tables = { ...this.tables };
    for (const file of files) {
      const kind = runFileKind(file.name);
      if (kind === undefined) { problems.push(`${file.name}: not a file of sdc sim --out or a bench report`); continue; }
      if (file.size > researchLimits.fileBytesMax) { problems.push(`${file.name}: larger than ${researchLimits.fileBytesMax} bytes`); continue; }
      try {
        const text = await file.text();
        if (kind === 'bench') {
          this.bench = parseBenchJson(JSON.parse(text));
          this.benchField = benchNumericFields(this.bench)[0] ?? '';
        } else if (kind === 'summary') {
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
        <label>Open a run's files (summary.json, online-agents.csv, commands-by-state.csv, latency-histogram.csv) or a bench report (.json)
          <input type="file" multiple accept=".json,.csv" data-testid="run-files" @change=${this.#open}>
        </label>
        ${this.problems.map((problem) => html`<p class="error" role="alert"><code>${'VIEWER_FILE_INVALID'}</code> ${v(problem)}</p>`)}
        ${this.#summary()}
        <div class="charts">${this.#online()}${this.#states()}${this.#latency()}${this.#recovery()}</div>
        ${this.#bench()}
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
      ${typeof s.reproduce === 'string' ? html`<p>Reproduce: <code>${v(s.reproduce)}</code></p>` : nothing}
      <table><caption>Checkers</caption><tbody>${Object.entries(checkers).map(([name, verdict]) => html`<tr><th scope="row">${v(name)}</th><td class=${verdict === 'pass' ? '' : 'error'}>${cellText(verdict)}</td></tr>`)}</tbody></table>`;
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
      return html`<p class="error" role="alert">${v((error as Error).message)}</p>`;
    }
  }

  /** Agents missing after each fault the summary's scenario names, until all are back (seconds since the fault began). */
  #recovery() {
    const online = this.tables.online;
    if (this.summary === undefined || online === undefined) return nothing;
    const windows = faultWindowsOf(this.summary);
    if (windows.length === 0) return html`<p data-testid="no-faults">This run injected no faults: no recovery to plot.</p>`;
    let curves;
    try {
      curves = recoveryCurves(windows, online);
    } catch (error) {
      return html`<p class="error" role="alert"><code>${'VIEWER_FILE_INVALID'}</code> ${v((error as Error).message)}</p>`;
    }
    const label = 'Recovery after faults';
    const svg = svgLinePlot({ title: label, xLabel: 'virtual s since the fault began', yLabel: 'agents missing', series: curves.map((c, i) => ({ label: c.name, stroke: faultColors[i % faultColors.length]!, points: c.points })) });
    return html`
      <figure class="chart" data-testid="recovery-plot">
        <figcaption>${label} ${svgDownload(svg, 'recovery-after-faults', label)}</figcaption>
        <img src=${svgDataUrl(svg)} alt="${label}: ${curves.map((c) => `${c.name}, back after ${c.points.at(-1)?.[0] ?? 0} s`).join('; ')}">
      </figure>`;
  }

  #bench() {
    const bench = this.bench;
    if (bench === undefined) return nothing;
    const fields = benchNumericFields(bench);
    const field = fields.includes(this.benchField) ? this.benchField : fields[0];
    const unit = field === undefined ? '' : bench.units[field] ?? '';
    const label = `${bench.benchmark}: ${field ?? 'no numeric field'}`;
    const svg = field === undefined ? undefined : svgBarPlot({ title: label, unit, bars: benchBars(bench, field) });
    const columns = [...new Set(bench.results.flatMap((row) => Object.keys(row)))];
    return html`
      <section class="card" aria-labelledby="bench-title" data-testid="bench">
        <h2 id="bench-title">Bench ${v(bench.benchmark)}</h2>
        <dl class="facts">${Object.entries(bench.parameters).map(([k, value]) => html`<div><dt>${v(k)}</dt><dd>${cellText(value)}</dd></div>`)}
          ${(['node', 'cpu', 'cpu_count', 'git_commit'] as const).map((k) => html`<div><dt>${k}</dt><dd>${cellText(bench.environment[k])}</dd></div>`)}</dl>
        ${fields.length > 0 ? html`<label>Plot <select aria-label="Bench field to plot" @change=${(e: Event) => { this.benchField = (e.target as HTMLSelectElement).value; }}>
          ${fields.map((f) => html`<option value=${f} ?selected=${f === field}>${v(f)} (${v(bench.units[f])})</option>`)}</select></label>` : nothing}
        ${svg === undefined ? nothing : html`
          <figure class="chart" data-testid="bench-plot">
            <figcaption>${label} ${svgDownload(svg, `${bench.benchmark}-${field}`, label)}</figcaption>
            <img src=${svgDataUrl(svg)} alt="${label}: ${benchBars(bench, field!).map((b) => `${b.label} ${b.value} ${unit}`).join('; ')}">
          </figure>`}
        <div class="table-scroll"><table data-testid="bench-results"><caption>Results</caption>
          <thead><tr>${columns.map((c) => html`<th scope="col">${v(c)}${bench.units[c] ? html` <small>(${v(bench.units[c])})</small>` : nothing}</th>`)}</tr></thead>
          <tbody>${bench.results.map((row) => html`<tr>${columns.map((c) => html`<td>${cellText(row[c])}</td>`)}</tr>`)}</tbody>
        </table></div>
      </section>`;
  }
}

customElements.define('sdc-research', SdcResearch);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-research': SdcResearch;
  }
}
