import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import { benchReport, renderBenchJson } from '../../bench/output.js';
import { latexProblems, markdownProblems, xmlProblems } from '../../bench/report-check.js';
import { commandTable } from '../../core/protocol/command-machine.js';
import { sessionTable } from '../../core/protocol/session-machine.js';
import { toolOnPath } from './report-pdf.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} });
  return { code, stdout, stderr };
}

/** A tiny set of recorded outputs: a real sim run (two seeds), a bench report, a chaos matrix, and one unreadable file. */
async function recordedOutputs(dir: string): Promise<void> {
  for (const seed of [3, 4]) {
    const run = await sdc(['sim', '--scenario', 'sim/scenarios/smoke.json', '--agents', '2', '--duration', '10s', '--seed', String(seed), '--out', join(dir, 'sims', `seed-${seed}`)]);
    assert.equal(run.code, 0, run.stderr);
  }
  await mkdir(join(dir, 'bench'), { recursive: true });
  const report = benchReport({
    benchmark: 'roundtrip', parameters: { agents: 2 }, units: { p50_ms: 'ms', p99_ms: 'ms' },
    results: [{ measure: 'server', p50_ms: 12.5, p99_ms: 40 }, { measure: 'echo_100%_a_b', p50_ms: 0.4, p99_ms: 1.2 }],
    environment: { node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'Test CPU & co', cpu_count: 2, memory_total_mib: 1024, git_commit: 'abc' },
  });
  await writeFile(join(dir, 'bench', 'roundtrip.json'), renderBenchJson(report));
  // The paper set's `sdc bench sim` as recorded: twelve columns, one of them a 64-character
  // trace hash, and an environment paragraph with the stores and a whole commit. Both ran into
  // the margin (125 and 40 pt) before long tokens were broken and hashes shortened in tables.
  const traceHash = 'f20358513fe2680ff6103c9362a6a9124ce22483a03e4bcd61a9a1419972cb0f';
  const simColumns = ['violations', 'virtual_ms', 'peak_rss_mib', 'startup_cpu_ms_per_agent', 'startup_wall_ms', 'steady_virtual_ms', 'steady_agent_s_per_wall_s', 'steady_agent_s_per_cpu_s', 'steady_cpu_us_per_timer_event'];
  const simRow = (crypto: string, values: number[]) => ({ agents: 1000, crypto, trace_hash: traceHash, ...Object.fromEntries(simColumns.map((c, i) => [c, values[i]!])) });
  await writeFile(join(dir, 'bench', 'sim.json'), renderBenchJson(benchReport({
    benchmark: 'sim', parameters: { agents: 1000 }, units: { agents: 'agents', crypto: 'real or model', trace_hash: 'SHA-256 hex of the run trace', ...Object.fromEntries(simColumns.map((c) => [c, c.includes('per_s') ? 'per second' : 'ms'])) },
    results: [simRow('real', [0, 61_000, 515, 6.214, 5452, 58_000, 73_791, 61_311, 183]), simRow('model', [0, 61_000, 532, 3.883, 3671, 58_000, 48_374, 49_320, 227])],
    environment: {
      node: 'v20.20.2', openssl: '3.0.19', platform: 'linux', arch: 'x64', cpu: 'AMD EPYC', cpu_count: 2, memory_total_mib: 24105, git_commit: '33a222141939c39af3af551967e13fbffd3971ba',
      kernel: '6.18.44-fc-v1252', store_versions: { redis: '7.0.15', mysql: '10.11.19-MariaDB-0+deb12u1' }, load_average_before: [22.96, 14.56, 6.64], load_average_after: [18.87, 14.53, 6.96], loaded_machine: true, seed: 1,
    },
  })));
  await writeFile(join(dir, 'bench', 'roundtrip-percentiles.csv'), 'measure,percentile,latency_ms\nserver,0,1\nserver,50,12.5\nserver,100,40\necho,0,0.1\necho,50,0.4\necho,100,1.2\n');
  await writeFile(join(dir, 'bench', 'metrics.prom'), '# TYPE sdc_agents_online gauge\nsdc_agents_online{role="gateway"} 2\nsdc_telemetry_samples_total{role="gateway"} 40\n');
  await writeFile(join(dir, 'bench', 'broken.json'), '{ not json');
  await writeFile(join(dir, 'matrix.json'), JSON.stringify({
    matrix: 'sdc chaos matrix', schema_version: 1, command: 'sdc chaos matrix --seeds 2', tier: 'full', seeds: 2, base_seed: 1,
    cells: [{ fault: 'partition', invariant: 'none_lost', tier: 'full', seeds: 2, held: 2, failed: [], not_checked: 0, recovery_ms: { p50: 1000, p99: 2000, converged: 2 } }],
  }));
}

/**
 * The recorded outputs, made once for the file and only read by its tests (each writes its reports
 * elsewhere): the two sim runs are most of a test's CPU (about 3.5 s of the first test's 7 s, measured
 * 6 December), and the two tests that read them each made their own until then.
 */
let sharedInputs: Promise<string> | undefined;
let sharedInputsDir: string | undefined;
function recordedInputs(): Promise<string> {
  sharedInputs ??= (async () => {
    sharedInputsDir = await mkdtemp(join(tmpdir(), 'sdc-report-in-'));
    await recordedOutputs(join(sharedInputsDir, 'in'));
    return join(sharedInputsDir, 'in');
  })();
  return sharedInputs;
}
after(async () => {
  if (sharedInputsDir !== undefined) await rm(sharedInputsDir, { recursive: true, force: true });
});

test('sdc report: Markdown, LaTeX, SVG and Mermaid from recorded outputs, well-formed and byte-identical on a second run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-'));
  try {
    const inputs = await recordedInputs();
    // --mermaid source: no browser here (bench/report-mermaid-render.test.ts draws the diagrams).
    const first = await sdc(['report', '--from', inputs, '--out', join(dir, 'a'), '--mermaid', 'source']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /read 2 bench reports, 2 sim runs, 1 matrices, 1 scrapes, \d+ threats/);
    assert.equal((await sdc(['report', '--from', inputs, '--out', join(dir, 'b'), '--mermaid', 'source'])).code, 0);
    const names = (await readdir(join(dir, 'a'))).sort();
    for (const name of ['bench-1-roundtrip.svg', 'bench-1-roundtrip-cdf.svg', 'metrics-1-panel-1.svg', 'sim-smoke-seed-3-commands.svg', 'report.md', 'report.tex', 'sim-smoke-online-1.svg', 'state-command.mmd', 'state-session.mmd', 'state-ota-execution.mmd',
      'diagram-architecture.mmd', 'diagram-enrollment.mmd', 'diagram-command-round-trip.mmd', 'diagram-ota-rollout.mmd']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
    assert.deepEqual((await readdir(join(dir, 'b'))).sort(), names);
    for (const name of names) assert.equal(await readFile(join(dir, 'b', name), 'utf8'), await readFile(join(dir, 'a', name), 'utf8'), `${name} differs between runs`);

    const md = await readFile(join(dir, 'a', 'report.md'), 'utf8');
    const tex = await readFile(join(dir, 'a', 'report.tex'), 'utf8');
    assert.deepEqual(markdownProblems(md), []);
    assert.deepEqual(latexProblems(tex), []);
    for (const name of names.filter((n) => n.endsWith('.svg'))) assert.deepEqual(xmlProblems(await readFile(join(dir, 'a', name), 'utf8')), [], name);
    // booktabs: every table has its three rules.
    const tables = tex.match(/\\begin\{longtable\}/g)?.length ?? 0;
    assert.ok(tables >= 6);
    for (const rule of ['toprule', 'midrule', 'bottomrule']) assert.equal(tex.match(new RegExp(`\\\\${rule}\\b`, 'g'))?.length, tables, rule);
    // The state machines come from the tables: every transition is an edge of the diagram.
    const commandMermaid = await readFile(join(dir, 'a', 'state-command.mmd'), 'utf8');
    for (const [from, events] of Object.entries(commandTable.transitions)) {
      for (const [event, to] of Object.entries(events as Record<string, string>)) assert.match(commandMermaid, new RegExp(`^    ${from} --> ${to}: .*\\b${event}\\b`, 'm'));
    }
    assert.match(await readFile(join(dir, 'a', 'state-session.mmd'), 'utf8'), new RegExp(`\\[\\*\\] --> ${sessionTable.initial}`));
    // The architecture and the three sequences, in the report and beside it.
    for (const title of ['Architecture: components and who talks to whom', 'Sequence: pairing (enrollment)', 'Sequence: command round trip', 'Sequence: OTA rollout']) assert.ok(md.includes(`**${title}**`), title);
    assert.ok(md.includes('```mermaid\n' + await readFile(join(dir, 'a', 'diagram-ota-rollout.mmd'), 'utf8')));
    assert.match(md, /The ota execution machine \(`core\/ota\/execution-machine.ts`\)/);
    // STRIDE: every row of the threat model, with its test.
    const threatModel = await readFile(new URL('../../docs/security/threat-model.md', import.meta.url), 'utf8');
    const strideRows = threatModel.split('\n').filter((l) => /^\| [STRIDE](, [STRIDE])* \|/.test(l)).length;
    assert.match(md, new RegExp(`: ${strideRows} threats over`));
    assert.match(md, /\| Root CA \| S \| A forged root or intermediate is slipped into the path \| `verify-device-certificate.test.ts`/);
    // Simulation per seed, with the command that reproduces it; the bench with its environment; the matrix; the unreadable input named.
    assert.match(md, /\| smoke \| 3 \| 2 \|/);
    assert.match(md, /\| smoke \| 4 \| 2 \|/);
    assert.match(md, /`sdc sim --seed 3 --scenario sim\/scenarios\/smoke.json --agents 2 --duration 10000ms`/);
    assert.match(md, /Environment: Test CPU & co x 2/);
    assert.match(tex, /Test CPU \\& co/);
    assert.match(md, /\| partition \| none_lost \| 2 \| 2 \| 0 \| 0 \| 1000 \| 2000 \|/);
    assert.match(md, /`bench\/broken.json`: not JSON/);
    // Observability: the dashboard's panels from the scrape, named by the bench beside it.
    assert.match(md, /From `bench\/metrics.prom` \(2 samples, scraped at the end of `sdc bench roundtrip` with parameters agents=2\)/);
    assert.match(md, /!\[Agents online/);
    const online = await readFile(join(dir, 'a', 'sim-smoke-online-1.svg'), 'utf8');
    assert.equal(online.match(/class="series"/g)?.length, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sdc report: usage errors', async () => {
  assert.equal((await sdc(['report', '--run', 'tiny'])).code, 2);
  assert.equal((await sdc(['report', '--run', 'nope', '--out', '/tmp/x'])).code, 2);
  assert.equal((await sdc(['report', '--run', 'tiny', '--from', '/tmp', '--out', '/tmp/x'])).code, 2);
  assert.equal((await sdc(['report', '--from', '/nonexistent-sdc-report-dir', '--out', '/tmp/x'])).code, 2);
  assert.equal((await sdc(['report', '--from', '/tmp', '--out', '/tmp/x', '--mermaid', 'png'])).code, 2);
});

const pdflatex = await toolOnPath('pdflatex');
const rsvgConvert = await toolOnPath('rsvg-convert');

/** pdflatex in nonstopmode with halt-on-error: a LaTeX error ends the run with exit code 1 instead of waiting for input. */
async function compileLatex(dir: string, file: string): Promise<{ ok: boolean; stdout: string; log: string }> {
  const run = await promisify(execFile)('pdflatex', ['-interaction=nonstopmode', '-halt-on-error', file], { cwd: dir, timeout: 120_000 })
    .then((r) => ({ ok: true, stdout: r.stdout }), (error: { stdout?: string }) => ({ ok: false, stdout: error.stdout ?? '' }));
  return { ...run, log: await readFile(join(dir, file.replace(/\.tex$/, '.log')), 'utf8').catch(() => '') };
}

/** The widest `Overfull \hbox` in a pdflatex log, in points (0 when none). */
const widestOverfullPt = (log: string) => Math.max(0, ...[...log.matchAll(/Overfull \\hbox \(([\d.]+)pt too wide\)/g)].map((m) => Number(m[1])));

test('sdc report: report.tex compiles with pdflatex, with every figure as a PDF from rsvg-convert', {
  skip: pdflatex && rsvgConvert ? false : 'needs pdflatex and rsvg-convert on the PATH (apt-get install texlive-latex-base texlive-latex-recommended librsvg2-bin); the structural LaTeX and SVG checks run in the test above',
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-pdf-'));
  try {
    const run = await sdc(['report', '--from', await recordedInputs(), '--out', join(dir, 'out')]);
    assert.equal(run.code, 0, run.stderr);
    const names = await readdir(join(dir, 'out'));
    const svgs = names.filter((n) => n.endsWith('.svg'));
    assert.ok(svgs.length >= 5);
    for (const svg of svgs) assert.ok(names.includes(svg.replace(/\.svg$/, '.pdf')), `${svg} has its PDF`);
    assert.match(run.stderr, new RegExp(`and ${svgs.length} PDF figures \\(rsvg-convert\\)`));
    // The check itself: a LaTeX error (here an undefined command) fails the compile.
    await writeFile(join(dir, 'broken.tex'), '\\documentclass{article}\n\\begin{document}\n\\undefinedcommandforthetest\n\\end{document}\n');
    const broken = await compileLatex(dir, 'broken.tex');
    assert.equal(broken.ok, false);
    assert.match(broken.stdout, /^! Undefined control sequence/m);
    const compiled = await compileLatex(join(dir, 'out'), 'report.tex');
    assert.ok(compiled.ok, compiled.stdout.split('\n').filter((l) => l.startsWith('!')).join('\n') || compiled.stdout.slice(-2000));
    assert.match(compiled.stdout, /Output written on report\.pdf \(\d+ pages/);
    // The figures went in as PDFs, not as the fallback boxes.
    assert.doesNotMatch(compiled.stdout, /no PDF converter was available/);
    assert.ok((await readFile(join(dir, 'out', 'report.pdf'))).subarray(0, 5).toString() === '%PDF-');
    // Laid out on the page: no page overfilled (floating figures beside a longtable did, by up to
    // 300 pt) and no line into the margin (tables sized to their contents, code breakable at / . _ -).
    assert.doesNotMatch(compiled.log, /Overfull \\vbox/);
    assert.ok(widestOverfullPt(compiled.log) < 3, `a line ${widestOverfullPt(compiled.log)} pt too wide`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
