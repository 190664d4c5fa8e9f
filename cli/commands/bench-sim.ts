import type { CliIo, Command, ParsedCommandArgs } from '../command.js';
import { integerOption } from '../command.js';
import { SdcError } from '../../core/errors/index.js';
import type { SimBenchRow } from '../../bench/sim.js';
import type { FullTierBench } from '../../bench/sim-full.js';
import type { SchedulerFloorRow } from '../../bench/sim-floors.js';
import { benchReport, type BenchRow } from '../../bench/output.js';
import { benchOutputHelp, benchOutputOptions, cliProgress, emitBenchReport } from '../bench-output.js';
import { durationOption, durationOptions, legacyHelp, type DurationOptionSpec } from '../duration-option.js';

// The simulator is imported where a run starts, not at the top: it is most of the CLI's start-up time otherwise.
const fullDuration: DurationOptionSpec = { name: 'duration', fallbackMs: 30_000, minMs: 1_000, maxMs: 3_600_000, legacy: { name: 'duration-s', unitMs: 1_000 } };
const modelDuration: DurationOptionSpec = { ...fullDuration, fallbackMs: 3_600_000, maxMs: 7 * 86_400_000 };

const simUnits = {
  agents: 'agents', virtual_ms: 'milliseconds of virtual time', wall_ms: 'milliseconds', cpu_ms: 'milliseconds of CPU time',
  agent_s_per_wall_s: 'agent-seconds of virtual time per wall-clock second', agent_s_per_cpu_s: 'agent-seconds of virtual time per CPU second',
  peak_rss_mib: 'MiB', violations: 'checker violations', events: 'model events',
  cpu_us_per_event: 'microseconds of CPU per model event, everything it triggers included',
  ratio_to_empty_event_floor: 'ratio to an empty event through the same event queue (same run)',
};

function rowOf(r: SimBenchRow & { cpuMs?: number; agentSecondsPerCpuSecond?: number; events?: number }): BenchRow {
  return {
    agents: r.agents, virtual_ms: r.virtualMs, wall_ms: r.wallMs,
    ...(r.cpuMs === undefined ? {} : { cpu_ms: r.cpuMs }),
    agent_s_per_wall_s: r.agentSecondsPerWallSecond,
    ...(r.agentSecondsPerCpuSecond === undefined ? {} : { agent_s_per_cpu_s: r.agentSecondsPerCpuSecond }),
    peak_rss_mib: r.peakRssMiB, violations: r.violations,
    ...(r.events === undefined ? {} : { events: r.events }),
  };
}

/**
 * The full tier on the standard profile: per fleet a run with real and one with modelled crypto
 * (each the other's baseline), then CPU per message kind at the smaller fleet, then the
 * schedulers' empty-event floors (bench/sim-full.ts).
 */
async function runFullTier(args: ParsedCommandArgs, io: CliIo): Promise<FullTierBench> {
  const safetyMs = durationOption(args, fullDuration, io.stderr);
  const maxAgents = integerOption(args, 'max-agents', 10_000, 1, 20_000);
  const fleets = [1_000, 10_000].filter((n) => n <= maxAgents);
  const runFleets = fleets.length > 0 ? fleets : [maxAgents];
  const costAgents = integerOption(args, 'cost-agents', Math.min(1_000, maxAgents), 0, 20_000);
  const floorEvents = integerOption(args, 'floor-events', 200_000, 1_000, 10_000_000);
  const progress = cliProgress(io, 'bench sim (full)', runFleets.length, ' fleets');
  const [{ benchFullTier }, { builtinScenarioPath, loadScenario }] = await Promise.all([import('../../bench/sim-full.js'), import('../../sim/scenario.js')]);
  const bench = await benchFullTier({
    standard: await loadScenario(builtinScenarioPath('standard')), fleets: runFleets, safetyMs, seed: 1,
    costAgents, floorEvents,
    onFleet: (done, agents) => progress.update(done, agents === undefined ? 'message costs and scheduler floors' : `running ${agents} agents (real and modelled crypto)`),
  });
  progress.finish();
  return bench;
}

/**
 * One fleet after another, so progress can count fleets (each run is one long call), then the
 * model tier's baseline in the same run (issue 14): the CPU of an empty event through its event
 * queue, each row's CPU per event divided by it.
 */
async function runFleets(args: ParsedCommandArgs, io: CliIo, tier: 'model'): Promise<{ rows: BenchRow[]; floors: SchedulerFloorRow[] }> {
  const model = tier === 'model';
  const safetyMs = durationOption(args, model ? modelDuration : fullDuration, io.stderr);
  const maxAgents = integerOption(args, 'max-agents', model ? 100_000 : 10_000, 1, model ? 1_000_000 : 20_000);
  const fleets = (model ? [10_000, 100_000] : [1_000, 10_000]).filter((n) => n <= maxAgents);
  const floorEvents = integerOption(args, 'floor-events', 200_000, 1_000, 10_000_000);
  const [{ benchModel }, { builtinScenarioPath, loadScenario }, floorsModule] = await Promise.all([import('../../bench/sim.js'), import('../../sim/scenario.js'), import('../../bench/sim-floors.js')]);
  const scenario = model ? await loadScenario(builtinScenarioPath('standard')) : undefined;
  const progress = cliProgress(io, `bench sim (${tier})`, fleets.length || 1, ' fleets');
  const rows: BenchRow[] = [];
  for (const agents of fleets.length > 0 ? fleets : [maxAgents]) {
    progress.update(rows.length, `running ${agents} agents`);
    rows.push(...benchModel({ fleets: [agents], safetyMs, seed: 1, scenario: scenario! }).map(rowOf));
  }
  const floors = await floorsModule.schedulerFloors(floorEvents, floorsModule.modelTierFloorScheduler);
  progress.finish();
  return {
    floors,
    rows: rows.map((row) => {
      const cpuUsPerEvent = typeof row['cpu_ms'] === 'number' && typeof row['events'] === 'number' && row['events'] > 0 ? (row['cpu_ms'] * 1_000) / row['events'] : undefined;
      return cpuUsPerEvent === undefined ? row : { ...row, cpu_us_per_event: cpuUsPerEvent, ratio_to_empty_event_floor: floorsModule.ratioToFloor(cpuUsPerEvent, floors[0]) };
    }),
  };
}

export const simBenchCommand: Command = {
  name: 'sim',
  summary: 'Simulator throughput on the standard profile: full tier (start-up and steady state apart, real and modelled crypto, CPU per message, scheduler floors) for 1,000 and 10,000 agents; model tier for 10,000 and 100,000',
  usage: '[--tier full|model] [--duration 30s] [--max-agents N] [--cost-agents N] [--floor-events N] [--json] [--out DIR]',
  optionHelp: [
    ['--tier T', 'full (default): the real code, with real and modelled crypto; model: the model tier; both on the standard profile'],
    ['--duration D', 'virtual safety phase per fleet, like 30s or 1h (default 30s for full, 1h for model)'],
    ['--max-agents N', 'largest fleet (default 10000 for full, 100000 for model)'],
    ['--cost-agents N', 'full tier: fleet of the CPU-per-message runs (default min(1000, --max-agents); 0 leaves them out)'],
    ['--floor-events N', 'empty events per scheduler floor, the baseline each row\'s ratio is to (default 200000)'],
    ...benchOutputHelp(''),
    ...legacyHelp(fullDuration),
  ],
  options: { tier: { type: 'string' }, ...durationOptions(fullDuration), 'max-agents': { type: 'string' }, 'cost-agents': { type: 'string' }, 'floor-events': { type: 'string' }, ...benchOutputOptions },
  async run(args, io) {
    const tier = args.values.tier ?? 'full';
    if (tier !== 'full' && tier !== 'model') throw new SdcError('CLI_USAGE', `--tier is full or model, got '${String(tier)}'`);
    if (tier === 'full') {
      const bench = await runFullTier(args, io);
      const { fullTierUnits } = await import('../../bench/sim-full.js');
      await emitBenchReport(args, io, benchReport({
        benchmark: 'sim', parameters: { tier, scenario: 'standard', seed: 1 }, results: bench.fleets, units: fullTierUnits,
        details: { message_costs: bench.messageCosts, scheduler_floors: bench.schedulerFloors },
      }));
      return 0;
    }
    const { rows: results, floors } = await runFleets(args, io, tier);
    const report = benchReport({
      benchmark: 'sim',
      parameters: { tier, scenario: 'standard', seed: 1 },
      results, units: Object.fromEntries(Object.entries(simUnits).filter(([key]) => results.some((row) => key in row))),
      details: { scheduler_floors: floors },
    });
    await emitBenchReport(args, io, report);
    return 0;
  },
};
