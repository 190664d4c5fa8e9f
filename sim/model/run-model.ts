import type { Violation } from '../checkers.js';
import type { RunProgress, SeriesSample } from '../run.js';
import type { Scenario } from '../scenario.js';
import { defaultModelParams, type ModelParams } from './params.js';
import { modelRunResult, seriesSample, type ModelRunResult } from './summary.js';
import { ModelWorld, type ModelWorldOptions } from './world.js';

/**
 * One model-tier run (`sdc sim --tier model`): the scenario's fleet as a fleet model on virtual
 * time, with the full tier's phases: a safety phase with the scenario's faults and commands,
 * then a liveness phase with every fault healed that must converge (every command terminal,
 * every agent connected, presence matching) within livenessBoundMs, checked every second.
 * Synchronous from start to end. Same seed, same result and trace hash.
 */
export interface ModelRunOptions {
  readonly scenario: Scenario;
  readonly scenarioRef: string;
  readonly seed: number;
  /** Overrides scenario.agents. */
  readonly agents?: number;
  /** Overrides scenario.safetyMs. */
  readonly safetyMs?: number;
  readonly sampleIntervalMs?: number;
  readonly params?: Partial<ModelParams>;
  /** Replaces core/ota's decideRollout: only for tests showing that the validation catches a wrong rule. */
  readonly decideRollout?: ModelWorldOptions['decideRollout'];
  /**
   * Keep running the liveness phase (within its bound) until this virtual ms even after
   * converging, so counts compare with a full-tier run that converged later (validate-model).
   */
  readonly minVirtualMs?: number;
  readonly onProgress?: (progress: RunProgress) => void;
}

/** Virtual ms per step: the full tier advances, samples and checks convergence in 1 s chunks too. */
const stepMs = 1_000;
export const modelAgentsMax = 1_000_000;

function reproduceLine(options: ModelRunOptions, agents: number, safetyMs: number): string {
  return `sdc sim --tier model --seed ${options.seed} --scenario ${options.scenarioRef}`
    + `${options.agents === undefined ? '' : ` --agents ${agents}`}${options.safetyMs === undefined ? '' : ` --duration ${safetyMs}ms`}`;
}

/** After healing, the control plane's view of presence matches the agents' (the full tier's presence checker). */
function presenceMatches(world: ModelWorld): boolean {
  const presence = world.presence;
  for (let agent = 0; agent < world.agents; agent += 1) {
    if (presence.isConnected(agent) !== (presence.keyGatewayOf(agent) !== -1)) return false;
  }
  return true;
}

export function runModel(options: ModelRunOptions): ModelRunResult {
  const wallStart = performance.now();
  let peakRssBytes = process.memoryUsage().rss;
  const { scenario } = options;
  const agents = options.agents ?? scenario.agents;
  if (!(Number.isSafeInteger(agents) && agents >= 1 && agents <= modelAgentsMax)) throw new RangeError(`the model tier runs 1 to ${modelAgentsMax} agents`);
  const safetyMs = options.safetyMs ?? scenario.safetyMs;
  const world = new ModelWorld({ scenario, seed: options.seed, agents, safetyMs, params: { ...defaultModelParams, ...options.params }, ...(options.decideRollout === undefined ? {} : { decideRollout: options.decideRollout }) });
  world.start();

  const totalMs = safetyMs + scenario.livenessBoundMs;
  const sampleIntervalMs = options.sampleIntervalMs ?? Math.max(1_000, Math.ceil(totalMs / 200 / 1_000) * 1_000);
  const series: SeriesSample[] = [];
  let nextSampleMs = 0;
  const step = (phase: RunProgress['phase'], untilMs: number) => {
    world.runUntil(untilMs);
    const rss = process.memoryUsage().rss;
    if (rss > peakRssBytes) peakRssBytes = rss;
    if (world.nowMs >= nextSampleMs) {
      series.push(seriesSample(world));
      nextSampleMs += sampleIntervalMs;
    }
    options.onProgress?.({ phase, virtualMs: world.nowMs, totalMs, connected: world.presence.connected, agents, commands: world.commands.count });
  };
  while (world.nowMs < safetyMs) step('safety', Math.min(safetyMs, world.nowMs + stepMs));

  world.healed = true;
  world.network.heal();
  world.presence.heal();
  const livenessEndMs = safetyMs + scenario.livenessBoundMs;
  let convergedAfterMs: number | null = null;
  let livenessReached = false;
  const runOnUntilMs = Math.min(livenessEndMs, options.minVirtualMs ?? 0);
  while (world.nowMs < livenessEndMs) {
    step('liveness', Math.min(livenessEndMs, world.nowMs + stepMs));
    livenessReached = true;
    if (convergedAfterMs === null && world.controlPlane.unfinishedCount === 0 && world.presence.connected === agents && presenceMatches(world)) {
      convergedAfterMs = world.nowMs - safetyMs;
    }
    if (convergedAfterMs !== null && world.nowMs >= runOnUntilMs) break;
  }
  // The state at the end is the series' last row, as commandsByState is read now too.
  if (series.at(-1)?.t_ms === world.nowMs) series.pop();
  series.push(seriesSample(world));
  const violations: Violation[] = convergedAfterMs === null
    ? [{ checker: 'liveness', message: `did not converge within ${scenario.livenessBoundMs} ms of healing (${world.presence.connected}/${agents} connected, ${world.controlPlane.unfinishedCount} commands unfinished)` }]
    : [];
  return modelRunResult(world, {
    seed: options.seed, reproduce: reproduceLine(options, agents, safetyMs), safetyMs, convergedAfterMs, livenessReached, violations,
    wallMs: Math.round(performance.now() - wallStart), peakRssBytes, series, ota: world.rollout?.check(),
  });
}
