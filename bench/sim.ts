import { runModel } from '../sim/model/run-model.js';
import type { Scenario } from '../sim/scenario.js';

/**
 * The model tier's throughput rows (the full tier's bench is bench/sim-full.ts): simulated
 * agent-seconds per wall-clock second and peak RSS. Figures are recorded in docs/simulation.md.
 */
export interface SimBenchRow {
  agents: number;
  virtualMs: number;
  wallMs: number;
  agentSecondsPerWallSecond: number;
  peakRssMiB: number;
  violations: number;
}

export interface ModelBenchRow extends SimBenchRow {
  /** CPU time of the run (user + system): the figure a busy machine does not distort. */
  cpuMs: number;
  agentSecondsPerCpuSecond: number;
  events: number;
}

/**
 * The model tier on the standard profile (sim/scenarios/standard.json) for each fleet: agent-
 * seconds of virtual time per wall second and per CPU second, peak RSS (of the process, so a
 * later, larger fleet includes what an earlier one left), events handled. Smallest fleet first.
 */
export function benchModel(options: { fleets: readonly number[]; safetyMs: number; seed: number; scenario: Scenario }): ModelBenchRow[] {
  return [...options.fleets].sort((a, b) => a - b).map((agents) => {
    const cpuBefore = process.cpuUsage();
    const result = runModel({ scenario: options.scenario, scenarioRef: 'standard', seed: options.seed, agents, safetyMs: options.safetyMs });
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = Math.max(1, Math.round((cpu.user + cpu.system) / 1_000));
    return {
      agents, virtualMs: result.virtualMs, wallMs: result.wallMs, cpuMs,
      agentSecondsPerWallSecond: Math.round((agents * result.virtualMs) / Math.max(1, result.wallMs)),
      agentSecondsPerCpuSecond: Math.round((agents * result.virtualMs) / cpuMs),
      peakRssMiB: Math.round(result.peakRssBytes / 2 ** 20), violations: result.violations.length, events: result.modelEvents,
    };
  });
}
