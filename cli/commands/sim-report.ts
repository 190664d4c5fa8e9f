import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { commandStates, type CommandState } from '../../core/protocol/command-machine.js';
import { gitCommit } from '../../bench/output.js';
import type { LatencyPercentiles } from '../../sim/latency-recorder.js';
import type { RunProgress, RunResult, SeriesSample, SimCrypto } from '../../sim/run.js';
import type { Scenario } from '../../sim/scenario.js';
import type { CliIo } from '../command.js';
import { writeReportFile } from '../../bench/report.js';

/**
 * What `sdc sim` reports about one run, the same in the text summary, `--json` and
 * `--out DIR/summary.json`: the run's result, and what a reader needs to trust and repeat it
 * (the commit, the scenario as it ran after defaults and flags, latency percentiles, failures by
 * code, and the final sample, which is the last row of the CSV time series).
 */
export interface SimSummary extends Omit<RunResult, 'series'> {
  /** `git rev-parse HEAD` of the checkout that ran, null outside one. */
  readonly gitCommit: string | null;
  readonly tier: 'full' | 'model';
  /** Full tier only; null in the model tier, which signs nothing. */
  readonly crypto: SimCrypto | null;
  /** The scenario file with --agents and --duration applied: what ran. */
  readonly resolvedScenario: Scenario;
  readonly latencyMs: LatencyPercentiles;
  /**
   * Commands that did not succeed, by outcome (`failed:KERNEL_BUSY`, `rejected:COMMAND_EXPIRED`,
   * `expired`; a state without a device code is the reason itself) and, for requests the
   * control plane refused at creation, `refused:<code>`. Largest first.
   */
  readonly failuresByCode: Readonly<Record<string, number>>;
  /** The last sample of the time series: the CSVs' last rows; its commands equal commandsByState. */
  readonly final: SeriesSample;
}

export function resolvedScenario(scenario: Scenario, result: Pick<RunResult, 'agents' | 'safetyMs'>): Scenario {
  return { ...scenario, agents: result.agents, safetyMs: result.safetyMs };
}

export function failuresByCode(result: Pick<RunResult, 'outcomesByCode' | 'refusalsByCode'>): Record<string, number> {
  const failures: Array<[string, number]> = [
    ...Object.entries(result.outcomesByCode).filter(([key]) => key !== 'succeeded'),
    ...Object.entries(result.refusalsByCode).map(([code, n]): [string, number] => [`refused:${code}`, n]),
  ];
  return Object.fromEntries(failures.filter(([, n]) => n > 0).sort(([a, m], [b, n]) => n - m || a.localeCompare(b)));
}

export function simSummary(result: RunResult, context: { scenario: Scenario; tier: 'full' | 'model'; crypto: SimCrypto }): SimSummary {
  const { series, ...rest } = result;
  // Both tiers end their series with the final sample (sim/run.ts finalSample, sim/model/run-model.ts).
  const final = series.at(-1);
  if (final === undefined) throw new RangeError('a run result without its final sample');
  return {
    ...rest, gitCommit: gitCommit(), tier: context.tier, crypto: context.tier === 'full' ? context.crypto : null,
    resolvedScenario: resolvedScenario(context.scenario, result), failuresByCode: failuresByCode(result), final,
  };
}

function csv(rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  return rows.map((row) => row.join(',')).join('\n') + '\n';
}

/** summary.json and the CSVs: online agents and commands by state over virtual time, and the latency histogram. */
export async function writeSimOutputs(dir: string, summary: SimSummary, series: readonly SeriesSample[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeReportFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  await writeReportFile(join(dir, 'online-agents.csv'), csv([['t_ms', 'online_agents'], ...series.map((s) => [s.t_ms, s.online_agents])]));
  await writeReportFile(join(dir, 'commands-by-state.csv'), csv([['t_ms', ...commandStates], ...series.map((s) => [s.t_ms, ...commandStates.map((state) => s.commands[state])])]));
  await writeReportFile(join(dir, 'latency-histogram.csv'), csv([['le_ms', 'count'], ...summary.latencyHistogram.map((b) => [b.le_ms ?? '+Inf', b.count])]));
}

const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);

function statesOf(commands: Readonly<Record<CommandState, number>>): string {
  const shown = commandStates.filter((state) => commands[state] > 0).map((state) => `${state} ${commands[state]}`);
  return shown.length === 0 ? 'none' : shown.join(', ');
}

/** The rollout's end, in runs with one (both tiers: RunResult.ota). */
function rolloutLine(ota: NonNullable<SimSummary['ota']>): string {
  const states = Object.entries(ota.executionsByState).map(([state, n]) => `${state} ${n}`).join(', ') || 'none';
  return `rollout: ${ota.status}${ota.pauseReason === null ? '' : ` (${ota.pauseReason})`} at wave ${ota.waveIndex}; ${ota.executions} executions: ${states}; record last changed at ${ms(ota.endedAtMs)}`;
}

const count = (n: number | undefined) => (n === undefined ? '-' : n.toLocaleString('en-US'));

/**
 * Telemetry, frames and samples apart (issue 17, batches), as every tier counts it (--real too):
 * frames and batches sent, samples sent and stored, still buffered in the agents at the end,
 * dropped past an agent's buffer bound (the model's telemetry_buffer_dropped), lost with a
 * crashed process where the tier counts it, and the storage delay where there is one.
 */
export function telemetryLine(counts: Readonly<Record<string, number>>, storageDelayMs?: LatencyPercentiles): string {
  const dropped = counts.telemetry_samples_dropped ?? counts.telemetry_buffer_dropped;
  const crashes = counts.telemetry_samples_lost_in_crashes;
  // --real only: rows beyond the distinct samples (sim/real/outside-checks.ts readStoredTelemetry).
  const duplicates = counts.telemetry_stored_duplicates;
  const delay = storageDelayMs === undefined || storageDelayMs.count === 0 ? ''
    : `; storage delay p50 ${ms(storageDelayMs.p50Ms)}, p90 ${ms(storageDelayMs.p90Ms)}, p99 ${ms(storageDelayMs.p99Ms)}, max ${ms(storageDelayMs.maxMs)}`;
  return `telemetry: ${count(counts.telemetry_frames_sent)} frames (${count(counts.telemetry_batch_frames_sent)} batches), `
    + `${count(counts.telemetry_samples_sent)} samples sent, ${count(counts.telemetry_stored)} stored${duplicates === undefined ? '' : ` (${count(duplicates)} duplicates)`}, ${count(counts.telemetry_samples_buffered_end)} buffered at the end, `
    + `${count(dropped)} dropped${crashes === undefined ? '' : `, ${count(crashes)} lost in crashes`}${delay}`;
}

/** The model's verdicts: liveness, and the OTA checkers it answers in runs with a rollout (sim/model/rollout.ts). */
function modelCheckers(s: SimSummary): string {
  return Object.entries(s.checkers).filter(([name]) => name === 'liveness' || name.startsWith('ota_')).map(([name, verdict]) => `${name}=${verdict}`).join(' ');
}

export function describeSimSummary(s: SimSummary): string {
  const checkers = Object.entries(s.checkers).map(([name, verdict]) => `${name}=${verdict}`).join(' ');
  const failures = Object.entries(s.failuresByCode).map(([code, n]) => `${code} ${n}`).join(', ');
  return [
    `scenario ${s.scenario}: ${s.agents} agents, ${s.gateways} gateways, safety ${s.safetyMs} ms, liveness bound ${s.livenessBoundMs} ms`,
    `sdc sim at commit ${s.gitCommit ?? '(not a git checkout)'}, ${s.tier} tier${s.crypto === null ? '' : `, ${s.crypto} crypto`}`,
    `resolved scenario: ${JSON.stringify(s.resolvedScenario)}`,
    `trace hash ${s.traceHash} (${s.traceEvents} events)`,
    `commands accepted ${s.counts.commands_accepted ?? 0}, refused ${s.counts.commands_refused ?? 0}, executions ${s.counts.executions ?? 0}; converged ${s.convergedAfterMs === null ? 'no' : `${s.convergedAfterMs} ms after healing`}`,
    `round trip (creation to device result) of ${s.latencyMs.count}: p50 ${ms(s.latencyMs.p50Ms)}, p90 ${ms(s.latencyMs.p90Ms)}, p99 ${ms(s.latencyMs.p99Ms)}, max ${ms(s.latencyMs.maxMs)}`,
    `failures by code: ${failures || 'none'}`,
    `at the end (t=${s.final.t_ms} ms, the CSVs' last row): ${s.final.online_agents}/${s.agents} agents online; commands ${statesOf(s.final.commands)}`,
    telemetryLine(s.counts, s.telemetryStorageDelayMs),
    ...(s.ota === undefined ? [] : [rolloutLine(s.ota)]),
    s.tier === 'model' ? `model tier: ${modelCheckers(s)} (the other checkers watch the real code's stores and frames)` : `checkers: ${checkers}`,
    `virtual ${s.virtualMs} ms in ${s.wallMs} ms wall, peak rss ${Math.round(s.peakRssBytes / 2 ** 20)} MiB`,
  ].join('\n') + '\n';
}

/** Without a terminal, one line per this share of the run's virtual time (10 %: eleven lines from 0 to 100). */
export const simProgressLinePct = 10;

/**
 * Progress on stderr: a bar redrawn at each whole percent on a terminal (or with --progress);
 * elsewhere a line at each 10 % of virtual time, so a log shows that a long run moves, and the
 * same run prints the same lines. Both end at 100 % when the run ends, also when it converged
 * before the liveness bound (the bound is the 100 %).
 */
export function simProgress(io: CliIo, options: { bar: boolean }): { onProgress: (p: RunProgress) => void; finish: (totalMs: number) => void } {
  let lastPct = -1;
  let last: RunProgress | undefined;
  const draw = (p: RunProgress, pct: number) => {
    const state = `${p.phase} t=${Math.round(p.virtualMs / 1000)}s connected ${p.connected}/${p.agents} commands ${p.commands}`;
    if (options.bar) {
      const filled = Math.floor(pct / 4);
      io.stderr(`\r[${'#'.repeat(filled)}${'.'.repeat(25 - filled)}] ${String(pct).padStart(3)}% ${state}`);
    } else {
      io.stderr(`sim: ${pct}% ${state}\n`);
    }
  };
  return {
    onProgress(p) {
      last = p;
      const pct = Math.min(100, Math.floor((100 * p.virtualMs) / p.totalMs));
      const shown = options.bar ? pct : pct - (pct % simProgressLinePct);
      if (shown <= lastPct) return;
      lastPct = shown;
      draw(p, shown);
    },
    finish(totalMs) {
      if (lastPct < 100 && last !== undefined) draw({ ...last, totalMs }, 100);
      if (options.bar) io.stderr('\n');
    },
  };
}
