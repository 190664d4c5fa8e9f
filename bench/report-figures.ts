import { escapeXml, formatNumber } from './report.js';

/**
 * A line chart as hand-written SVG (no charting dependency), in the style of bench/report.ts's
 * bar chart: one polyline per series, `<polyline class="series" data-series="..">`, axes with
 * round ticks (niceTicks). Coordinates are printed with one decimal, so the same data give the same bytes.
 */
export interface LineSeries {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

const colours = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];
export const lineSeriesMax = colours.length;
/** Points per series beyond this are thinned evenly: a day of 1 s samples stays a small file. */
const pointsMax = 2_000;
/** Series with at most this many points get a marker on each. */
const markersMax = 40;

function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * Axis ticks at a round step (1, 2 or 5 times a power of ten) across [from, to]: a
 * reader reads 0, 0.5, 1, 1.5 s, not the raw quarters of the span (0.39, 0.779). At most seven
 * (a step of at least a sixth of the span: 50 to 300 by 50 over 1-300 s, not 100 to 300). Each tick is
 * rounded to its step's decimals, so 0.1 + 0.2 prints as 0.3. Ticks stay inside the data's range.
 */
export function niceTicks(from: number, to: number): number[] {
  if (!(to > from)) return [from];
  const step = niceCeiling((to - from) / 6);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  for (let k = Math.ceil(from / step - 1e-9); k * step <= to + step * 1e-9; k += 1) ticks.push(Number((k * step).toFixed(decimals)));
  return ticks;
}

function thin(points: ReadonlyArray<readonly [number, number]>): ReadonlyArray<readonly [number, number]> {
  if (points.length <= pointsMax) return points;
  const step = points.length / pointsMax;
  return Array.from({ length: pointsMax }, (_, i) => points[Math.floor(i * step)]!).concat([points.at(-1)!]);
}

/** A shaded x interval behind the lines (a fault window), labelled at its top. */
export interface XBand {
  readonly from: number;
  readonly to: number;
  readonly label: string;
}

export function renderLineChartSvg(options: {
  title: string; xLabel: string; yLabel: string; series: readonly LineSeries[]; widthPx?: number; heightPx?: number;
  /** A log-scale x axis (latency CDFs): points at x <= 0 are dropped. */
  xLog?: boolean;
  bands?: readonly XBand[];
  /** Where a linear x axis starts (a series over time starts at its first scrape, 0, though its first rate point is later); default the data's least x. */
  xMin?: number;
}): string {
  const { series } = options;
  if (series.length === 0 || series.length > lineSeriesMax) throw new RangeError(`a line chart takes 1 to ${lineSeriesMax} series`);
  const width = options.widthPx ?? 720;
  const height = options.heightPx ?? 360;
  const margin = { top: 40, right: 16, bottom: 70, left: 64 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const xLog = options.xLog === true;
  const drawable = ([x, y]: readonly [number, number]) => Number.isFinite(x) && Number.isFinite(y) && (!xLog || x > 0);
  const all = series.flatMap((s) => s.points).filter(drawable);
  // On a log axis x is log10(x) from here on: whole decades around the data.
  const xOf = (x: number) => (xLog ? Math.log10(x) : x);
  const xs = all.map(([x]) => xOf(x));
  const xMin = xs.length === 0 ? 0 : xLog ? Math.floor(Math.min(...xs)) : Math.min(options.xMin ?? Infinity, ...xs);
  const xMax = xLog ? Math.max(xMin + 1, Math.ceil(Math.max(xMin, ...xs))) : Math.max(xMin + 1, ...xs);
  const yMax = niceCeiling(Math.max(0, ...all.map(([, y]) => y)));
  const pxRaw = (x: number) => margin.left + ((Math.min(xMax, Math.max(xMin, xOf(x))) - xMin) / (xMax - xMin)) * plotW;
  const px = (x: number) => pxRaw(x).toFixed(1);
  const py = (y: number) => (margin.top + plotH - (Math.max(0, y) / yMax) * plotH).toFixed(1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`,
  ];
  for (const band of options.bands ?? []) {
    const x1 = pxRaw(band.from);
    const x2 = Math.max(x1 + 1, pxRaw(band.to));
    out.push(`<rect class="band" data-label="${escapeXml(band.label)}" x="${x1.toFixed(1)}" y="${margin.top}" width="${(x2 - x1).toFixed(1)}" height="${plotH}" fill="#e45756" fill-opacity="0.15"/>`);
    out.push(`<text x="${x1.toFixed(1)}" y="${margin.top - 4}" font-size="10">${escapeXml(band.label)}</text>`);
  }
  for (const y of niceTicks(0, yMax)) {
    out.push(`<line x1="${margin.left}" y1="${py(y)}" x2="${width - margin.right}" y2="${py(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${margin.left - 6}" y="${(Number(py(y)) + 4).toFixed(1)}" text-anchor="end">${escapeXml(formatNumber(y))}</text>`);
  }
  const xTicks = xLog ? Array.from({ length: xMax - xMin + 1 }, (_, i) => 10 ** (xMin + i)) : niceTicks(xMin, xMax);
  for (const x of xTicks) out.push(`<text x="${px(x)}" y="${margin.top + plotH + 16}" text-anchor="middle">${escapeXml(formatNumber(x))}</text>`);
  out.push(`<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${width - margin.right}" y2="${margin.top + plotH}" stroke="#333333"/>`);
  out.push(`<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 34}" text-anchor="middle">${escapeXml(`${options.xLabel}${xLog ? ' (log scale)' : ''}`)}</text>`);
  out.push(`<text x="16" y="${margin.top + plotH / 2}" transform="rotate(-90 16 ${margin.top + plotH / 2})" text-anchor="middle">${escapeXml(options.yLabel)}</text>`);
  series.forEach((s, i) => {
    const points = thin(s.points.filter(drawable)).map(([x, y]) => `${px(x)},${py(y)}`).join(' ');
    out.push(`<polyline class="series" data-series="${escapeXml(s.name)}" fill="none" stroke="${colours[i]}" stroke-width="1.5" points="${points}"/>`);
    // A few points (one per run, one per percentile) are marked, so a reader sees where the measurements are.
    const drawn = s.points.filter(drawable);
    if (drawn.length <= markersMax) for (const [x, y] of drawn) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${colours[i]}"/>`);
    // Legend entries side by side, each as wide as its name (about 7 px a character at 12 px).
    const lx = margin.left + series.slice(0, i).reduce((x, p) => x + 36 + p.name.length * 7, 0);
    out.push(`<rect x="${lx}" y="${height - 20}" width="12" height="12" fill="${colours[i]}"/>`);
    out.push(`<text x="${lx + 16}" y="${height - 10}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
