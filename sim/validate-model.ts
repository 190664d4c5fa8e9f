import { runModel } from './model/run-model.js';
import type { ModelRunResult } from './model/summary.js';
import { runSimulation, type RunResult, type SeriesSample } from './run.js';
import type { Scenario } from './scenario.js';

/**
 * `sdc sim --validate-model`: runs the full tier (the real code) and the model tier on one
 * scenario, seed and fleet, and compares their aggregates, each against a tolerance written
 * down here with its reason. Both tiers draw the workload and the faults from the same seeded
 * streams (the same commands for the same devices at the same times, the same crashes, churn and
 * partition members), so what may differ is only what the model draws on its own: link delays
 * and losses once the two runs' frames stop lining up, reconnect jitter, backoff jitter.
 *
 * A comparison fails when the difference exceeds its tolerance; the run as a whole fails when
 * any does, or when the full tier itself reported a violation (the comparison is then moot).
 */
export interface ValidationOptions {
  readonly scenario: Scenario;
  readonly scenarioRef: string;
  readonly seed: number;
  readonly agents?: number;
  readonly safetyMs?: number;
  readonly onPhase?: (tier: 'full' | 'model') => void;
}

export interface Comparison {
  readonly metric: string;
  readonly full: number | null;
  readonly model: number | null;
  /** |full - model|, or for a series the per-sample statistic named by the metric; null when either side has no value. */
  readonly difference: number | null;
  /** The largest difference allowed, in the metric's unit. */
  readonly tolerance: number;
  readonly ok: boolean;
  readonly reason: string;
}

export interface ValidationReport {
  readonly seed: number;
  readonly scenario: string;
  readonly agents: number;
  readonly safetyMs: number;
  readonly ok: boolean;
  readonly comparisons: readonly Comparison[];
  readonly full: RunResult;
  readonly model: ModelRunResult;
}

/** The tolerances and why each is what it is (docs/simulation.md, "Model tier", repeats them). */
export const toleranceReasons = Object.freeze({
  exact: 'drawn from the same seeded stream in both tiers: any difference is a defect in one of them',
  onlineMean: 'reconnect jitter is the model\'s own draw, so an agent may be back one 1 s sample earlier or later: mean |diff| <= max(1, 2% of the fleet)',
  onlineMax: 'during a mass reconnect (gateway crash, end of a partition) the agents back by a given second are two independent draws of a wave of up to N agents (standard deviation of their difference at most sqrt(N/2)): max |diff| <= max(2, 3 sqrt(N/2))',
  outcome: 'a fault that hits a command in flight (a lost frame, a restart, a partition) decides its fate at frame level, where the model\'s draws differ: |diff| <= max(2, 5% of the commands)',
  p50: 'link delays are the same distributions, drawn separately once frames stop lining up; read off the same histogram: |diff| <= max(10 ms, 25%)',
  p90: 'as p50, with fewer samples in the tail: |diff| <= max(20 ms, 35%)',
  p99: 'with a few hundred commands p99 is one or two commands (a retried delivery, a recovered result): same or adjacent histogram bucket',
  recovery: 'the last command to finish sets it; a frame lost in one tier and not the other waits for the redelivery sweep (30 s interval, 5 s sweeps): |diff| <= max(3 s, 50%), or 35 s when the scenario loses frames inside connections',
  faultRecovery: 'how long agents stay away (from the end of a partition, from the crash of a gateway, whose agents can fail over) and how long unfinished commands stay piled up after a fault, as the area of the excess over the pre-fault level divided by its peak (the mean time away of agents that drop at once): reconnect and retry jitter are drawn by each tier: |diff| <= max(3 samples, 50%)',
  sessions: 'reconnects follow the model\'s own jitter and, with losses, its own silences: |diff| <= max(2, 15%)',
  telemetry: 'samples in flight or buffered across a fault edge, lost on a lossy link (and the next refused by the chain check), or moved by a crash (each tier draws the rebooted agent\'s new telemetry phase itself: one sample either way); per virtual minute: |diff| <= 5% + (3 + crashes) over the run',
  telemetryFrames: 'telemetry batches (scenario telemetrySamplesPerFrame > 1): a batch goes when full or at its delay, from the same phases and interval in both tiers; a reconnect flushes a partial batch at a time each tier draws, and a crash or a lost frame moves a batch: per virtual minute: |diff| <= 5% + (3 + crashes) over the run, frames and samples sent alike',
  telemetryDelay: 'a stored sample\'s wait (sampled to stored) is its place in its batch (the same phases and interval in both tiers) plus link delays, drawn separately; a reconnect\'s flush comes at a time each tier draws: |diff| <= max(one telemetry interval, 10%)',
  frames: 'frame counts follow the sessions and the retries; per virtual minute: |diff| <= 10% + 10 over the run',
  otaEnd: 'the rollout\'s end (status, pause reason, wave) follows from the waves (assignWaves over the same device order), the thresholds (decideRollout, the same function) and the bricks, which both tiers draw with the same selector from the same seeded phase, so any run of n devices holds the same number of bricks: exact',
  otaDrawn: 'drawn from the full tier\'s OTA stream with its own selectors, in the order devices take the release, and counted over every execution of the run: exact',
  otaStates: 'which device ends how follows from the same draws, but a device that takes its notice a link delay later in one tier may fall on the other side of a pause, a cut window or a step timeout: |diff| <= max(2, 5% of the executions)',
  otaDownloads: 'cuts and requests follow when each device reaches its download: after paces drawn from the same runner streams, but behind notices and reports over links the model draws itself (and a partition moves them by seconds): |diff| <= max(5, 20%)',
  otaEndTime: 'when the record last changed (the pause, or the last wave\'s completion): the sweep ticks once a second and each report crosses a link whose delay each tier draws, over about ten steps: |diff| <= max(3 s, 15%)',
});

function compare(metric: string, full: number | null, model: number | null, tolerance: number, reason: string, difference?: number): Comparison {
  const diff = difference ?? (full === null || model === null ? null : Math.abs(full - model));
  const ok = diff === null ? full === model : diff <= tolerance;
  return { metric, full, model, difference: diff, tolerance, ok, reason };
}

/** A percentile read off a latency histogram, linear within its bucket; null without samples. */
export function histogramPercentile(histogram: RunResult['latencyHistogram'], fraction: number): number | null {
  const total = histogram.reduce((sum, bucket) => sum + bucket.count, 0);
  if (total === 0) return null;
  const rank = fraction * total;
  let below = 0;
  let lowerMs = 0;
  for (const bucket of histogram) {
    const upperMs = bucket.le_ms ?? lowerMs;
    if (below + bucket.count >= rank && bucket.count > 0) return Math.round(lowerMs + ((rank - below) / bucket.count) * (upperMs - lowerMs));
    below += bucket.count;
    lowerMs = upperMs;
  }
  return lowerMs;
}

function bucketOf(histogram: RunResult['latencyHistogram'], valueMs: number | null): number | null {
  if (valueMs === null) return null;
  const index = histogram.findIndex((bucket) => bucket.le_ms === null || valueMs <= bucket.le_ms);
  return index === -1 ? histogram.length - 1 : index;
}

function onlineComparisons(full: readonly SeriesSample[], model: readonly SeriesSample[], agents: number): Comparison[] {
  const byTime = new Map(model.map((s) => [s.t_ms, s.online_agents]));
  const common = full.filter((s) => byTime.has(s.t_ms));
  const diffs = common.map((s) => Math.abs(s.online_agents - byTime.get(s.t_ms)!));
  const mean = (values: readonly number[]) => (values.length === 0 ? 0 : Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 100) / 100);
  const fullMean = mean(common.map((s) => s.online_agents));
  const modelMean = mean(common.map((s) => byTime.get(s.t_ms)!));
  return [
    compare('online_agents per sample, mean |diff|', fullMean, modelMean, Math.max(1, 0.02 * agents), toleranceReasons.onlineMean, mean(diffs)),
    compare('online_agents per sample, max |diff|', fullMean, modelMean, Math.max(2, 3 * Math.sqrt(agents / 2)), toleranceReasons.onlineMax, diffs.length === 0 ? 0 : Math.max(...diffs)),
  ];
}

function outcomeComparisons(full: RunResult, model: RunResult): Comparison[] {
  const keys = [...new Set([...Object.keys(full.outcomesByCode), ...Object.keys(model.outcomesByCode)])].sort();
  const tolerance = Math.max(2, 0.05 * (full.counts.commands_accepted ?? 0));
  return keys.map((key) => compare(`outcome ${key}`, full.outcomesByCode[key] ?? 0, model.outcomesByCode[key] ?? 0, tolerance, toleranceReasons.outcome));
}

function latencyComparisons(full: RunResult, model: RunResult): Comparison[] {
  const p = (result: RunResult, fraction: number) => histogramPercentile(result.latencyHistogram, fraction);
  const rel = (value: number | null, absMs: number, share: number) => Math.max(absMs, share * (value ?? 0));
  const p99Full = p(full, 0.99);
  const p99Model = p(model, 0.99);
  return [
    compare('latency p50 ms', p(full, 0.5), p(model, 0.5), rel(p(full, 0.5), 10, 0.25), toleranceReasons.p50),
    compare('latency p90 ms', p(full, 0.9), p(model, 0.9), rel(p(full, 0.9), 20, 0.35), toleranceReasons.p90),
    compare('latency p99 bucket', bucketOf(full.latencyHistogram, p99Full), bucketOf(model.latencyHistogram, p99Model), 1, `${toleranceReasons.p99} (p99 ${p99Full} ms vs ${p99Model} ms)`),
  ];
}

/** Each fault window that ends inside the safety phase: when it starts and ends (virtual ms). */
export function faultWindows(scenario: Scenario, safetyMs: number): Array<{ name: string; startMs: number; endMs: number }> {
  const f = scenario.faults;
  const windows = [
    ...(f.partitions ?? []).map((p, i) => ({ name: `partition ${i + 1}`, startMs: p.atMs, endMs: Math.min(safetyMs, p.atMs + p.durationMs) })),
    ...(f.gatewayRestarts ?? []).map((r) => ({ name: `restart ${r.gateway}`, startMs: r.atMs, endMs: r.atMs + r.downMs })),
    ...(f.busOutages ?? []).map((o, i) => ({ name: `bus outage ${i + 1}`, startMs: o.atMs, endMs: o.atMs + o.durationMs })),
    ...(f.sqlOutages ?? []).map((o, i) => ({ name: `sql outage ${i + 1}`, startMs: o.atMs, endMs: o.atMs + o.durationMs })),
  ];
  return windows.filter((w) => w.startMs < safetyMs && w.endMs <= safetyMs && w.startMs < w.endMs);
}

/**
 * How long the fleet takes to recover from a fault, as an area rather than a threshold crossing
 * (one agent more or less at one sample moves it little): from `fromMs`, the excess over the
 * level at the last sample before `startMs` (`excessOf`: agents missing, or commands piled up) is
 * summed over the series until it is gone after `endMs` (or the series ends), and divided by its
 * peak. For agents that all drop at once and come back one by one it is their mean time away.
 * 0 when nothing was in excess; null without a sample before the fault.
 */
export function meanRecoveryMs(series: readonly SeriesSample[], window: { startMs: number; fromMs: number; endMs: number }, excessOf: (sample: SeriesSample, before: SeriesSample) => number): number | null {
  const before = [...series].reverse().find((s) => s.t_ms <= window.startMs);
  if (before === undefined) return null;
  const after = series.filter((s) => s.t_ms >= window.fromMs);
  let areaMs = 0;
  let peak = 0;
  for (let i = 0; i < after.length; i += 1) {
    const excess = Math.max(0, excessOf(after[i]!, before));
    if (excess === 0 && after[i]!.t_ms >= window.endMs) break;
    peak = Math.max(peak, excess);
    areaMs += excess * Math.max(0, (after[i + 1]?.t_ms ?? after[i]!.t_ms) - after[i]!.t_ms);
  }
  return peak === 0 ? 0 : Math.round(areaMs / peak);
}

const unfinished = (s: SeriesSample): number => (s.commands.queued ?? 0) + (s.commands.sent ?? 0) + (s.commands.ack_received ?? 0) + (s.commands.executing ?? 0);

function recoveryComparisons(scenario: Scenario, safetyMs: number, full: RunResult, model: RunResult): Comparison[] {
  const lossy = (scenario.faults.network?.loss?.numerator ?? 0) > 0 || Object.values(scenario.faults.gatewayLinks ?? {}).some((l) => (l.loss?.numerator ?? 0) > 0);
  const converged = full.convergedAfterMs;
  const sampleMs = full.series.length > 1 ? full.series[1]!.t_ms - full.series[0]!.t_ms : 1_000;
  const both = (metric: string, window: { startMs: number; fromMs: number; endMs: number }, excessOf: (s: SeriesSample, before: SeriesSample) => number) => {
    const fullMs = meanRecoveryMs(full.series, window, excessOf);
    return compare(metric, fullMs, meanRecoveryMs(model.series, window, excessOf), Math.max(3 * sampleMs, 0.5 * (fullMs ?? 0)), toleranceReasons.faultRecovery);
  };
  return [
    compare('converged after heal ms', converged, model.convergedAfterMs, lossy ? 35_000 : Math.max(3_000, 0.5 * (converged ?? 0)), toleranceReasons.recovery),
    ...faultWindows(scenario, safetyMs).flatMap((w) => [
      // Partitioned agents cannot come back before the partition ends; a crashed gateway's agents can fail over at once.
      both(`online recovery after ${w.name} ms`, { ...w, fromMs: w.name.startsWith('partition') ? w.endMs : w.startMs }, (s, before) => before.online_agents - s.online_agents),
      both(`command backlog recovery after ${w.name} ms`, { ...w, fromMs: w.startMs }, (s, before) => unfinished(s) - unfinished(before)),
    ]),
  ];
}

function countComparisons(full: RunResult, model: RunResult): Comparison[] {
  const count = (result: RunResult, name: string) => result.counts[name] ?? 0;
  const within = (name: string, absolute: number, share: number, reason: string) => {
    const f = count(full, name);
    return compare(name, f, count(model, name), Math.max(absolute, share * f), reason);
  };
  // Per virtual minute: the liveness phase lasts until convergence, which may differ between the tiers.
  const perMinute = (result: RunResult, value: number) => Math.round((value / Math.max(1, result.virtualMs)) * 60_000 * 100) / 100;
  const rate = (name: string, get: (result: RunResult) => number, absolute: number, share: number, reason: string) => {
    const f = perMinute(full, get(full));
    return compare(`${name} per virtual minute`, f, perMinute(model, get(model)), perMinute(full, absolute) + share * f, reason);
  };
  return [
    compare('commands_accepted', count(full, 'commands_accepted'), count(model, 'commands_accepted'), 0, toleranceReasons.exact),
    compare('commands_refused', count(full, 'commands_refused'), count(model, 'commands_refused'), 0, toleranceReasons.exact),
    compare('agent_crashes', count(full, 'agent_crashes'), count(model, 'agent_crashes'), 0, toleranceReasons.exact),
    compare('churn_leaves', count(full, 'churn_leaves'), count(model, 'churn_leaves'), 0, toleranceReasons.exact),
    within('executions', 2, 0.05, toleranceReasons.outcome),
    within('sessions_ready', 2, 0.15, toleranceReasons.sessions),
    rate('telemetry_stored', (r) => count(r, 'telemetry_stored'), 3 + count(full, 'agent_crashes'), 0.05, toleranceReasons.telemetry),
    rate('frames sent', (r) => r.network.sent ?? 0, 10, 0.1, toleranceReasons.frames),
  ];
}

const rolloutStatuses = ['running', 'paused', 'completed', 'aborted'];
const pauseReasons = [null, 'error_threshold', 'success_threshold_not_met', 'operator'];

/** The rollout's aggregates (runs whose scenario has `ota`; none when neither tier started one). */
export function rolloutComparisons(full: RunResult, model: ModelRunResult): Comparison[] {
  const f = full.ota;
  const m = model.ota;
  if (f === undefined && m === undefined) return [];
  const index = (list: readonly (string | null)[], value: string | null | undefined) => (value === undefined ? null : list.indexOf(value));
  const count = (result: RunResult, name: string) => result.counts[name] ?? 0;
  const exact = (name: string) => compare(name, count(full, name), count(model, name), 0, toleranceReasons.otaDrawn);
  const executions = f?.executions ?? 0;
  const states = [...new Set([...Object.keys(f?.executionsByState ?? {}), ...Object.keys(m?.executionsByState ?? {})])].sort();
  const loose = (name: string) => {
    const value = count(full, name);
    return compare(name, value, count(model, name), Math.max(5, 0.2 * value), toleranceReasons.otaDownloads);
  };
  return [
    compare(`ota rollout status (full ${f?.status ?? '-'}, model ${m?.status ?? '-'})`, index(rolloutStatuses, f?.status), index(rolloutStatuses, m?.status), 0, toleranceReasons.otaEnd),
    compare(`ota pause reason (full ${f?.pauseReason ?? '-'}, model ${m?.pauseReason ?? '-'})`, index(pauseReasons, f?.pauseReason), index(pauseReasons, m?.pauseReason), 0, toleranceReasons.otaEnd),
    compare('ota wave reached', f?.waveIndex ?? null, m?.waveIndex ?? null, 0, toleranceReasons.otaEnd),
    compare('ota executions', f?.executions ?? null, m?.executions ?? null, 0, toleranceReasons.otaEnd),
    exact('ota_devices_bricked'),
    exact('ota_crashes'),
    ...states.map((state) => compare(`ota executions ${state}`, f?.executionsByState[state] ?? 0, m?.executionsByState[state] ?? 0, Math.max(2, 0.05 * executions), toleranceReasons.otaStates)),
    loose('ota_download_cuts'),
    loose('ota_download_attempts'),
    compare('ota rollout end ms', f?.endedAtMs ?? null, m?.endedAtMs ?? null, Math.max(3_000, 0.15 * (f?.endedAtMs ?? 0)), toleranceReasons.otaEndTime),
  ];
}

/** Telemetry batches (only in scenarios that batch, so other validations compare as before): frames, samples, storage delay. */
export function telemetryBatchComparisons(scenario: Scenario, full: RunResult, model: RunResult): Comparison[] {
  if ((scenario.telemetrySamplesPerFrame ?? 1) <= 1) return [];
  const count = (result: RunResult, name: string) => result.counts[name] ?? 0;
  const perMinute = (result: RunResult, value: number) => Math.round((value / Math.max(1, result.virtualMs)) * 60_000 * 100) / 100;
  const rate = (name: string) => {
    const f = perMinute(full, count(full, name));
    return compare(`${name} per virtual minute`, f, perMinute(model, count(model, name)), perMinute(full, 3 + count(full, 'agent_crashes')) + 0.05 * f, toleranceReasons.telemetryFrames);
  };
  const delay = (label: string, get: (p: NonNullable<RunResult['telemetryStorageDelayMs']>) => number | null) => {
    const f = full.telemetryStorageDelayMs === undefined ? null : get(full.telemetryStorageDelayMs);
    const m = model.telemetryStorageDelayMs === undefined ? null : get(model.telemetryStorageDelayMs);
    return compare(`telemetry storage delay ${label} ms`, f, m, Math.max(scenario.telemetryIntervalMs, 0.1 * (f ?? 0)), toleranceReasons.telemetryDelay);
  };
  return [
    rate('telemetry_frames_sent'),
    rate('telemetry_batch_frames_sent'),
    rate('telemetry_samples_sent'),
    delay('p50', (p) => p.p50Ms),
    delay('p90', (p) => p.p90Ms),
    delay('p99', (p) => p.p99Ms),
  ];
}

/** Every comparison of one full-tier and one model-tier result of the same scenario, seed and fleet. */
export function compareTiers(scenario: Scenario, safetyMs: number, full: RunResult, model: ModelRunResult): Comparison[] {
  return [
    ...onlineComparisons(full.series, model.series, full.agents),
    ...countComparisons(full, model),
    ...telemetryBatchComparisons(scenario, full, model),
    ...outcomeComparisons(full, model),
    ...latencyComparisons(full, model),
    ...recoveryComparisons(scenario, safetyMs, full, model),
    ...rolloutComparisons(full, model),
  ];
}

export async function validateModel(options: ValidationOptions): Promise<ValidationReport> {
  const { scenario, seed } = options;
  const agents = options.agents ?? scenario.agents;
  const safetyMs = options.safetyMs ?? scenario.safetyMs;
  const common = { scenario, scenarioRef: options.scenarioRef, seed, agents, safetyMs };
  options.onPhase?.('full');
  const full = await runSimulation(common);
  options.onPhase?.('model');
  // As long as the full tier ran (it may have converged later): counts then cover the same virtual time.
  const model = runModel({ ...common, minVirtualMs: full.virtualMs });
  const comparisons = compareTiers(scenario, safetyMs, full, model);
  const ok = full.violations.length === 0 && full.otaViolations.length === 0 && comparisons.every((c) => c.ok);
  return { seed, scenario: scenario.name, agents, safetyMs, ok, comparisons, full, model };
}

/** The report as text: one line per comparison, failures marked. */
export function describeValidation(report: ValidationReport): string {
  const lines = [
    `validate-model: scenario ${report.scenario}, ${report.agents} agents, seed ${report.seed}, safety ${report.safetyMs} ms`,
    `full tier: ${report.full.wallMs} ms wall, trace ${report.full.traceHash.slice(0, 16)}, violations ${report.full.violations.length}; model tier: ${report.model.wallMs} ms wall, trace ${report.model.traceHash}`,
  ];
  for (const c of report.comparisons) {
    const round = (n: number | null) => (n === null ? '-' : Math.round(n * 100) / 100);
    lines.push(`${c.ok ? 'ok  ' : 'FAIL'} ${c.metric}: full ${round(c.full)}, model ${round(c.model)}, diff ${round(c.difference)} <= ${round(c.tolerance)}${c.ok ? '' : ` -- ${c.reason}`}`);
  }
  lines.push(report.ok ? 'the model agrees with the full tier within every tolerance' : 'the model DRIFTED from the full tier (or the full tier failed a checker)');
  return lines.join('\n') + '\n';
}
