import type { Command } from '../cli/command.js';
import { integerOption } from '../cli/command.js';
import { runSimulation } from '../sim/run.js';
import { builtinScenarioPath, loadScenario } from '../sim/scenario.js';

/**
 * Simulator throughput: simulated agent-seconds per wall-clock second and peak RSS, for fleets
 * of 1,000 and 10,000 agents on the smoke scenario over a short virtual duration. Figures are
 * recorded in docs/simulation.md.
 */
export interface SimBenchRow {
  agents: number;
  virtualMs: number;
  wallMs: number;
  agentSecondsPerWallSecond: number;
  peakRssMiB: number;
  violations: number;
}

export async function benchSim(options: { fleets: readonly number[]; safetyMs: number; seed: number }): Promise<SimBenchRow[]> {
  const scenario = await loadScenario(builtinScenarioPath('smoke'));
  const rows: SimBenchRow[] = [];
  for (const agents of options.fleets) {
    const result = await runSimulation({ scenario, scenarioRef: 'smoke', seed: options.seed, agents, safetyMs: options.safetyMs });
    rows.push({
      agents, virtualMs: result.virtualMs, wallMs: result.wallMs,
      agentSecondsPerWallSecond: Math.round((agents * result.virtualMs) / Math.max(1, result.wallMs)),
      peakRssMiB: Math.round(result.peakRssBytes / 2 ** 20), violations: result.violations.length,
    });
  }
  return rows;
}

export const simBenchCommand: Command = {
  name: 'sim',
  summary: 'Simulator throughput (agent-seconds per wall second) and peak memory for 1,000 and 10,000 agents',
  usage: '[--duration-s S] [--max-agents N] [--json]',
  optionHelp: [
    ['--duration-s S', 'virtual safety phase per fleet in seconds (default 30)'],
    ['--max-agents N', 'largest fleet (default 10000)'],
    ['--json', 'print rows as JSON'],
  ],
  options: { 'duration-s': { type: 'string' }, 'max-agents': { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const safetyMs = integerOption(args, 'duration-s', 30, 1, 3600) * 1000;
    const maxAgents = integerOption(args, 'max-agents', 10_000, 1, 20_000);
    const fleets = [1_000, 10_000].filter((n) => n <= maxAgents);
    const rows = await benchSim({ fleets: fleets.length > 0 ? fleets : [maxAgents], safetyMs: Math.max(1_000, safetyMs), seed: 1 });
    if (args.values.json === true) {
      io.stdout(JSON.stringify(rows) + '\n');
    } else {
      for (const r of rows) io.stdout(`${r.agents} agents: ${r.virtualMs} virtual ms in ${r.wallMs} ms wall = ${r.agentSecondsPerWallSecond} agent-s/s, peak rss ${r.peakRssMiB} MiB, violations ${r.violations}\n`);
    }
    return 0;
  },
};
