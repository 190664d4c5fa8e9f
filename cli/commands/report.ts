import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../../core/errors/index.js';
import type { Command } from '../command.js';

// From the sources (cli/commands) and from dist/cli/commands: the checkout's docs either way.
const threatModelCandidates = ['../../docs/security/threat-model.md', '../../../docs/security/threat-model.md'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

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

export const reportCommand: Command = {
  name: 'report',
  summary: 'One report (report.md, report.tex, SVG figures, Mermaid sources) from recorded bench, sim and chaos matrix outputs (docs/report.md)',
  usage: '--from DIR --out DIR [--threat-model FILE]',
  optionHelp: [
    ['--from DIR', 'Recorded outputs: bench --out reports, sdc sim --out directories, chaos matrix.json (any layout; read recursively)'],
    ['--out DIR', 'Where report.md, report.tex, *.svg and state-*.mmd are written'],
    ['--threat-model FILE', 'The STRIDE tables to include (default docs/security/threat-model.md)'],
  ],
  options: { from: { type: 'string' }, out: { type: 'string' }, 'threat-model': { type: 'string' } },
  async run(args, io) {
    const from = args.values.from;
    const out = args.values.out;
    if (typeof out !== 'string' || out.length === 0) throw new SdcError('CLI_USAGE', 'missing required option --out');
    // This first slice reads recorded outputs; running the benches and simulations itself comes later.
    if (typeof from !== 'string' || from.length === 0) throw new SdcError('CLI_USAGE', 'missing required option --from: run the benches and simulations with --out into one directory, then sdc report --from it');
    const threatModelPath = typeof args.values['threat-model'] === 'string' ? args.values['threat-model'] : undefined;
    const [{ readReportInputs }, { parseStrideTables }, { buildReport }, { writeReportFiles }] = await Promise.all([
      import('../../bench/report-inputs.js'), import('../../bench/report-stride.js'), import('../../bench/report-build.js'), import('../../bench/report.js'),
    ]);
    const inputs = await readReportInputs(from);
    const threats = parseStrideTables(await readThreatModel(threatModelPath));
    const files = buildReport({ inputs, threats, command: `sdc report --from ${from}${threatModelPath === undefined ? '' : ` --threat-model ${threatModelPath}`}` });
    const paths = await writeReportFiles(out, files);
    io.stderr(`read ${inputs.benches.length} bench reports, ${inputs.sims.length} sim runs, ${inputs.matrices.length} matrices, ${threats.length} threats; wrote ${paths.length} files to ${out}\n`);
    return 0;
  },
};
