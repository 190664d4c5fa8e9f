import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { html } from 'lit';
import { LightElement } from './light-element.js';
import { svgDataUrl, svgLinePlot } from '../svg-plot.js';

export interface ChartSeries {
  readonly label: string;
  readonly values: ReadonlyArray<number | null>;
  readonly stroke: string;
}

/**
 * A time-series chart with uPlot. `times` are Unix milliseconds, ascending. The same numbers are
 * also given as a table for screen readers (a canvas has no text).
 */
export class SdcChart extends LightElement {
  static override properties = { label: {}, times: { attribute: false }, series: { attribute: false }, unit: {}, xUnit: {}, exportName: {} };

  declare label: string;
  declare times: readonly number[];
  declare series: readonly ChartSeries[];
  declare unit: string;
  /** Empty: `times` are Unix milliseconds on a time axis. Otherwise the x values are plain numbers in this unit. */
  declare xUnit: string;
  /** When set, buttons save the plot as `<exportName>.png` (the canvas) and `<exportName>.svg` (drawn again as vectors). */
  declare exportName: string;
  #plot: uPlot | undefined;

  constructor() {
    super();
    this.label = '';
    this.times = [];
    this.series = [];
    this.unit = '';
    this.xUnit = '';
    this.exportName = '';
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#plot?.destroy();
    this.#plot = undefined;
  }

  override render() {
    const last = this.times.length - 1;
    return html`
      <figure class="chart">
        <figcaption>${this.label}
          ${this.exportName ? html`<button type="button" class="small" @click=${() => this.#savePng()}>Save PNG<span class="visually-hidden"> of ${this.label}</span></button>
            <button type="button" class="small" @click=${() => this.#saveSvg()}>Save SVG<span class="visually-hidden"> of ${this.label}</span></button>` : ''}</figcaption>
        <div class="plot" role="img" aria-label="${this.label}: ${this.times.length} samples"></div>
        <table class="visually-hidden">
          <caption>${this.label}, latest sample</caption>
          <tbody>${this.series.map((s) => html`<tr><th scope="row">${s.label}</th><td>${last >= 0 ? s.values[last] ?? '' : ''} ${this.unit}</td></tr>`)}</tbody>
        </table>
      </figure>`;
  }

  protected override updated(): void {
    const target = this.querySelector<HTMLElement>('.plot');
    if (target === null) return;
    this.#plot?.destroy();
    const width = Math.max(280, Math.min(target.clientWidth || 640, 1200));
    const timeAxis = this.xUnit === '';
    const data = [this.times.map((t) => (timeAxis ? t / 1000 : t)), ...this.series.map((s) => [...s.values])] as uPlot.AlignedData;
    this.#plot = new uPlot({
      width, height: 220,
      scales: { x: { time: timeAxis } },
      series: [timeAxis ? {} : { label: this.xUnit }, ...this.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5 }))],
      axes: [timeAxis ? {} : { label: this.xUnit }, { label: this.unit }],
    }, data, target);
  }

  /** The same numbers as the canvas, as an SVG document (viewer/svg-plot.ts). */
  svg(): string {
    const timeAxis = this.xUnit === '';
    const xs = this.times.map((t) => (timeAxis ? t / 1000 : t));
    return svgLinePlot({
      title: this.label, xLabel: timeAxis ? 'Unix time (s)' : this.xUnit, yLabel: this.unit,
      series: this.series.map((s) => ({ label: s.label, stroke: s.stroke, points: xs.map((x, i) => [x, s.values[i] ?? null] as const) })),
    });
  }

  #saveSvg(): void {
    const link = document.createElement('a');
    link.href = svgDataUrl(this.svg());
    link.download = `${this.exportName}.svg`;
    link.click();
  }

  #savePng(): void {
    const canvas = this.#plot?.ctx.canvas;
    if (canvas === undefined) return;
    const link = document.createElement('a');
    link.href = canvas.toDataURL('image/png');
    link.download = `${this.exportName}.png`;
    link.click();
  }
}

customElements.define('sdc-chart', SdcChart);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-chart': SdcChart;
  }
}
