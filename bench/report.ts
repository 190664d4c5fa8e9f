import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';

/**
 * Report-ready output for benchmarks: CSV, Markdown tables, a latency histogram and a grouped bar
 * chart as hand-written SVG (no charting dependency), so every bench can write the same files.
 */

export type Cell = string | number;

/** RFC 4180 CSV: a header line, then one line per row; cells with a comma, quote or newline are quoted. */
export function renderCsv(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const cell = (value: Cell) => {
    const text = typeof value === 'number' ? formatNumber(value) : value;
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [header, ...rows].map((row) => row.map(cell).join(',')).join('\n') + '\n';
}

/** A GitHub-flavoured Markdown table; numeric columns are right-aligned. */
export function renderMarkdownTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === 'number'));
  const escape = (value: Cell) => (typeof value === 'number' ? formatNumber(value) : value.replaceAll('|', '\\|').replace(/\r?\n/g, ' '));
  const line = (cells: readonly Cell[]) => `| ${cells.map(escape).join(' | ')} |`;
  return [line(header), `|${numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}

/** Numbers print with at most 3 decimals and no exponent, so files diff cleanly between runs. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return String(Math.round(value * 1000) / 1000);
}

/** Upper bucket edges in ms, roughly logarithmic: loopback echoes sit near 0.1 ms, loaded round trips near seconds. */
export const latencyBucketEdgesMs: readonly number[] = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000];

/**
 * Counts per bucket for each named series: one row per bucket `[le_ms, count of series 1, ...]`,
 * where a sample falls in the first bucket whose edge is >= it; the last row (`+Inf`) takes the rest.
 */
export function latencyHistogramRows(series: ReadonlyArray<{ name: string; samples: readonly number[] }>, edgesMs: readonly number[] = latencyBucketEdgesMs): {
  header: string[];
  rows: Cell[][];
} {
  const labels: Cell[] = [...edgesMs, '+Inf'];
  const counts = series.map(({ samples }) => {
    const bucketCounts = new Array<number>(labels.length).fill(0);
    for (const sample of samples) {
      const index = edgesMs.findIndex((edge) => sample <= edge);
      const bucket = index < 0 ? edgesMs.length : index;
      bucketCounts[bucket] = (bucketCounts[bucket] ?? 0) + 1;
    }
    return bucketCounts;
  });
  return { header: ['le_ms', ...series.map((s) => s.name)], rows: labels.map((label, i) => [label, ...counts.map((c) => c[i] ?? 0)]) };
}

export interface BarChartGroup {
  /** The x-axis label of the group (for example `p99`). */
  label: string;
  /** One value per series, in the order of `BarChartOptions.series`. */
  values: readonly number[];
}

export interface BarChartOptions {
  title: string;
  /** Unit for the y axis and value labels (for example `ms`). */
  unit: string;
  series: readonly string[];
  groups: readonly BarChartGroup[];
  /** `log` keeps a 0.3 ms baseline visible next to a 300 ms figure; default `linear`. */
  scale?: 'linear' | 'log';
  widthPx?: number;
  heightPx?: number;
}

const seriesColours = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];
const groupsMax = 64;
const seriesMax = seriesColours.length;

/**
 * A grouped bar chart: one group per label, one bar per series, a value printed above each bar.
 * Each bar is `<rect class="bar" data-series=".." data-group=".." data-value="..">`, so tests
 * and scripts can read the figures back from the SVG.
 */
export function renderBarChartSvg(options: BarChartOptions): string {
  const { series, groups } = options;
  if (series.length === 0 || series.length > seriesMax) throw new RangeError(`a chart takes 1 to ${seriesMax} series`);
  if (groups.length === 0 || groups.length > groupsMax) throw new RangeError(`a chart takes 1 to ${groupsMax} groups`);
  for (const group of groups) {
    if (group.values.length !== series.length || !group.values.every((v) => Number.isFinite(v) && v >= 0)) {
      throw new RangeError(`group ${group.label} needs ${series.length} finite values >= 0`);
    }
  }
  const width = options.widthPx ?? 720;
  const height = options.heightPx ?? 420;
  const margin = { top: 48, right: 16, bottom: 64, left: 72 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const maxValue = Math.max(...groups.flatMap((g) => g.values));
  const log = options.scale === 'log';
  // The log axis starts one decade below the smallest positive value.
  const positives = groups.flatMap((g) => g.values).filter((v) => v > 0);
  const logMin = positives.length > 0 ? Math.floor(Math.log10(Math.min(...positives))) - 1 : -1;
  const logMax = Math.max(logMin + 1, Math.ceil(Math.log10(Math.max(maxValue, 10 ** (logMin + 1)))));
  const linearMax = niceCeiling(maxValue);
  const heightOf = (value: number) => {
    if (log) return value <= 0 ? 0 : Math.max(0, ((Math.log10(value) - logMin) / (logMax - logMin)) * plotHeight);
    return linearMax === 0 ? 0 : (value / linearMax) * plotHeight;
  };
  const groupWidth = plotWidth / groups.length;
  const barWidth = (groupWidth * 0.8) / series.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`,
  ];
  const ticks = log
    ? Array.from({ length: logMax - logMin + 1 }, (_, i) => 10 ** (logMin + i))
    : Array.from({ length: 5 }, (_, i) => (linearMax * i) / 4);
  for (const tick of ticks) {
    const y = margin.top + plotHeight - (log ? ((Math.log10(tick) - logMin) / (logMax - logMin)) * plotHeight : heightOf(tick));
    out.push(`<line x1="${margin.left}" y1="${fixed(y)}" x2="${width - margin.right}" y2="${fixed(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${margin.left - 6}" y="${fixed(y + 4)}" text-anchor="end">${escapeXml(formatNumber(tick))}</text>`);
  }
  out.push(`<text x="16" y="${margin.top + plotHeight / 2}" transform="rotate(-90 16 ${margin.top + plotHeight / 2})" text-anchor="middle">${escapeXml(`${options.unit}${log ? ' (log scale)' : ''}`)}</text>`);
  groups.forEach((group, g) => {
    const groupX = margin.left + g * groupWidth + groupWidth * 0.1;
    group.values.forEach((value, s) => {
      const barHeight = heightOf(value);
      const x = groupX + s * barWidth;
      const y = margin.top + plotHeight - barHeight;
      out.push(`<rect class="bar" data-series="${escapeXml(series[s]!)}" data-group="${escapeXml(group.label)}" data-value="${formatNumber(value)}" `
        + `x="${fixed(x)}" y="${fixed(y)}" width="${fixed(Math.max(1, barWidth - 2))}" height="${fixed(barHeight)}" fill="${seriesColours[s]}"/>`);
      out.push(`<text x="${fixed(x + barWidth / 2)}" y="${fixed(y - 4)}" text-anchor="middle" font-size="10">${escapeXml(formatNumber(value))}</text>`);
    });
    out.push(`<text x="${fixed(margin.left + g * groupWidth + groupWidth / 2)}" y="${margin.top + plotHeight + 18}" text-anchor="middle">${escapeXml(group.label)}</text>`);
  });
  out.push(`<line x1="${margin.left}" y1="${margin.top + plotHeight}" x2="${width - margin.right}" y2="${margin.top + plotHeight}" stroke="#333333"/>`);
  series.forEach((name, s) => {
    const x = margin.left + s * 200;
    const y = height - 18;
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${seriesColours[s]}"/>`);
    out.push(`<text x="${x + 18}" y="${y}">${escapeXml(name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function escapeXml(text: string): string {
  // Characters XML 1.0 forbids outright are dropped: escaping cannot make them legal.
  return text.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&apos;');
}

/** 1, 2 or 5 times a power of ten, at least `value`: round axis ticks. */
function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function fixed(value: number): string {
  return value.toFixed(1);
}

/** Report files are readable by all, written by their owner. */
export const reportFileMode = 0o644;

/**
 * Writes one output file (a report, a summary, a CSV) of `--out DIR` through a temp file with a
 * random name created exclusively, renamed over `path`: whatever was at `path` (a symlink too) is
 * replaced, never followed, so a link planted in a shared output directory cannot redirect the write.
 */
export async function writeReportFile(path: string, text: string | Uint8Array): Promise<void> {
  await writeFileAtomic(path, text, { mode: reportFileMode });
}

/** Writes `files` (name -> text) into `dir`, creating it; returns the paths written, in order. */
export async function writeReportFiles(dir: string, files: Readonly<Record<string, string>>): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    if (name.includes('/') || name.includes('\\') || name === '..' || name === '.') throw new RangeError(`report file name ${name} is not a plain name`);
    const path = join(dir, name);
    await writeReportFile(path, text);
    written.push(path);
  }
  return written;
}
