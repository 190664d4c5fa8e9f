import { SeededRandom } from '../../core/random/prng.js';
import type { Violation } from '../../sim/checkers.js';
import type { RunResult } from '../../sim/run.js';
import { parseScenario, type Scenario } from '../../sim/scenario.js';
import { percentile } from '../../bench/stats.js';

/**
 * The fault matrix (issue 11): every fault of the simulator's catalogue, alone, over N seeds,
 * against every invariant the simulator checks. One cell per fault and invariant says how many
 * seeds ran, how many held, which failed (each with a command that reproduces it) and the time to
 * converge after healing. A fault's parameters (when it starts, how long, how hard) are drawn from
 * the seed, so a seed names one run exactly.
 */

/** The invariants of a cell: the simulator's checkers (sim/checkers.ts), and one it cannot check. */
export const matrixInvariants = [
  'none_lost', 'at_most_once', 'audit_chain', 'presence', 'liveness', 'not_executed', 'legal_transitions', 'session_seq', 'no_unauthenticated_access',
] as const;
export type MatrixInvariant = (typeof matrixInvariants)[number];

/** What the issue calls each invariant, for the table. */
export const invariantTitles: Readonly<Record<MatrixInvariant, string>> = {
  none_lost: 'none lost', at_most_once: 'none twice', audit_chain: 'audit intact', presence: 'presence converges', liveness: 'converges in bound',
  not_executed: 'not-run states true', legal_transitions: 'legal histories', session_seq: 'session seq', no_unauthenticated_access: 'no unauthenticated access',
};

/** Why a column or row has no figures: said in the table, never left blank. */
const unauthenticatedNotChecked = 'not checked by the simulator: its sessions are admitted by device id without TLS and its commands are created inside the control plane without tokens, so it has no unauthenticated path to try; with --real, each real-socket run tries one from outside during and after its fault (TLS without a certificate, self-signed, revoked; HTTP without a token, malformed, forged) and the real-sockets column judges it';

/** Fixed so that a seed alone names a run: a LAN-like link, two gateways, one command a second. */
export interface MatrixShape {
  readonly agents: number;
  readonly safetyMs: number;
}

export const matrixShapeDefault: MatrixShape = { agents: 10, safetyMs: 20_000 };
const livenessBoundMs = 60_000;
const gateways = 2;

type Faults = Scenario['faults'];
interface FaultDraw { readonly faults: Faults; readonly churn?: Scenario['churn'] }

export interface MatrixFault {
  readonly name: string;
  /** What it stands for (roadmap 13.2 or the issue's list). */
  readonly summary: string;
  /** The `sdc chaos run` scenario that puts the same fault on real sockets, if any. */
  readonly realScenario?: string;
  readonly draw: (random: SeededRandom, shape: MatrixShape) => FaultDraw;
}

/** A window inside the safety phase that leaves at least 5 s of it after the fault. */
function window(random: SeededRandom, shape: MatrixShape, durationMsMax: number): { atMs: number; durationMs: number } {
  const durationMs = random.intBetween(500, durationMsMax);
  return { atMs: random.intBetween(1_000, Math.max(1_000, shape.safetyMs - durationMs - 5_000)), durationMs };
}

const lan = { delayMsMin: 1, delayMsMax: 20 };

export const matrixFaults: readonly MatrixFault[] = [
  {
    name: 'drop', summary: 'frames lost inside a connection (1 in 10 to 1 in 100): beyond TCP, which drops the connection instead', realScenario: 'drop',
    draw: (r) => ({ faults: { network: { ...lan, loss: { numerator: 1, denominator: r.intBetween(10, 100) } } } }),
  },
  {
    name: 'delay', summary: 'slow links: 1 ms to 0.2-2 s per frame, jittered (FIFO per direction)', realScenario: 'latency',
    draw: (r) => ({ faults: { network: { delayMsMin: 1, delayMsMax: r.intBetween(200, 2_000) } } }),
  },
  {
    name: 'duplicate', summary: 'frames delivered twice (1 in 5 to 1 in 50)',
    draw: (r) => ({ faults: { network: { ...lan, duplicate: { numerator: 1, denominator: r.intBetween(5, 50) } } } }),
  },
  {
    name: 'reorder', summary: 'frames overtaken by later ones (1 in 5 to 1 in 50, held up to 500 ms)',
    draw: (r) => ({ faults: { network: { ...lan, reorder: { numerator: 1, denominator: r.intBetween(5, 50) }, reorderDelayMsMax: 500 } } }),
  },
  {
    name: 'partition', summary: 'a seeded fraction of the agents (1/2 to 1/5) cut off from every gateway for 0.5-8 s', realScenario: 'partition',
    draw: (r, shape) => ({ faults: { network: lan, partitions: [{ ...window(r, shape, 8_000), agents: { numerator: 1, denominator: r.intBetween(2, 5) } }] } }),
  },
  {
    name: 'agent_crash', summary: 'agents vanish without a close (journal and kernel survive) and boot after 0.1-10 s; 30-120 per agent-hour', realScenario: 'agent-kill',
    draw: (r) => ({ faults: { network: lan, agentCrashes: { perAgentHour: r.intBetween(30, 120), downMsMin: 100, downMsMax: r.intBetween(100, 10_000) } } }),
  },
  {
    name: 'gateway_crash', summary: 'one gateway aborts (links reset) and a new one starts after 0-10 s', realScenario: 'gateway-crash',
    draw: (r, shape) => ({
      faults: { network: lan, gatewayRestarts: [{ atMs: r.intBetween(1_000, shape.safetyMs - 5_000), gateway: `gw-${r.intBetween(1, gateways)}`, downMs: r.intBetween(0, 10_000) }] },
    }),
  },
  {
    name: 'redis_down', summary: 'every stream bus call fails (STORE_UNAVAILABLE) for 0.5-8 s: the Redis streams between the services', realScenario: 'redis-cut',
    draw: (r, shape) => ({ faults: { network: lan, busOutages: [window(r, shape, 8_000)] } }),
  },
  {
    name: 'redis_down_at_start', summary: 'the same from t = 0, while the services start (issue 11, swarm seed 12292)', realScenario: 'redis-down-at-start',
    draw: (r) => ({ faults: { network: lan, busOutages: [{ atMs: 0, durationMs: r.intBetween(500, 8_000) }] } }),
  },
  {
    name: 'sql_down', summary: 'every SQL call fails (STORE_UNAVAILABLE) for 0.5-8 s', realScenario: 'mysql-cut',
    draw: (r, shape) => ({ faults: { network: lan, sqlOutages: [window(r, shape, 8_000)] } }),
  },
  {
    name: 'sql_down_at_start', summary: 'the same from t = 0, while the services start (issue 11, swarm seed 61503)', realScenario: 'mysql-down-at-start',
    draw: (r) => ({ faults: { network: lan, sqlOutages: [{ atMs: 0, durationMs: r.intBetween(500, 8_000) }] } }),
  },
  {
    name: 'kernel_error', summary: 'the mock kernel answers BUSY or IO_ERROR to 1 in 3 to 1 in 20 calls', realScenario: 'kernel-errors',
    draw: (r) => ({ faults: { network: lan, kernelErrors: { ratio: { numerator: 1, denominator: r.intBetween(3, 20) }, status: r.pick(['BUSY', 'IO_ERROR'] as const) } } }),
  },
  {
    name: 'kernel_latency', summary: '1 in 2 to 1 in 10 kernel calls answer 0.1-5 s late (a slow driver)',
    draw: (r) => ({ faults: { network: lan, kernelLatency: { ratio: { numerator: 1, denominator: r.intBetween(2, 10) }, delayMs: r.intBetween(100, 5_000) } } }),
  },
  {
    name: 'clock_skew', summary: 'each agent clock off by up to 1-30 s either way', realScenario: 'clock-skew',
    draw: (r) => ({ faults: { network: lan, clockSkewMsMax: r.intBetween(1_000, 30_000) } }),
  },
  {
    name: 'churn', summary: 'orderly disconnects, 30-120 per agent-hour, away 0.1-10 s',
    draw: (r) => ({ faults: { network: lan }, churn: { perAgentHour: r.intBetween(30, 120), offlineMsMin: 100, offlineMsMax: r.intBetween(100, 10_000) } }),
  },
];

/** Faults of the issue's list the simulator does not model: a row each, with where they are covered instead. */
export const unsimulatedFaults: ReadonlyArray<{ readonly name: string; readonly summary: string; readonly coveredBy: string; readonly realScenario?: string }> = [
  { name: 'expired_jwt', summary: "an operator's JWT expiring mid-session", coveredBy: 'not simulated (the simulator creates commands inside the control plane, without tokens); on real sockets with --real', realScenario: 'jwt-expiry' },
  { name: 'revoked_certificate', summary: 'a device certificate revoked while connected', coveredBy: 'not simulated (no certificates in the simulator); on real sockets with --real, and test/e2e/revocation.test.ts', realScenario: 'cert-revoked' },
  { name: 'ota_mid_download', summary: 'an update download cut mid-way', coveredBy: 'not in the simulator\'s fault catalogue (its rollouts cut downloads in sim/scenarios/ota-cut-download.json, the agent\'s update runner on the simulator\'s ports); on real sockets with --real: a rollout whose artifact downloads the proxy\'s limit_data cuts', realScenario: 'ota-cut' },
];

export function matrixFault(name: string): MatrixFault | undefined {
  return matrixFaults.find((fault) => fault.name === name);
}

/** The scenario of one cell run: the fixed shape plus the fault drawn from the seed. */
export function matrixScenario(fault: MatrixFault, seed: number, shape: MatrixShape = matrixShapeDefault): Scenario {
  // A fork of its own, so the fault's draws never shift the run's (which start from the same seed).
  const random = new SeededRandom(seed).fork();
  const { faults, churn } = fault.draw(random, shape);
  return parseScenario({
    name: `matrix-${fault.name}-${seed}`,
    description: `fault matrix: ${fault.summary}`,
    agents: shape.agents, gateways, safetyMs: shape.safetyMs, livenessBoundMs, heartbeatIntervalMs: 10_000, telemetryIntervalMs: 30_000,
    commands: { perMinute: 60, ttlMs: 600_000, mix: { EXEC_PING_KERNEL: 4, EXEC_GET_STATUS: 2, EXEC_LOCK_SCREEN: 1, EXEC_GET_PROCESS_LIST: 1 } },
    ...(churn ? { churn } : {}),
    faults,
  }, `matrix fault ${fault.name} seed ${seed}`);
}

export type MatrixTier = 'full' | 'model';

export interface MatrixOptions {
  readonly faults: readonly MatrixFault[];
  /** Seeds baseSeed .. baseSeed + seeds - 1 for every fault. */
  readonly seeds: number;
  readonly baseSeed: number;
  readonly shape: MatrixShape;
  readonly tier: MatrixTier;
  /** Runs one cell's seed (the CLI passes the simulator's runners; a test may pass its own). */
  readonly run: (input: { scenario: Scenario; seed: number; tier: MatrixTier; shape: MatrixShape; scenarioRef: string }) => Promise<MatrixRunOutcome>;
  readonly onRun?: (fault: string, seed: number, outcome: MatrixRunOutcome) => void;
  /**
   * With `--real`: runs a fault's real-socket scenario once (`sdc chaos run`); undefined when the
   * fault has none, or it needs a store that was not given.
   */
  readonly real?: (fault: { readonly name: string; readonly realScenario?: string }) => Promise<MatrixRealOutcome | undefined>;
}

/** What the matrix keeps of one real-socket run: its checkers' verdicts by the matrix's invariant names. */
export interface MatrixRealOutcome {
  readonly scenario: string;
  readonly checkers: Readonly<Record<string, 'pass' | 'fail' | 'not_reached'>>;
  readonly violations: ReadonlyArray<{ readonly checker: string; readonly message: string }>;
  readonly rerun: string;
  /** Violations of the scenario's own checks that name no invariant (`checker: message`); they fail the real run too. */
  readonly scenarioFailures?: readonly string[];
}

/** What the matrix keeps of one run. */
export interface MatrixRunOutcome {
  readonly checkers: Readonly<Record<Violation['checker'], 'pass' | 'fail' | 'not_reached'>>;
  readonly violations: readonly Violation[];
  readonly convergedAfterMs: number | null;
}

export interface FailedSeed {
  readonly seed: number;
  /** Reruns the seed through `sdc chaos matrix`. */
  readonly reproduce: string;
  /** With --out: replays it through `sdc sim` from the scenario file written beside the matrix. */
  readonly sim_reproduce?: string;
  readonly violation: string;
}

export interface MatrixCell {
  readonly fault: string;
  readonly invariant: MatrixInvariant;
  readonly tier: MatrixTier;
  /** Seeds run; `held + failed.length + not_checked` is this. */
  readonly seeds: number;
  readonly held: number;
  readonly failed: readonly FailedSeed[];
  /** Seeds where this invariant was not judged: a live violation stopped the run first, or the tier does not check it. */
  readonly not_checked: number;
  /** Virtual ms from healing to convergence over the seeds that converged (the row's, the same in each of its cells). */
  readonly recovery_ms: { readonly p50: number | null; readonly p99: number | null; readonly converged: number };
  readonly note?: string;
  /** With --real: the fault's real-socket run, once, and whether this invariant held there. */
  readonly real?: {
    readonly scenario: string; readonly verdict: 'held' | 'failed' | 'not_checked'; readonly rerun: string; readonly violation?: string;
    /** The scenario's own checks that name no invariant and failed (ota-cut's no_splice, resume): the fault's real run failed. */
    readonly scenario_failures?: readonly string[];
  };
}

export interface MatrixReport {
  readonly matrix: 'sdc chaos matrix';
  readonly schema_version: 1;
  readonly command: string;
  readonly tier: MatrixTier;
  readonly seeds: number;
  readonly base_seed: number;
  readonly shape: MatrixShape & { readonly gateways: number; readonly liveness_bound_ms: number; readonly commands_per_minute: number };
  readonly faults: ReadonlyArray<{ readonly name: string; readonly summary: string; readonly real_scenario: string | null }>;
  readonly unsimulated: typeof unsimulatedFaults;
  readonly invariants: readonly MatrixInvariant[];
  readonly cells: readonly MatrixCell[];
  readonly runs: number;
  readonly wall_ms: number;
}

/** How to rerun one seed of one cell: the same fault, seed and shape through `sdc chaos matrix`. */
export function rerunLine(fault: string, seed: number, shape: MatrixShape, tier: MatrixTier): string {
  return `sdc chaos matrix --fault ${fault} --seeds 1 --base-seed ${seed} --agents ${shape.agents} --duration ${shape.safetyMs}ms${tier === 'full' ? '' : ' --tier model'} --verbose`;
}

const tierChecks = (tier: MatrixTier, invariant: MatrixInvariant): boolean => invariant !== 'no_unauthenticated_access' && (tier === 'full' || invariant === 'liveness');

export async function runMatrix(options: MatrixOptions, commandLine: string): Promise<MatrixReport> {
  const wallStart = performance.now();
  const cells: MatrixCell[] = [];
  let runs = 0;
  for (const fault of options.faults) {
    const outcomes: Array<{ seed: number; outcome: MatrixRunOutcome }> = [];
    for (let i = 0; i < options.seeds; i += 1) {
      const seed = options.baseSeed + i;
      const scenario = matrixScenario(fault, seed, options.shape);
      const outcome = await options.run({ scenario, seed, tier: options.tier, shape: options.shape, scenarioRef: `matrix:${fault.name}` });
      runs += 1;
      options.onRun?.(fault.name, seed, outcome);
      outcomes.push({ seed, outcome });
    }
    const real = await options.real?.(fault);
    cells.push(...faultCells(fault.name, outcomes, options).map((cell) => withReal(cell, real)));
  }
  // Faults the simulator does not model: with --real, a row of real-socket verdicts alone.
  for (const fault of options.real === undefined ? [] : unsimulatedFaults) {
    const real = await options.real?.(fault);
    if (real === undefined) continue;
    cells.push(...matrixInvariants.map((invariant) => withReal({
      fault: fault.name, invariant, tier: options.tier, seeds: 0, held: 0, failed: [], not_checked: 0,
      recovery_ms: { p50: null, p99: null, converged: 0 }, note: fault.coveredBy,
    }, real)));
  }
  return {
    matrix: 'sdc chaos matrix', schema_version: 1, command: commandLine, tier: options.tier, seeds: options.seeds, base_seed: options.baseSeed,
    shape: { ...options.shape, gateways, liveness_bound_ms: livenessBoundMs, commands_per_minute: 60 },
    faults: options.faults.map((f) => ({ name: f.name, summary: f.summary, real_scenario: f.realScenario ?? null })),
    unsimulated: unsimulatedFaults, invariants: [...matrixInvariants], cells, runs, wall_ms: Math.round(performance.now() - wallStart),
  };
}

/** The real run's verdict for a cell; session_seq and unauthenticated access are not judged from outside. */
function withReal(cell: MatrixCell, real: MatrixRealOutcome | undefined): MatrixCell {
  if (real === undefined) return cell;
  const verdict = real.checkers[cell.invariant];
  const violation = real.violations.find((v) => v.checker === cell.invariant)?.message;
  return {
    ...cell,
    real: {
      scenario: real.scenario, rerun: real.rerun, verdict: verdict === 'pass' ? 'held' : verdict === 'fail' ? 'failed' : 'not_checked',
      ...(violation === undefined ? {} : { violation }),
      ...(real.scenarioFailures === undefined || real.scenarioFailures.length === 0 ? {} : { scenario_failures: real.scenarioFailures }),
    },
  };
}

function faultCells(fault: string, outcomes: ReadonlyArray<{ seed: number; outcome: MatrixRunOutcome }>, options: MatrixOptions): MatrixCell[] {
  const recoveries = outcomes.map(({ outcome }) => outcome.convergedAfterMs).filter((ms): ms is number => ms !== null).sort((a, b) => a - b);
  const recovery_ms = {
    p50: recoveries.length === 0 ? null : percentile(recoveries, 0.5), p99: recoveries.length === 0 ? null : percentile(recoveries, 0.99), converged: recoveries.length,
  };
  return matrixInvariants.map((invariant) => {
    if (!tierChecks(options.tier, invariant)) {
      const note = invariant === 'no_unauthenticated_access' ? unauthenticatedNotChecked : 'the model tier checks liveness only';
      return { fault, invariant, tier: options.tier, seeds: outcomes.length, held: 0, failed: [], not_checked: outcomes.length, recovery_ms, note };
    }
    let held = 0;
    let notChecked = 0;
    const failed: FailedSeed[] = [];
    for (const { seed, outcome } of outcomes) {
      const verdict = outcome.checkers[invariant as Violation['checker']];
      if (verdict === 'pass') held += 1;
      else if (verdict === 'fail') {
        const violation = outcome.violations.find((v) => v.checker === invariant)?.message ?? '';
        failed.push({ seed, reproduce: rerunLine(fault, seed, options.shape, options.tier), violation });
      } else notChecked += 1;
    }
    return { fault, invariant, tier: options.tier, seeds: outcomes.length, held, failed, not_checked: notChecked, recovery_ms };
  });
}

/** The table for a paper: one row per fault, one column per invariant, `held/seeds` in each cell. */
export function renderMatrixMarkdown(report: MatrixReport): string {
  const checked = report.invariants.filter((inv) => tierChecks(report.tier, inv));
  const withReal = report.cells.some((c) => c.real !== undefined);
  const header = ['fault', ...checked.map((inv) => invariantTitles[inv]), 'recovery p50 / p99 (ms)', ...(withReal ? ['real sockets'] : [])];
  const lines = [
    `# Fault matrix (${report.tier} tier)`, '',
    `Made by \`${report.command}\`: ${report.faults.length} faults x ${report.seeds} seeds (from ${report.base_seed}), ${report.shape.agents} agents, ${report.shape.gateways} gateways,`
      + ` a ${report.shape.safetyMs} ms safety phase with the fault, then healed with a ${report.shape.liveness_bound_ms} ms liveness bound; ${report.runs} runs in ${Math.round(report.wall_ms / 1000)} s of wall time.`,
    'Each cell: seeds where the invariant held / seeds where it was judged (a run stopped by an earlier violation is not judged). Recovery: virtual ms from healing (the end of the safety phase) to convergence (every command terminal, every agent connected, presence right), over the seeds that converged; convergence is checked every virtual second, so 1000 means converged at the first check.', '',
    `| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const fault of report.faults) {
    const row = [fault.name];
    let recovery = '';
    for (const inv of checked) {
      const cell = report.cells.find((c) => c.fault === fault.name && c.invariant === inv)!;
      const judged = cell.held + cell.failed.length;
      row.push(`${cell.held}/${judged}${cell.failed.length > 0 ? ' **FAIL**' : ''}`);
      recovery = `${cell.recovery_ms.p50 ?? '-'} / ${cell.recovery_ms.p99 ?? '-'}`;
    }
    row.push(recovery);
    if (withReal) row.push(realSummary(report.cells.filter((c) => c.fault === fault.name)));
    lines.push(`| ${row.join(' | ')} |`);
  }
  for (const fault of report.unsimulated.filter((f) => report.cells.some((c) => c.fault === f.name))) {
    lines.push(`| ${[fault.name, ...checked.map(() => 'not simulated'), '-', realSummary(report.cells.filter((c) => c.fault === fault.name))].join(' | ')} |`);
  }
  lines.push('', 'Not in this table:', '');
  if (report.invariants.includes('no_unauthenticated_access')) lines.push(`- no unauthenticated access: ${unauthenticatedNotChecked}.`);
  if (withReal) lines.push('- real sockets: `held` when every invariant the run judged from outside held (none lost, none twice, audit, presence and reconnection, liveness, no unauthenticated access, and the scenario\'s own checks); session seq is not judged from outside.');
  if (report.tier === 'model') lines.push('- the model tier checks liveness only; the other invariants need the full tier.');
  for (const fault of report.unsimulated.filter((f) => !report.cells.some((c) => c.fault === f.name))) lines.push(`- ${fault.name} (${fault.summary}): ${fault.coveredBy}.`);
  const failures = report.cells.filter((c) => c.failed.length > 0);
  lines.push('', '## Failing seeds', '');
  if (failures.length === 0) lines.push('None.');
  for (const cell of failures) {
    for (const f of cell.failed) lines.push(`- ${cell.fault} / ${cell.invariant}, seed ${f.seed}: ${f.violation} — \`${f.reproduce}\``);
  }
  for (const cell of report.cells.filter((c) => c.real?.verdict === 'failed')) {
    lines.push(`- ${cell.fault} / ${cell.invariant}, on real sockets (${cell.real!.scenario}): ${cell.real!.violation ?? ''} — \`${cell.real!.rerun}\``);
  }
  for (const fault of report.faults.map((f) => f.name).concat(report.unsimulated.map((f) => f.name))) {
    const real = report.cells.find((c) => c.fault === fault && c.real?.scenario_failures !== undefined)?.real;
    if (real !== undefined) lines.push(`- ${fault}, the scenario's own checks on real sockets (${real.scenario}): ${real.scenario_failures!.join('; ')} — \`${real.rerun}\``);
  }
  lines.push('', '## Faults', '');
  for (const fault of report.faults) lines.push(`- ${fault.name}: ${fault.summary}${fault.real_scenario ? ` (on real sockets: \`sdc chaos run --scenario ${fault.real_scenario}\`)` : ''}`);
  return `${lines.join('\n')}\n`;
}

/** One word for a fault's real-socket run over the invariants it judged: `held (partition)`, `FAIL (...)`, or `-`. */
function realSummary(cells: readonly MatrixCell[]): string {
  const real = cells.find((c) => c.real !== undefined)?.real;
  if (real === undefined) return '-';
  return `${cells.some((c) => c.real?.verdict === 'failed' || c.real?.scenario_failures !== undefined) ? '**FAIL**' : 'held'} (${real.scenario})`;
}

/** The simulator's runners as the matrix calls them (imported when the command runs). */
export async function simulatorRunner(): Promise<MatrixOptions['run']> {
  const [{ runSimulation }, { runModel }] = await Promise.all([import('../../sim/run.js'), import('../../sim/model/run-model.js')]);
  return async ({ scenario, seed, tier, shape, scenarioRef }) => {
    const options = { scenario, scenarioRef, seed, agents: shape.agents, safetyMs: shape.safetyMs };
    const result: RunResult = tier === 'model' ? runModel(options) : await runSimulation({ ...options, crypto: 'model' });
    return { checkers: result.checkers, violations: result.violations, convergedAfterMs: result.convergedAfterMs };
  };
}
