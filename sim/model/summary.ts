import { commandStates, type CommandState } from '../../core/protocol/command-machine.js';
import type { OtaCheckerName, OtaViolation, Violation } from '../checkers.js';
import type { RunResult, SeriesSample } from '../run.js';
import { latencyBucketsMs } from './control-plane.js';
import type { RolloutSummary } from './rollout-summary.js';
import type { ModelWorld } from './world.js';

/**
 * The model's aggregates in the full tier's shape (sim/run.ts RunResult: summary.json, the CSV
 * series, the latency histogram), so the CLI writes both tiers' outputs with one writer and
 * sim/validate-model.ts compares them field by field. Only the liveness checker applies to a
 * model: the others watch the real code's stores and frames, which the model does not have.
 */
export interface ModelRunResult extends RunResult {
  readonly tier: 'model';
  /** Events the model handled (the work it did). */
  readonly modelEvents: number;
  /** The rollout's aggregates, in runs whose scenario has `ota`. */
  readonly ota?: RolloutSummary;
}

/** Every checker of the full tier, as a record so that one added there fails to compile here until listed. */
const checkerSet: Readonly<Record<Violation['checker'], true>> = {
  none_lost: true, at_most_once: true, not_executed: true, legal_transitions: true, audit_chain: true, presence: true, session_seq: true, liveness: true,
};
const checkerNames = Object.keys(checkerSet) as Array<Violation['checker']>;

export function commandsByState(world: ModelWorld): Record<CommandState, number> {
  const byState = world.controlPlane.byState;
  return Object.fromEntries(commandStates.map((state, s) => [state, byState[s]!])) as Record<CommandState, number>;
}

export function seriesSample(world: ModelWorld): SeriesSample {
  return { t_ms: world.nowMs, online_agents: world.presence.connected, commands: commandsByState(world) };
}

export interface ModelRunFacts {
  readonly seed: number;
  readonly reproduce: string;
  readonly safetyMs: number;
  readonly convergedAfterMs: number | null;
  readonly livenessReached: boolean;
  readonly violations: readonly Violation[];
  readonly wallMs: number;
  readonly peakRssBytes: number;
  readonly series: readonly SeriesSample[];
  /** The OTA checkers the model can answer (sim/model/rollout.ts), in runs with a rollout. */
  readonly ota?: { readonly checked: readonly OtaCheckerName[]; readonly violations: readonly OtaViolation[] };
}

export function modelRunResult(world: ModelWorld, facts: ModelRunFacts): ModelRunResult {
  const failed = new Set<string>([...facts.violations, ...(facts.ota?.violations ?? [])].map((v) => v.checker));
  const checkers = Object.fromEntries([
    ...checkerNames.map((name) => [name, failed.has(name) ? 'fail' : name === 'liveness' && facts.livenessReached ? 'pass' : 'not_reached']),
    ...(facts.ota?.checked ?? []).map((name) => [name, failed.has(name) ? 'fail' : 'pass']),
  ]) as RunResult['checkers'];
  const ota = world.rollout?.summary();
  const latency = world.controlPlane.latency;
  return {
    tier: 'model', seed: facts.seed, scenario: world.scenario.name, reproduce: facts.reproduce,
    traceHash: world.trace.digest(), traceEvents: world.trace.events, modelEvents: world.trace.events,
    agents: world.agents, gateways: world.gateways, safetyMs: facts.safetyMs, livenessBoundMs: world.scenario.livenessBoundMs,
    convergedAfterMs: facts.convergedAfterMs, virtualMs: world.nowMs, wallMs: facts.wallMs, peakRssBytes: facts.peakRssBytes,
    counts: { ...world.counts, frames_checked: world.network.stats.sent, telemetry_samples_buffered_end: world.telemetry.bufferedTotal() },
    commandsByState: commandsByState(world), outcomesByCode: world.controlPlane.outcomesByCode(), network: { ...world.network.stats },
    checkers, violations: facts.violations, otaViolations: facts.ota?.violations ?? [], series: facts.series,
    latencyHistogram: Array.from(latency, (count, i) => ({ le_ms: latencyBucketsMs[i] ?? null, count })),
    latencyMs: world.controlPlane.latencyRecorder.summary(),
    // Only in batching runs: the model knows a per-sample frame's sampled time only while batching (sim/model/telemetry.ts).
    ...(world.telemetry.batching ? { telemetryStorageDelayMs: world.telemetry.storageDelay.summary() } : {}),
    // The model refuses a command only while its SQL is down, which the full tier answers with STORE_UNAVAILABLE.
    refusalsByCode: (world.counts.commands_refused ?? 0) > 0 ? { STORE_UNAVAILABLE: world.counts.commands_refused! } : {},
    recentTrace: world.trace.recent(),
    ...(ota === undefined ? {} : { ota }),
  };
}
