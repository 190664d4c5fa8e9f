import type { CliIo, Command, ParsedCommandArgs } from '../command.js';
import { integerOption } from '../command.js';
import { SdcError } from '../../core/errors/index.js';
import { benchModel, benchSim } from '../../bench/sim.js';
import { builtinScenarioPath, loadScenario } from '../../sim/scenario.js';

async function runModelBench(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const safetyMs = integerOption(args, 'duration-s', 3_600, 1, 7 * 24 * 3_600) * 1_000;
  const maxAgents = integerOption(args, 'max-agents', 100_000, 1, 1_000_000);
  const fleets = [10_000, 100_000].filter((n) => n <= maxAgents);
  const scenario = await loadScenario(builtinScenarioPath('standard'));
  const rows = benchModel({ fleets: fleets.length > 0 ? fleets : [maxAgents], safetyMs, seed: 1, scenario });
  if (args.values.json === true) {
    io.stdout(JSON.stringify(rows) + '\n');
    return 0;
  }
  for (const r of rows) {
    io.stdout(`model tier, standard profile, ${r.agents} agents: ${r.virtualMs} virtual ms in ${r.wallMs} ms wall (${r.cpuMs} ms CPU) = ${r.agentSecondsPerWallSecond} agent-s per wall s`
      + ` (${r.agentSecondsPerCpuSecond} per CPU s), ${r.events} events, peak rss ${r.peakRssMiB} MiB, violations ${r.violations}\n`);
  }
  return 0;
}

export const simBenchCommand: Command = {
  name: 'sim',
  summary: 'Simulator throughput (agent-seconds per wall second) and peak memory: full tier for 1,000 and 10,000 agents, model tier for 10,000 and 100,000',
  usage: '[--tier full|model] [--duration-s S] [--max-agents N] [--json]',
  optionHelp: [
    ['--tier T', 'full (default): the real code on the smoke scenario; model: the model tier on the standard profile'],
    ['--duration-s S', 'virtual safety phase per fleet in seconds (default 30 for full, 3600 for model)'],
    ['--max-agents N', 'largest fleet (default 10000 for full, 100000 for model)'],
    ['--json', 'print rows as JSON'],
  ],
  options: { tier: { type: 'string' }, 'duration-s': { type: 'string' }, 'max-agents': { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const tier = args.values.tier ?? 'full';
    if (tier !== 'full' && tier !== 'model') throw new SdcError('CLI_USAGE', `--tier is full or model, got '${String(tier)}'`);
    if (tier === 'model') return runModelBench(args, io);
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
