import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../command.js';
import type { RunSet, RunStep } from './report-sets.js';
import { writeReportFile } from '../../bench/report.js';

/**
 * `sdc report --run SET`: each step of the set as its own `sdc` command (in this process, through
 * `main`), with `--out runs/<dir>`, then `runs/run-set.json`: what ran, with which command line
 * and exit code, and what was skipped and why. The report reads that manifest to name the
 * command behind every bench figure.
 */

export interface RunSetManifest {
  readonly run_set: string;
  readonly schema_version: 1;
  readonly summary: string;
  readonly steps: ReadonlyArray<{ readonly dir: string; readonly command: string; readonly exit_code: number | null; readonly skipped?: string }>;
}

// From dist/cli/commands the checkout's own sim/scenarios first, then dist's copy; from the
// sources (cli/commands) the first is outside the checkout and absent. So the reproduce lines read
// `sim/scenarios/...` whether sdc runs built or from source (a built run printed dist/sim/...).
const scenarioDirCandidates = ['../../../sim/scenarios', '../../sim/scenarios'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

async function scenariosDir(): Promise<string> {
  const { stat } = await import('node:fs/promises');
  for (const dir of scenarioDirCandidates) {
    if ((await stat(dir).catch(() => undefined))?.isDirectory() === true) {
      // Relative to the working directory when inside it, so the reproduce lines read `sim/scenarios/...`.
      const rel = relative(process.cwd(), dir);
      return rel.startsWith('..') || isAbsolute(rel) ? dir : rel;
    }
  }
  return scenarioDirCandidates[1]!;
}

export interface RunSetOptions {
  readonly set: RunSet;
  readonly runsDir: string;
  readonly stores: { readonly redis?: string; readonly mysql?: string };
  readonly io: CliIo;
}

function stepArgv(step: RunStep, scenarios: string, stores: RunSetOptions['stores']): string[] {
  const storeArgs = (step.stores ?? []).flatMap((name) => (stores[name] === undefined ? [] : [`--${name}`, stores[name]!]));
  return [...step.argv.map((arg) => arg.replace('{scenarios}', scenarios)), ...storeArgs];
}

/** Runs every step in order (a failing step is recorded and the next one runs); returns the manifest it wrote. */
export async function runReportSet(options: RunSetOptions): Promise<RunSetManifest> {
  const { set, runsDir, io } = options;
  const { main } = await import('../main.js');
  const scenarios = await scenariosDir();
  await mkdir(runsDir, { recursive: true });
  const steps: Array<RunSetManifest['steps'][number]> = [];
  for (const [index, step] of set.steps.entries()) {
    const argv = stepArgv(step, scenarios, options.stores);
    // The command as a reader would type it, stores as URL placeholders (a password may be in one).
    const shown = `sdc ${argv.map((a) => (a === options.stores.redis || a === options.stores.mysql ? 'URL' : a)).join(' ')} --out runs/${step.dir}`;
    if (step.needs !== undefined && options.stores[step.needs] === undefined) {
      steps.push({ dir: step.dir, command: shown, exit_code: null, skipped: `needs --${step.needs}` });
      io.stderr(`[${index + 1}/${set.steps.length}] skipped (needs --${step.needs}): ${shown}\n`);
      continue;
    }
    io.stderr(`[${index + 1}/${set.steps.length}] ${shown}\n`);
    let log = '';
    const quiet: CliIo = { ...io, stdout: (text) => { log += text; }, stderr: (text) => { log += text; }, stderrIsTty: false };
    const code = await main([...argv, '--out', join(runsDir, step.dir)], quiet);
    await writeReportFile(join(runsDir, `${step.dir}.log`), log);
    if (code !== 0) io.stderr(`  exit code ${code} (output in runs/${step.dir}.log)\n`);
    steps.push({ dir: step.dir, command: shown, exit_code: code });
    // After every step, not only at the end: a set of hours stopped part-way still names the commands behind what it wrote (sdc report --from runs).
    await writeManifest(runsDir, set, steps);
  }
  return writeManifest(runsDir, set, steps);
}

async function writeManifest(runsDir: string, set: RunSet, steps: RunSetManifest['steps']): Promise<RunSetManifest> {
  const manifest: RunSetManifest = { run_set: set.name, schema_version: 1, summary: set.summary, steps };
  await writeReportFile(join(runsDir, 'run-set.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
