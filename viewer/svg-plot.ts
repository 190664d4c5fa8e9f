/**
 * Plots as SVG text, for "Save SVG" (a vector figure for a paper, which a canvas PNG is not) and
 * for the plots uPlot does not draw (bench bars, recovery curves with one x per series). Pure:
 * numbers in, a string out, tested in Node. Every text is escaped; nothing from a file becomes
 * markup.
 */

export interface SvgSeries {
  readonly label: string;
  readonly stroke: string;
  /** [x, y] points; a null y breaks the line. */
  readonly points: ReadonlyArray<readonly [number, number | null]>;
}

export interface SvgLinePlot {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly SvgSeries[];
}

export interface SvgBar {
  readonly label: string;
  readonly value: number;
}

const size = Object.freeze({ width: 720, height: 360, left: 64, right: 16, top: 36, bottom: 48, legendRow: 16 });
/** Points per series drawn at most: a run's CSVs are a few hundred rows; beyond this every n-th is kept. */
export const svgPointsMax = 5_000;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A number as an axis shows it: at most 3 decimals, no exponent for the sizes plotted here. */
export function tickText(value: number): string {
  if (!Number.isFinite(value)) return '';
  const rounded = Math.round(value * 1000) / 1000;
  return Math.abs(rounded) >= 1e6 ? rounded.toExponential(2) : String(rounded);
}

/** About `count` round tick values covering [min, max] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => raw <= s) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Math.round(t / step) * step);
  return ticks;
}

function thinned<T>(points: readonly T[]): readonly T[] {
  if (points.length <= svgPointsMax) return points;
  const every = Math.ceil(points.length / svgPointsMax);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

function frame(title: string, body: string, legend: readonly SvgSeries[] | readonly []): string {
  const legendHeight = legend.length * size.legendRow;
  const height = size.height + legendHeight;
  const items = legend.map((s, i) => {
    const y = size.height + i * size.legendRow;
    return `<line x1="${size.left}" y1="${y - 4}" x2="${size.left + 20}" y2="${y - 4}" stroke="${escapeXml(s.stroke)}" stroke-width="2"/>`
      + `<text x="${size.left + 26}" y="${y}">${escapeXml(s.label)}</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size.width}" height="${height}" viewBox="0 0 ${size.width} ${height}" font-family="sans-serif" font-size="11" role="img" aria-label="${escapeXml(title)}">`
    + `<title>${escapeXml(title)}</title><rect width="100%" height="100%" fill="#fff"/>`
    + `<text x="${size.width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>${body}${items}</svg>\n`;
}

/** Lines on linear axes with ticks, axis labels and a legend. */
export function svgLinePlot(plot: SvgLinePlot): string {
  const all = plot.series.flatMap((s) => s.points.filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[0]) && Number.isFinite(p[1])));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [xMin, xMax] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const [yMin, yMax] = ys.length ? [Math.min(0, ...ys), Math.max(...ys)] : [0, 1];
  const plotW = size.width - size.left - size.right;
  const plotH = size.height - size.top - size.bottom;
  const sx = (x: number) => size.left + (xMax === xMin ? plotW / 2 : ((x - xMin) / (xMax - xMin)) * plotW);
  const sy = (y: number) => size.top + plotH - (yMax === yMin ? plotH / 2 : ((y - yMin) / (yMax - yMin)) * plotH);
  const n = (v: number) => v.toFixed(1);
  const axes = `<g stroke="#57606a" fill="none"><line x1="${size.left}" y1="${size.top + plotH}" x2="${size.left + plotW}" y2="${size.top + plotH}"/><line x1="${size.left}" y1="${size.top}" x2="${size.left}" y2="${size.top + plotH}"/></g>`;
  const xTicks = niceTicks(xMin, xMax).map((t) => `<text x="${n(sx(t))}" y="${size.top + plotH + 14}" text-anchor="middle">${tickText(t)}</text>`).join('');
  const yTicks = niceTicks(yMin, yMax).map((t) => `<line x1="${size.left}" x2="${size.left + plotW}" y1="${n(sy(t))}" y2="${n(sy(t))}" stroke="#d0d7de" stroke-width="0.5"/><text x="${size.left - 4}" y="${n(sy(t) + 4)}" text-anchor="end">${tickText(t)}</text>`).join('');
  const labels = `<text x="${size.left + plotW / 2}" y="${size.height - 12}" text-anchor="middle">${escapeXml(plot.xLabel)}</text>`
    + `<text transform="translate(14 ${size.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(plot.yLabel)}</text>`;
  const lines = plot.series.map((s) => {
    const segments: string[][] = [[]];
    for (const [x, y] of thinned(s.points)) {
      if (y === null || !Number.isFinite(x) || !Number.isFinite(y)) { segments.push([]); continue; }
      segments.at(-1)!.push(`${n(sx(x))},${n(sy(y))}`);
    }
    return segments.filter((seg) => seg.length > 0).map((seg) => `<polyline fill="none" stroke="${escapeXml(s.stroke)}" stroke-width="1.5" points="${seg.join(' ')}"><title>${escapeXml(s.label)}</title></polyline>`).join('');
  }).join('');
  return frame(plot.title, `${yTicks}${axes}${xTicks}${labels}${lines}`, plot.series);
}

/** Horizontal bars, one per row, with their values: a bench's results by one numeric field. */
export function svgBarPlot(plot: { title: string; unit: string; bars: readonly SvgBar[] }): string {
  const bars = plot.bars.slice(0, 40);
  const max = Math.max(0, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const labelW = 220;
  // Room on the right for the longest value with its unit ("41000 calls per second").
  const barArea = size.width - labelW - size.right - 180;
  const rowH = 20;
  const body = bars.map((b, i) => {
    const y = size.top + i * rowH;
    const w = max === 0 || !Number.isFinite(b.value) ? 0 : Math.max(0, (b.value / max) * barArea);
    return `<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${escapeXml(b.label.slice(0, 40))}</text>`
      + `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="#0969da"/>`
      + `<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 14}">${escapeXml(`${tickText(b.value)} ${plot.unit}`)}</text>`;
  }).join('');
  const height = size.top + bars.length * rowH + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size.width}" height="${height}" viewBox="0 0 ${size.width} ${height}" font-family="sans-serif" font-size="11" role="img" aria-label="${escapeXml(plot.title)}">`
    + `<title>${escapeXml(plot.title)}</title><rect width="100%" height="100%" fill="#fff"/>`
    + `<text x="${size.width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(plot.title)}</text>${body}</svg>\n`;
}

/** An SVG as a data: URL, for an <img> (the CSP allows data: images) or a download link. */
export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}
