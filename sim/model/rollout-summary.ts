import type { RolloutFacts } from '../ota/ota-checkers.js';

/**
 * A rollout's aggregates, computed the same way from both tiers' facts (the full tier's stores,
 * read by sim/ota/ota-run.ts readRolloutFacts; the model's record, sim/model/rollout.ts), so
 * sim/validate-model.ts compares like with like.
 */
export interface RolloutSummary {
  readonly status: string;
  readonly pauseReason: string | null;
  /** The wave the rollout was at when the run ended (0-based). */
  readonly waveIndex: number;
  readonly executions: number;
  /** Executions by their state at the end of the run (succeeded, rolled_back, timed_out, ...). */
  readonly executionsByState: Readonly<Record<string, number>>;
  /** Virtual ms from the run's start at which the rollout's record last changed (its final status: completed, or paused); null when it never started. */
  readonly endedAtMs: number | null;
}

export function rolloutSummary(facts: RolloutFacts | undefined, lastChangeAtMs: number | null): RolloutSummary | undefined {
  if (facts === undefined) return undefined;
  const executionsByState: Record<string, number> = {};
  for (const execution of facts.executions) executionsByState[execution.state] = (executionsByState[execution.state] ?? 0) + 1;
  return {
    status: facts.status, pauseReason: facts.pauseReason, waveIndex: facts.waveIndex, executions: facts.executions.length,
    executionsByState, endedAtMs: lastChangeAtMs,
  };
}
