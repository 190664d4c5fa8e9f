import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * PDF where a converter exists: `rsvg-convert` (librsvg2-bin) turns each SVG figure into a PDF
 * beside it, which report.tex includes through `\IfFileExists`; without it the figures stay SVG
 * and the LaTeX prints their names. Optional tools are probed, never required.
 */

const run = promisify(execFile);
/** One figure is a few kB of SVG: a converter that takes longer is stuck. */
const convertTimeoutMs = 60_000;

/** Whether `command --version` runs: the tool is on the PATH. */
export async function toolOnPath(command: string): Promise<boolean> {
  try {
    await run(command, ['--version'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Converts `dir/<name>.svg` to `dir/<name>.pdf` for each name; returns the PDFs written, or null when rsvg-convert is absent. */
export async function convertSvgsToPdf(dir: string, svgNames: readonly string[]): Promise<string[] | null> {
  if (!(await toolOnPath('rsvg-convert'))) return null;
  const written: string[] = [];
  for (const name of svgNames) {
    const pdf = name.replace(/\.svg$/, '.pdf');
    // SOURCE_DATE_EPOCH: cairo stamps the PDF with it instead of the time of conversion.
    await run('rsvg-convert', ['--format', 'pdf', '--output', join(dir, pdf), join(dir, name)], { timeout: convertTimeoutMs, env: { ...process.env, SOURCE_DATE_EPOCH: '0' } });
    written.push(pdf);
  }
  return written;
}
