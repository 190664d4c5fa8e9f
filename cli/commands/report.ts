import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../../core/errors/index.js';
import type { CliIo, Command } from '../command.js';
import { runSet, runSets } from './report-sets.js';

// From the sources (cli/commands) and from dist/cli/commands: the checkout's docs either way.
const docCandidates = (path: string) => [`../../${path}`, `../../../${path}`].map((p) => fileURLToPath(new URL(p, import.meta.url)));
const threatModelCandidates = docCandidates('docs/security/threat-model.md');

/** The docs the diagrams are copied from (bench/report-diagrams.ts), by their path in the checkout. */
async function readDiagramDocs(paths: readonly string[]): Promise<Record<string, string>> {
  const docs: Record<string, string> = {};
  for (const path of paths) {
    for (const candidate of docCandidates(path)) {
      const text = await readFile(candidate, 'utf8').catch(() => undefined);
      if (text !== undefined) { docs[path] = text; break; }
    }
    if (docs[path] === undefined) throw new SdcError('CLI_USAGE', `no ${path} beside this sdc (the report's diagrams are copied from it): run sdc report from a checkout`);
  }
  return docs;
}

async function readThreatModel(path: string | undefined): Promise<string> {
  for (const candidate of path === undefined ? threatModelCandidates : [path]) {
    try {
      return await readFile(candidate, 'utf8');
    } catch {
      // the next candidate
    }
  }
  throw new SdcError('CLI_USAGE', `no threat model at ${path ?? threatModelCandidates.join(' or ')}; pass --threat-model FILE`);
}

/** `--run SET` (default tiny) without --from: the set's steps write into OUT/runs, which is then read like --from. */
async function runNamedSet(name: string, out: string, stores: { redis?: string; mysql?: string }, io: CliIo): Promise<string> {
  const set = runSet(name);
  if (set === undefined) throw new SdcError('CLI_USAGE', `--run ${name} is not one of ${runSets.map((s) => s.name).join(', ')}`);
  const { runReportSet } = await import('./report-run.js');
  const runsDir = join(out, 'runs');
  io.stderr(`run set ${set.name}: ${set.steps.length} steps into ${runsDir}\n`);
  await runReportSet({ set, runsDir, stores, io });
  return runsDir;
}

const stringOption = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** The Grafana dashboard's panels (title and queries), drawn from the /metrics scrapes among the inputs; none when the file is not beside this sdc. */
async function readDashboardPanels(): Promise<Array<{ title: string; exprs: string[] }>> {
  for (const candidate of docCandidates('bench/dashboards/sdc-overview.json')) {
    const text = await readFile(candidate, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const panels = (JSON.parse(text) as { panels?: Array<{ title?: string; targets?: Array<{ expr?: string }> }> }).panels ?? [];
    return panels.map((p) => ({ title: String(p.title ?? ''), exprs: (p.targets ?? []).map((t) => String(t.expr ?? '')) }));
  }
  return [];
}

function mermaidMode(value: unknown): 'svg' | 'source' {
  if (value === undefined || value === 'svg') return 'svg';
  if (value === 'source') return 'source';
  throw new SdcError('CLI_USAGE', `--mermaid takes svg or source, not ${JSON.stringify(value)}`);
}

/** The diagrams as SVG (bench/report-mermaid-render.ts), or the reason they stay sources. */
async function renderDiagrams(sources: ReadonlyArray<{ name: string; mermaid: string }>, io: CliIo): Promise<import('../../bench/report-mermaid-render.js').MermaidRendering> {
  const { renderMermaidSvgs } = await import('../../bench/report-mermaid-render.js');
  const rendering = await renderMermaidSvgs(sources);
  io.stderr(rendering.svgs === null ? `diagrams not drawn: ${rendering.reason}; the Mermaid sources stand alone\n` : `drew ${Object.keys(rendering.svgs).length} diagrams (${rendering.renderer})\n`);
  return rendering;
}

export const reportCommand: Command = {
  name: 'report',
  summary: 'One report (report.md, report.tex, SVG figures, Mermaid sources): runs a named set of benches, simulations and the chaos matrix, or reads recorded outputs with --from (docs/report.md)',
  usage: '--out DIR [--run tiny|paper [--redis URL] [--mysql URL] | --from DIR] [--threat-model FILE] [--mermaid svg|source]',
  optionHelp: [
    ['--out DIR', 'Where report.md, report.tex, *.svg (and *.pdf when rsvg-convert is installed) and *.mmd are written; with --run also runs/'],
    ['--run SET', `Run this set first, into OUT/runs (default when --from is absent: tiny): ${runSets.map((s) => `${s.name}: ${s.summary}`).join('; ')}`],
    ['--redis URL, --mysql URL', 'With --run: stores for the steps that take them (the Redis-only benches are skipped without --redis)'],
    ['--from DIR', 'Recorded outputs instead: bench --out reports, sdc sim --out directories, chaos matrix.json, *.prom scrapes (any layout; read recursively)'],
    ['--threat-model FILE', 'The STRIDE tables to include (default docs/security/threat-model.md)'],
    ['--mermaid svg|source', 'svg (default): draw the diagrams as SVG with mermaid in /usr/bin/chromium (sources only, with the reason, when either is missing); source: sources only, no browser started'],
  ],
  options: { from: { type: 'string' }, out: { type: 'string' }, run: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' }, 'threat-model': { type: 'string' }, mermaid: { type: 'string' } },
  async run(args, io) {
    const out = stringOption(args.values.out);
    if (out === undefined) throw new SdcError('CLI_USAGE', 'missing required option --out');
    const recorded = stringOption(args.values.from);
    const setName = stringOption(args.values.run);
    if (recorded !== undefined && setName !== undefined) throw new SdcError('CLI_USAGE', '--run and --from exclude each other: --run writes its outputs into OUT/runs and reads them');
    const threatModelPath = stringOption(args.values['threat-model']);
    // Checked before anything runs: a set of hours must not end on a missing threat model.
    const threatModel = await readThreatModel(threatModelPath);
    const [{ readReportInputs }, { parseStrideTables }, { buildReport, reportMermaidSources }, { writeReportFiles }, { documentedDiagrams, reportDiagrams }] = await Promise.all([
      import('../../bench/report-inputs.js'), import('../../bench/report-stride.js'), import('../../bench/report-build.js'), import('../../bench/report.js'),
      import('../../bench/report-diagrams.js'),
    ]);
    const diagrams = reportDiagrams(await readDiagramDocs([...new Set(documentedDiagrams.map((d) => d.doc))]));
    const mermaid = mermaidMode(args.values.mermaid);
    const panels = await readDashboardPanels();
    const stores = { ...(stringOption(args.values.redis) ? { redis: stringOption(args.values.redis)! } : {}), ...(stringOption(args.values.mysql) ? { mysql: stringOption(args.values.mysql)! } : {}) };
    const from = recorded ?? await runNamedSet(setName ?? 'tiny', out, stores, io);
    // The command as the report prints it: the same set gives the same text whatever OUT is.
    const command = recorded !== undefined ? `sdc report --from ${recorded}` : `sdc report --run ${setName ?? 'tiny'}${stores.redis ? ' --redis URL' : ''}${stores.mysql ? ' --mysql URL' : ''}`;
    const inputs = await readReportInputs(from);
    const threats = parseStrideTables(threatModel);
    const rendering = mermaid === 'source' ? { svgs: null, reason: 'not asked for (--mermaid source)' } : await renderDiagrams(reportMermaidSources(diagrams), io);
    const files = buildReport({ inputs, threats, command: `${command}${threatModelPath === undefined ? '' : ` --threat-model ${threatModelPath}`}`, diagrams, panels, rendering });
    const paths = await writeReportFiles(out, files);
    const { convertSvgsToPdf } = await import('./report-pdf.js');
    const pdfs = await convertSvgsToPdf(out, Object.keys(files).filter((name) => name.endsWith('.svg')));
    io.stderr(`read ${inputs.benches.length} bench reports, ${inputs.sims.length} sim runs, ${inputs.matrices.length} matrices, ${inputs.scrapes.length} scrapes, ${threats.length} threats; wrote ${paths.length} files to ${out}`
      + `${pdfs === null ? ' (figures as SVG only: no rsvg-convert on the PATH)' : `, and ${pdfs.length} PDF figures (rsvg-convert)`}\n`);
    return 0;
  },
};
