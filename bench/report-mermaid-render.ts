import { access, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The report's Mermaid diagrams as SVG, rendered offline: the `mermaid` package (a devDependency)
 * runs in Debian's /usr/bin/chromium, driven by playwright-core (never a downloaded browser).
 * Optional like the PDF converter: without chromium or mermaid the report keeps the sources and
 * says why nothing was drawn. Ids are deterministic (mermaid's `deterministicIds`), so the same
 * sources in the same browser with the same fonts give the same bytes; another browser version
 * or font set may move text by a pixel, so the report counts these as rendered, not as seeded.
 */

export interface MermaidSource {
  /** File stem of the SVG, for example `diagram-architecture` or `state-command`. */
  readonly name: string;
  readonly mermaid: string;
}

export type MermaidRendering =
  | { readonly svgs: Readonly<Record<string, string>>; readonly renderer: string }
  | { readonly svgs: null; readonly reason: string };

export const defaultChromiumPath = '/usr/bin/chromium';
/** Launch plus seven diagrams took 12 s of wall time at load average 13 on 2 cores; a browser slower than this is stuck. */
const renderTimeoutMs = 120_000;
/** A diagram in this report is a few dozen lines; a larger source is not ours and is not sent to the browser. */
const sourceCharsMax = 64 * 1024;
const sourcesMax = 32;

/** Where the browser bundle of mermaid is, or undefined when the package is not installed. */
function mermaidBundlePath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** What is missing for rendering (chromium, mermaid, playwright-core), or undefined when all three are there. */
export async function mermaidRendererMissing(chromiumPath: string = defaultChromiumPath): Promise<string | undefined> {
  if (!(await exists(chromiumPath))) return `no browser at ${chromiumPath}, Debian's chromium package`;
  if (mermaidBundlePath() === undefined) return 'the mermaid package is not installed, a devDependency';
  const playwright = await import('playwright-core').catch(() => undefined);
  if (playwright === undefined) return 'playwright-core is not installed';
  return undefined;
}

/**
 * Every source rendered in one browser page, in order. Labels are SVG text, not HTML in
 * `foreignObject` (`htmlLabels: false`), so the output is well-formed XML that rsvg-convert and
 * pdflatex's path (SVG -> PDF) can draw. A source mermaid refuses fails the whole call: the
 * sources are ours, so a refusal is a defect to see, not a figure to drop.
 */
export async function renderMermaidSvgs(sources: readonly MermaidSource[], options: { chromiumPath?: string } = {}): Promise<MermaidRendering> {
  const chromiumPath = options.chromiumPath ?? defaultChromiumPath;
  const missing = await mermaidRendererMissing(chromiumPath);
  if (missing !== undefined) return { svgs: null, reason: missing };
  if (sources.length > sourcesMax || sources.some((s) => s.mermaid.length > sourceCharsMax)) throw new RangeError(`at most ${sourcesMax} diagrams of ${sourceCharsMax} characters each`);
  const { chromium } = await import('playwright-core');
  // A HOME of its own: chromium writes its profile there, and the caller's may be read-only.
  const home = await mkdtemp(join(tmpdir(), 'sdc-report-chromium-'));
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], env: { ...process.env, HOME: home }, timeout: renderTimeoutMs });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(renderTimeoutMs);
    await page.setContent('<!doctype html><html><head><meta charset="utf-8"></head><body></body></html>');
    await page.addScriptTag({ path: mermaidBundlePath()! });
    const svgs = await page.evaluate(`(${renderInPage})(${JSON.stringify(sources.map((s) => s.mermaid))})`) as string[];
    const version = browser.version();
    return { svgs: Object.fromEntries(sources.map((s, i) => [s.name, normalizeSvg(svgs[i]!)])), renderer: `mermaid ${mermaidVersion()} in Chromium ${version}` };
  } finally {
    await browser.close().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Runs in the page, where the bundle defined the global `mermaid`. A string, not a function:
 * tsx/esbuild may wrap a function's body in helpers the page does not have. Notes are drawn
 * with rough.js, whose curves take random control points: `handDrawnSeed` fixes its seed, and
 * Math.random is replaced by a seeded generator (mulberry32), reset before each diagram, so
 * two runs draw the same bytes (they did not: the session machine's note differed).
 */
const renderInPage = `async (texts) => {
  const seeded = (seed) => () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', deterministicIds: true, handDrawnSeed: 1, htmlLabels: false, flowchart: { htmlLabels: false }, theme: 'default' });
  const out = [];
  for (let i = 0; i < texts.length; i++) {
    Math.random = seeded(1);
    // One id for all: each diagram is a file of its own, and the same text gives the same bytes wherever it is in the list.
    out.push((await mermaid.render('sdc-diagram', texts[i])).svg);
  }
  return out;
}`;

/**
 * The SVG as a standalone file: mermaid sizes it for a web page (`width="100%"` and a CSS
 * max-width); a file needs its size in pixels, which the viewBox already holds.
 */
export function normalizeSvg(svg: string): string {
  const end = svg.indexOf('>');
  if (!svg.startsWith('<svg ') || end < 0) return svg;
  let open = svg.slice(0, end).replace(/ width="100%"/, '').replace(/ style="max-width: [\d.]+px;"/, '');
  const viewBox = /viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"/.exec(open);
  if (viewBox !== null) open = open.replace(/^<svg /, `<svg width="${Math.ceil(Number(viewBox[1]))}" height="${Math.ceil(Number(viewBox[2]))}" `);
  const out = open + svg.slice(end);
  return out.endsWith('\n') ? out : out + '\n';
}

function mermaidVersion(): string {
  try {
    return String((createRequire(import.meta.url)('mermaid/package.json') as { version?: string }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
