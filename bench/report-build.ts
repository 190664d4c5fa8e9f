import { executionTable } from '../core/ota/execution-machine.js';
import { commandTable } from '../core/protocol/command-machine.js';
import { sessionTable } from '../core/protocol/session-machine.js';
import type { TransitionTable } from '../core/protocol/state-machine.js';
import { benchColumns, type BenchReport, type BenchValue, type RepeatedBenchReport } from './output.js';
import { formatNumber, renderBarChartSvg, type Cell } from './report.js';
import { latexProblems, markdownProblems, xmlProblems } from './report-check.js';
import { renderLatex, renderMarkdown, type Block, type ReportDocument, type Section } from './report-document.js';
import { lineSeriesMax, renderLineChartSvg } from './report-figures.js';
import type { ReportInputs, SimRun } from './report-inputs.js';
import { mermaidStateDiagram, transitionRows } from './report-mermaid.js';
import type { Diagram } from './report-diagrams.js';
import type { MermaidRendering, MermaidSource } from './report-mermaid-render.js';
import { againstAgentsFigures, cdfFigure, commandsByStateFigure, matrixRecoveryFigure, ratioFigure, recoveryFigure } from './report-plots.js';
import { pairScrapes, scrapeFigures, type DashboardPanel } from './report-scrapes.js';
import type { StrideThreat } from './report-stride.js';
import { k6Sections } from './report-k6.js';

/**
 * `sdc report`: one document from recorded outputs, rendered as report.md and report.tex with
 * the SVG figures and Mermaid sources beside them. Nothing here reads a clock, the environment
 * or the file system: the same inputs give the same bytes (the test runs it twice).
 */
export interface ReportBuildInput {
  readonly inputs: ReportInputs;
  readonly threats: readonly StrideThreat[];
  /** What the report says produced it, for example `sdc report --from runs/`. */
  readonly command: string;
  /** Architecture and sequence diagrams (bench/report-diagrams.ts reportDiagrams); none when absent. */
  readonly diagrams?: readonly Diagram[];
  /** The Grafana dashboard's panels (bench/dashboards/sdc-overview.json), drawn from each /metrics scrape among the inputs. */
  readonly panels?: readonly DashboardPanel[];
  /** The Mermaid sources (reportMermaidSources) drawn as SVG, or why not; absent: sources only, nothing said. */
  readonly rendering?: MermaidRendering;
}

/** Bar chart groups are capped (bench/report.ts): a bench with more rows shows its first ones. */
const chartGroupsMax = 32;

type Files = Record<string, string>;

const stateMachines: ReadonlyArray<[string, string, TransitionTable<string, string>]> = [
  ['session', 'core/protocol/session-machine.ts', sessionTable], ['command', 'core/protocol/command-machine.ts', commandTable],
  ['ota-execution', 'core/ota/execution-machine.ts', executionTable],
];

/** Every Mermaid source the report shows (`diagram-*`, then `state-*`), for a renderer to draw before the report is built. */
export function reportMermaidSources(diagrams: readonly Diagram[] = []): MermaidSource[] {
  return [
    ...diagrams.map((d) => ({ name: `diagram-${d.name}`, mermaid: d.mermaid })),
    ...stateMachines.map(([name, , table]) => ({ name: `state-${name}`, mermaid: mermaidStateDiagram(table) })),
  ];
}

/** The drawn diagram as a figure (its SVG written beside the report), when the renderer drew it. */
function renderedFigure(name: string, caption: string, rendering: MermaidRendering | undefined, files: Files): Block[] {
  const svg = rendering?.svgs?.[name];
  if (svg === undefined) return [];
  files[`${name}.svg`] = svg;
  return [{ kind: 'figure', file: `${name}.svg`, caption }];
}

/** What a section says about drawing: by which renderer, or why the sources stand alone. */
function renderingNote(rendering: MermaidRendering | undefined, pattern: string): string {
  if (rendering === undefined) return `The Mermaid sources are also written as \`${pattern}.mmd\`.`;
  if (rendering.svgs === null) return `Not drawn here: ${rendering.reason}. The Mermaid sources stand alone, also written as \`${pattern}.mmd\` (GitHub draws the \`mermaid\` blocks of report.md).`;
  return `Drawn by ${rendering.renderer} from the Mermaid sources shown under each figure (also written as \`${pattern}.mmd\`; the figures as \`${pattern}.svg\`).`;
}

function stateMachineSection(files: Files, rendering: MermaidRendering | undefined): Section {
  const blocks: Block[] = [{ kind: 'paragraph', text: `Each diagram is generated from the transition table the code runs (\`[state][event] -> state\`), not drawn by hand. ${renderingNote(rendering, 'state-*')}` }];
  for (const [name, source, table] of stateMachines) {
    const mermaid = mermaidStateDiagram(table);
    files[`state-${name}.mmd`] = mermaid;
    blocks.push(
      { kind: 'paragraph', text: `The ${name.replace('-', ' ')} machine (\`${source}\`): initial \`${table.initial}\`, terminal ${table.terminal.map((s) => `\`${s}\``).join(', ')}.` },
      ...renderedFigure(`state-${name}`, `The ${name.replace('-', ' ')} machine, from its transition table`, rendering, files),
      { kind: 'code', language: 'mermaid', text: mermaid },
      { kind: 'table', header: ['from', 'event', 'to'], rows: transitionRows(table) },
    );
  }
  return { title: 'Protocol state machines', level: 1, blocks };
}

function diagramSection(diagrams: readonly Diagram[], files: Files, rendering: MermaidRendering | undefined): Section {
  const blocks: Block[] = [{ kind: 'paragraph', text: `${renderingNote(rendering, 'diagram-*')} The architecture and the enrollment and command sequences are copied from the docs named under each.` }];
  for (const diagram of diagrams) {
    files[`diagram-${diagram.name}.mmd`] = diagram.mermaid;
    blocks.push(
      { kind: 'paragraph', text: `**${diagram.title}** (from ${diagram.source}):` },
      ...renderedFigure(`diagram-${diagram.name}`, diagram.title, rendering, files),
      { kind: 'code', language: 'mermaid', text: diagram.mermaid },
    );
  }
  return { title: 'Architecture and sequences', level: 1, blocks };
}

function strideSection(threats: readonly StrideThreat[]): Section {
  const marked = threats.filter((t) => t.markedUntested).length;
  // Neither marked nor naming a test file (a function or a mechanism instead): not counted as covered, and listed.
  const unnamed = threats.filter((t) => !t.markedUntested && !t.covered);
  const covered = threats.length - marked - unnamed.length;
  return {
    title: 'Security analysis: STRIDE', level: 1, blocks: [
      { kind: 'paragraph', text: `From \`docs/security/threat-model.md\`: ${threats.length} threats over ${new Set(threats.map((t) => t.component)).size} components; ${covered} name the test that covers them, ${marked} are marked untested or a gap${unnamed.length === 0 ? '' : `, and ${unnamed.length} ${unnamed.length === 1 ? 'names' : 'name'} no test file (${unnamed.map((t) => `${t.component}: ${t.threat}`).join('; ')})`}.` },
      { kind: 'table', header: ['component', 'STRIDE', 'threat', 'test'], rows: threats.map((t) => [t.component, t.stride, t.threat, t.test]) },
    ],
  };
}

function cellOf(value: BenchValue | undefined): Cell {
  if (value === undefined || value === null) return '';
  return typeof value === 'number' ? value : String(value);
}

function environmentText(report: BenchReport<object>): string {
  const e = report.environment;
  // Fields added with the suite's environment block; older recorded reports lack them and say nothing.
  const extra = [
    e.kernel === undefined ? '' : ` kernel ${e.kernel},`,
    e.store_versions === undefined ? '' : ` stores ${Object.entries(e.store_versions).map(([k, v]) => `${k} ${v}`).join(', ')},`,
    e.seed === undefined || e.seed === null ? '' : ` seed ${String(e.seed)},`,
  ].join('');
  const load = e.load_average_before === undefined || e.load_average_after === undefined ? ''
    : ` Load average (1/5/15 min) ${e.load_average_before.map(formatNumber).join('/')} before, ${e.load_average_after.map(formatNumber).join('/')} after${e.loaded_machine === true ? ': a loaded machine (load above the CPU count), so these figures are pessimistic' : ''}.`;
  return `Environment: ${e.cpu} x ${e.cpu_count}, ${formatNumber(e.memory_total_mib)} MiB, Node ${e.node}, OpenSSL ${e.openssl}, ${e.platform}/${e.arch},${extra} commit \`${e.git_commit ?? 'unknown'}\`.${load}`;
}

/** The step of a run set (`sdc report --run`) whose directory holds `path`, when the report ran it. */
function runStepOf(inputs: ReportInputs, path: string): { command: string; exit_code: number | null } | undefined {
  for (const set of inputs.runSets) {
    const base = set.path.includes('/') ? set.path.slice(0, set.path.lastIndexOf('/') + 1) : '';
    const step = set.steps.find((s) => path.startsWith(`${base}${s.dir}/`));
    if (step !== undefined) return step;
  }
  return undefined;
}

function commandText(report: BenchReport<Record<string, unknown>>, step: { command: string } | undefined): string {
  if (step !== undefined) return `Command: \`${step.command}\`.`;
  const recorded = report.details?.['command'];
  if (typeof recorded === 'string') return `Command: \`${recorded}\`.`;
  const parameters = Object.entries(report.parameters).map(([k, v]) => `${k}=${String(v)}`).join(', ');
  return `Command: \`sdc bench ${report.benchmark}\` with parameters ${parameters || '(none)'}.`;
}

/** Percentile bars when the rows carry p50/p99 columns, one group per row (labelled by its text columns). */
function benchFigure(report: BenchReport<object>, file: string, files: Files): Block | undefined {
  const series = ['p50_ms', 'p90_ms', 'p99_ms'].filter((c) => report.results.some((r) => typeof r[c] === 'number'));
  if (series.length === 0) return undefined;
  const rows = report.results.filter((r) => series.some((c) => typeof r[c] === 'number')).slice(0, chartGroupsMax);
  const label = (r: BenchReport<object>['results'][number]) => Object.values(r).filter((v) => typeof v === 'string').join(' ') || '-';
  files[file] = renderBarChartSvg({
    title: `sdc bench ${report.benchmark}: latency percentiles`, unit: 'ms', scale: 'log', series,
    groups: rows.map((r) => ({ label: label(r), values: series.map((c) => Math.max(0, Number(r[c] ?? 0))) })),
  });
  return { kind: 'figure', file, caption: `sdc bench ${report.benchmark}: ${series.join(', ')} per row (log scale; wall-clock figures)` };
}

function performanceSection(inputs: ReportInputs, files: Files): Section[] {
  const sections: Section[] = [{ title: 'Performance', level: 1, blocks: [{ kind: 'paragraph', text: inputs.benches.length === 0 ? 'No benchmark reports among the inputs.' : 'Wall-clock measurements: they vary between runs and machines. Each table names the environment and command that produced it.' }] }];
  inputs.benches.forEach(({ path, report }, i) => {
    const columns = benchColumns(report);
    const blocks: Block[] = [
      { kind: 'paragraph', text: `From \`${path}\`. ${commandText(report, runStepOf(inputs, path))}` },
      { kind: 'paragraph', text: environmentText(report) },
      { kind: 'table', header: columns, rows: report.results.map((r) => columns.map((c) => cellOf(r[c]))) },
      { kind: 'paragraph', text: `Units: ${Object.entries(report.units).map(([k, u]) => `\`${k}\` ${u}`).join('; ')}.` },
    ];
    const repeats = (report as RepeatedBenchReport).repeats;
    if (repeats !== undefined) {
      blocks.push({ kind: 'paragraph', text: `Across ${repeats.count} repeats (\`--repeat ${repeats.count}\`; the table above holds medians): min, median and max of each figure.` });
      blocks.push({ kind: 'table', header: ['row', 'label', 'field', 'min', 'median', 'max'], rows: repeats.spread.map((r) => [r.row, String(r.label ?? ''), String(r.field), Number(r.min), Number(r.median), Number(r.max)]) });
    }
    const figure = benchFigure(report, `bench-${i + 1}-${report.benchmark.replace(/[^a-z0-9-]/gi, '')}.svg`, files);
    for (const block of [figure, cdfFigure(inputs.benches[i]!, i, files), ratioFigure(inputs.benches[i]!, i, files)]) if (block !== undefined) blocks.push(block);
    sections.push({ title: `sdc bench ${report.benchmark}`, level: 2, blocks });
  });
  const fleet = againstAgentsFigures(inputs.benches, files, (bench) => `from \`${bench.path}\`. ${commandText(bench.report, runStepOf(inputs, bench.path))}`);
  if (fleet.length > 0) sections.push({ title: 'Against fleet size', level: 2, blocks: [{ kind: 'paragraph', text: 'Throughput and memory of each bench run at two or more fleet sizes (or whose rows are fleet sizes), one point per run.' }, ...fleet] });
  return sections;
}

const shownStates = ['succeeded', 'failed', 'rejected', 'expired', 'timed_out', 'dead_lettered'];

function simRow(run: SimRun): Cell[] {
  const s = run.summary;
  const states = s.commandsByState;
  const shown = shownStates.map((k) => states[k] ?? 0);
  const other = Object.entries(states).filter(([k]) => !shownStates.includes(k)).reduce((n, [, v]) => n + v, 0);
  const failing = Object.entries(s.checkers).filter(([, v]) => v !== 'pass').map(([k, v]) => `${k}=${v}`);
  return [s.scenario, s.seed, s.agents, s.virtualMs / 1000, ...shown, other, s.latencyMs.p50Ms, s.latencyMs.p99Ms, s.convergedAfterMs ?? '', failing.length === 0 ? 'all pass' : failing.join(' '), s.traceHash.slice(0, 12)];
}

function simFigures(sims: readonly SimRun[], files: Files): Block[] {
  const blocks: Block[] = [];
  const byScenario = new Map<string, SimRun[]>();
  for (const run of sims) if (run.onlineAgents.length > 0) byScenario.set(run.summary.scenario, [...(byScenario.get(run.summary.scenario) ?? []), run]);
  for (const [scenario, runs] of byScenario) {
    for (let i = 0; i < runs.length; i += lineSeriesMax) {
      const chunk = runs.slice(i, i + lineSeriesMax);
      const file = `sim-${scenario.replace(/[^a-z0-9-]/gi, '')}-online-${i / lineSeriesMax + 1}.svg`;
      files[file] = renderLineChartSvg({
        title: `${scenario}: agents online over virtual time`, xLabel: 'virtual time (s)', yLabel: 'agents online',
        series: chunk.map((r) => ({ name: `seed ${r.summary.seed}`, points: r.onlineAgents.map(([t, n]) => [t / 1000, n] as const) })),
      });
      blocks.push({ kind: 'figure', file, caption: `${scenario}: agents online over virtual time, seeds ${chunk.map((r) => r.summary.seed).join(', ')} (deterministic)` });
    }
  }
  return blocks;
}

function simulationSection(sims: readonly SimRun[], files: Files): Section {
  if (sims.length === 0) return { title: 'Simulation results', level: 1, blocks: [{ kind: 'paragraph', text: 'No `sdc sim --out` summaries among the inputs.' }] };
  const aggregate = new Map<string, { runs: number; succeeded: number; commands: number; p99Max: number; passing: number }>();
  for (const { summary: s } of sims) {
    const a = aggregate.get(s.scenario) ?? { runs: 0, succeeded: 0, commands: 0, p99Max: 0, passing: 0 };
    a.runs += 1;
    a.succeeded += s.commandsByState['succeeded'] ?? 0;
    a.commands += Object.values(s.commandsByState).reduce((n, v) => n + v, 0);
    a.p99Max = Math.max(a.p99Max, s.latencyMs.p99Ms);
    a.passing += Object.values(s.checkers).every((v) => v === 'pass') ? 1 : 0;
    aggregate.set(s.scenario, a);
  }
  return {
    title: 'Simulation results', level: 1, blocks: [
      { kind: 'paragraph', text: 'Deterministic: a run is fixed by its seed, scenario and commit (the trace hash identifies it), so these figures are reproduced byte for byte by the command listed for each seed. Latencies are in virtual milliseconds.' },
      { kind: 'table', header: ['scenario', 'seed', 'agents', 'virtual_s', ...shownStates, 'other', 'p50_ms', 'p99_ms', 'converged_after_ms', 'checkers', 'trace'], rows: sims.map(simRow) },
      { kind: 'paragraph', text: 'Aggregated per scenario:' },
      { kind: 'table', header: ['scenario', 'runs', 'commands', 'succeeded', 'p99_ms_max', 'runs_all_checkers_pass'], rows: [...aggregate].map(([k, a]) => [k, a.runs, a.commands, a.succeeded, a.p99Max, a.passing]) },
      { kind: 'paragraph', text: 'Reproduce:' },
      { kind: 'list', items: sims.map((r) => `\`${r.summary.reproduce}\``) },
      ...simFigures(sims, files),
      ...perSeedFigures(sims, files),
    ],
  };
}

/** Seeds per scenario drawn one by one (commands by state, recovery); the table above has every seed. */
const seedFiguresMax = 6;

function perSeedFigures(sims: readonly SimRun[], files: Files): Block[] {
  const drawn = new Map<string, number>();
  const blocks: Block[] = [];
  for (const run of sims) {
    const count = drawn.get(run.summary.scenario) ?? 0;
    if (count >= seedFiguresMax) continue;
    drawn.set(run.summary.scenario, count + 1);
    for (const block of [commandsByStateFigure(run, files), recoveryFigure(run, files)]) if (block !== undefined) blocks.push(block);
  }
  return blocks;
}

/**
 * `, repeat K of N` for the scrapes of one repeat of a `--repeat N` bench (the suite names them
 * `metrics-repeat-K-series.jsonl`, bench/output.ts repeatFileName): each repeat ran its own
 * deployment, so each gets its own set of panels and every caption says which repeat it shows.
 */
function repeatOf(path: string, report: BenchReport<Record<string, unknown>> | undefined): string {
  const repeat = /-repeat-(\d+)-(series\.jsonl#\d+|start\.prom|end\.prom)$/.exec(path)?.[1];
  if (repeat === undefined) return '';
  const count = (report as RepeatedBenchReport | undefined)?.repeats?.count;
  return `, repeat ${repeat}${count === undefined ? '' : ` of ${count}`}`;
}

function observabilitySection(input: ReportBuildInput, files: Files): Section {
  const { inputs } = input;
  if (inputs.scrapes.length === 0) return { title: 'Observability', level: 1, blocks: [{ kind: 'paragraph', text: 'No /metrics scrape (`*.prom`) among the inputs: `sdc bench roundtrip --out D` and `sdc bench ingest --out D` record two, `D/metrics-start.prom` and `D/metrics-end.prom`.' }] };
  const blocks = pairScrapes(inputs.scrapes).flatMap((source, i) => {
    const path = source.end.path;
    const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
    const bench = inputs.benches.find((b) => b.path.startsWith(dir) && !b.path.slice(dir.length).includes('/'));
    const step = runStepOf(inputs, path);
    const command = step !== undefined ? `\`${step.command}\`` : bench === undefined ? undefined : commandText(bench.report, undefined).replace(/^Command: /, '').replace(/\.$/, '');
    return scrapeFigures(source, i, input.panels ?? [], files, command === undefined ? undefined : `${command}${repeatOf(path, bench?.report)}`);
  });
  return { title: 'Observability', level: 1, blocks };
}

function matrixSection(inputs: ReportInputs, files: Files): Section[] {
  return inputs.matrices.map(({ path, matrix }, index) => {
    const cells = (matrix['cells'] as Array<Record<string, unknown>>).map((c): Cell[] => {
      const recovery = (c['recovery_ms'] ?? {}) as { p50?: number | null; p99?: number | null };
      return [String(c['fault']), String(c['invariant']), Number(c['seeds']), Number(c['held']), Array.isArray(c['failed']) ? c['failed'].length : 0, Number(c['not_checked']), recovery.p50 ?? '', recovery.p99 ?? ''];
    });
    return {
      title: 'Fault matrix', level: 1, blocks: [
        { kind: 'paragraph', text: `From \`${path}\`: \`${String(matrix['command'])}\`, ${String(matrix['seeds'])} seeds per fault from base seed ${String(matrix['base_seed'])}, tier ${String(matrix['tier'])}.` },
        { kind: 'table', header: ['fault', 'invariant', 'seeds', 'held', 'failed', 'not_checked', 'recovery_p50_ms', 'recovery_p99_ms'], rows: cells },
        ...[matrixRecoveryFigure(matrix, index, files)].filter((b): b is Block => b !== undefined),
      ],
    } satisfies Section;
  });
}

function aboutSection(input: ReportBuildInput): Section {
  const { inputs } = input;
  const blocks: Block[] = [
    { kind: 'paragraph', text: `Produced by \`${input.command}\` from ${inputs.benches.length} benchmark reports, ${inputs.sims.length} simulation runs${(inputs.k6 ?? []).length === 0 ? ' and' : ','} ${inputs.matrices.length} fault matrices${(inputs.k6 ?? []).length === 0 ? '' : ` and ${inputs.k6!.length} k6 summaries`}.` },
    { kind: 'list', items: [
      'Deterministic (the same inputs give the same bytes): the state machines and the Mermaid sources (from the code\'s transition tables), the STRIDE table (from the threat model file), the simulation results (each run named by its `sdc sim --seed` command, each figure by its scenario and seeds) and the fault matrix (named by its `sdc chaos matrix` command with its base seed). Their figures and captions say "deterministic".',
      'Wall-clock (vary between runs; read with their environment, load average included): the benchmark tables and figures (Performance, k6 summaries included; each table named by the command that made it, a plot against fleet size by the run behind each point) and the /metrics panels (Observability; named by their scrape files and the command that made them). Their figures and captions say "wall-clock".',
      ...(input.rendering?.svgs ? [`Rendered: the diagrams drawn as SVG by ${input.rendering.renderer}; the same sources give the same SVG with the same browser and fonts.`] : []),
    ] },
  ];
  for (const set of inputs.runSets) {
    blocks.push(
      { kind: 'paragraph', text: `The inputs were made by the run set \`${set.name}\` (\`${set.path}\`): ${set.summary}. Each step, with the command that made its outputs:` },
      { kind: 'table', header: ['step', 'command', 'exit code'], rows: set.steps.map((s) => [s.dir, `\`${s.command}\``, s.skipped === undefined ? String(s.exit_code) : `skipped: ${s.skipped}`]) },
    );
  }
  if (inputs.skipped.length > 0) blocks.push({ kind: 'paragraph', text: 'Inputs that could not be read:' }, { kind: 'list', items: inputs.skipped.map((s) => `\`${s.path}\`: ${s.reason}`) });
  return { title: 'About this report', level: 1, blocks };
}

/** The report's files (name -> text): report.md, report.tex, the SVGs and the Mermaid sources; checked before they are returned. */
export function buildReport(input: ReportBuildInput): Record<string, string> {
  const files: Files = {};
  const doc: ReportDocument = {
    title: 'Secure Device Control: report',
    sections: [aboutSection(input), ...(input.diagrams === undefined || input.diagrams.length === 0 ? [] : [diagramSection(input.diagrams, files, input.rendering)]), stateMachineSection(files, input.rendering), strideSection(input.threats), ...performanceSection(input.inputs, files), ...k6Sections(input.inputs.k6 ?? []), simulationSection(input.inputs.sims, files), ...matrixSection(input.inputs, files), observabilitySection(input, files)],
  };
  const out: Files = { 'report.md': renderMarkdown(doc), 'report.tex': renderLatex(doc), ...files };
  const problems = [
    ...markdownProblems(out['report.md']!).map((p) => `report.md: ${p}`),
    ...latexProblems(out['report.tex']!).map((p) => `report.tex: ${p}`),
    ...Object.entries(out).filter(([name]) => name.endsWith('.svg')).flatMap(([name, text]) => xmlProblems(text).map((p) => `${name}: ${p}`)),
  ];
  // A malformed file is a defect in these writers, never the inputs' fault: say so loudly.
  if (problems.length > 0) throw new Error(`sdc report produced malformed output: ${problems.slice(0, 5).join('; ')}`);
  return out;
}
