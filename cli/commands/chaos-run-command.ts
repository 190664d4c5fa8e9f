import { randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { integerOption, requireOption, type CliIo, type Command, type ParsedCommandArgs } from '../command.js';
import { durationOption } from '../duration-option.js';
import type { ChaosRunReport, RealFaultScenario } from './chaos-run.js';
import { writeReportFile } from '../../bench/report.js';

/** A default seed fits randomInt's range and is printed, so the fleet and command choices can be repeated. */
const seedMax = 2 ** 47;
const agentsMax = 1_000;

async function scenarioNames(): Promise<{ all: readonly RealFaultScenario[]; find: (name: string) => RealFaultScenario | undefined }> {
  const { realFaultScenarios, realFaultScenario } = await import('./chaos-run.js');
  return { all: realFaultScenarios, find: realFaultScenario };
}

/** `--scenario NAME`, a comma list, or `all` (every scenario whose stores were given). */
async function scenariosOption(args: ParsedCommandArgs): Promise<RealFaultScenario[]> {
  const { all, find } = await scenarioNames();
  const raw = requireOption(args, 'scenario');
  if (raw === 'all') {
    return all.filter((s) => (s.needs ?? []).every((store) => typeof args.values[store] === 'string'));
  }
  return raw.split(',').map((name) => {
    const scenario = find(name.trim());
    if (scenario === undefined) throw new SdcError('CLI_USAGE', `--scenario ${name} is not one of ${all.map((s) => s.name).join(', ')}, all`);
    const missing = (scenario.needs ?? []).filter((store) => typeof args.values[store] !== 'string');
    if (missing.length > 0) throw new SdcError('CLI_USAGE', `--scenario ${scenario.name} needs ${missing.map((store) => `--${store} URL`).join(' and ')}`);
    return scenario;
  });
}

function describe(report: ChaosRunReport): string {
  const { run, fault } = report;
  const lines = [
    `chaos run ${report.chaos_run} (${report.stores} stores, proxy ${report.proxy.external ? 'external' : 'in-process'} at ${report.proxy.api}): ${report.passed ? 'PASSED' : 'FAILED'}`,
    `  ${report.summary}`,
    `  fault on at ${fault.at_ms ?? '-'} ms, healed at ${fault.healed_at_ms ?? '-'} ms of ${run.durationMs} ms of commands; every agent online again ${report.agents_back_after_heal_ms ?? 'never'} ms after the heal`,
    `  ${run.agents} agents: sessions ready ${run.counts.sessions_ready ?? 0}, closed ${run.counts.sessions_closed ?? 0}; online at the end ${run.online.agents} (control plane: ${run.online.controlPlane})`,
    `  commands accepted ${run.counts.commands_accepted ?? 0} (refused ${run.counts.commands_refused ?? 0}), kernel calls ${run.counts.kernel_calls ?? 0}; drained ${run.drainedAfterMs ?? 'never'} ms after the last command`,
    `  checkers: ${Object.entries(run.checkers).map(([name, verdict]) => `${name}=${verdict}`).join(' ')} no_unauthenticated_access=${report.unauthenticated_access.verdict}`,
    `  outside probes: ${report.unauthenticated_access.probes.map((p) => `${p.probe}/${p.phase}=${p.outcome}`).join(', ') || 'none'}`,
  ];
  if (Object.keys(report.scenario_facts).length > 0) lines.push(`  scenario: ${JSON.stringify(report.scenario_facts)}`);
  for (const v of report.violations) lines.push(`  violation (${v.checker}): ${v.message}`);
  return `${lines.join('\n')}\n`;
}

export async function runChaosCommand(args: ParsedCommandArgs, io: CliIo): Promise<number> {
  const scenarios = await scenariosOption(args);
  const seed = integerOption(args, 'seed', randomInt(seedMax), 0, Number.MAX_SAFE_INTEGER);
  const agents = integerOption(args, 'agents', 4, 1, agentsMax);
  const durationMs = durationOption(args, { name: 'duration', fallbackMs: 15_000, minMs: 1_000, maxMs: 3_600_000 });
  const faultAtMs = durationOption(args, { name: 'fault-at', fallbackMs: 2_000, minMs: 0, maxMs: 3_600_000 });
  const faultMs = durationOption(args, { name: 'fault-for', fallbackMs: 6_000, minMs: 1, maxMs: 3_600_000 });
  const drainBoundMs = durationOption(args, { name: 'drain-bound', fallbackMs: 60_000, minMs: 1_000, maxMs: 3_600_000 });
  const reconnectBoundMs = durationOption(args, { name: 'reconnect-bound', fallbackMs: 30_000, minMs: 1_000, maxMs: 3_600_000 });
  if (faultAtMs + faultMs > durationMs) throw new SdcError('CLI_USAGE', '--fault-at plus --fault-for must be within --duration');
  const [{ runChaosScenario }, { default: pino }] = await Promise.all([import('./chaos-run.js'), import('pino')]);
  const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'silent' }, pino.destination(2));
  const optional = (name: string) => (typeof args.values[name] === 'string' ? args.values[name] as string : undefined);
  io.stderr(`seed ${seed} (--seed ${seed} repeats the fleet and the command choices; the timing is the wall clock's)\n`);
  const reports: ChaosRunReport[] = [];
  for (const scenario of scenarios) {
    const toxiproxyUrl = optional('toxiproxy');
    const redisUrl = optional('redis');
    const mysqlUrl = optional('mysql');
    const report = await runChaosScenario({
      scenario, seed, agents, durationMs, faultAtMs, faultMs, drainBoundMs, reconnectBoundMs, logger,
      ...(toxiproxyUrl ? { toxiproxyUrl } : {}), ...(redisUrl ? { redisUrl } : {}), ...(mysqlUrl ? { mysqlUrl } : {}),
      ...(args.values['keep-stores'] === true ? { keepStores: true } : {}),
      onProgress: (line) => io.stderr(`[${scenario.name}] ${line}\n`),
    });
    reports.push(report);
    if (args.values.json !== true) io.stdout(describe(report));
    if (typeof args.values.out === 'string') {
      await mkdir(args.values.out, { recursive: true });
      await writeReportFile(join(args.values.out, `chaos-run-${scenario.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
    }
  }
  if (args.values.json === true) io.stdout(`${JSON.stringify(reports.length === 1 ? reports[0] : reports)}\n`);
  return reports.every((r) => r.passed) ? 0 : 1;
}

export const runCommand: Command = {
  name: 'run',
  summary: 'Real control plane, gateway and agents on loopback sockets through the fault proxy; one fault on a timeline; the invariants, unauthenticated probes included, checked from outside',
  usage: '--scenario NAME[,NAME...]|all [--agents N] [--duration 15s] [--fault-at 2s] [--fault-for 6s] [--reconnect-bound 30s] [--drain-bound 60s] [--seed S] [--toxiproxy URL] [--redis URL] [--mysql URL] [--keep-stores] [--out DIR] [--json]',
  optionHelp: [
    ['--scenario NAME', 'partition, drop, reset, latency, bandwidth, slicer, slow-close, redis-cut (--redis), mysql-cut (--mysql), agent-kill, gateway-crash, kernel-errors, clock-skew, jwt-expiry (at least 6s of commands), cert-revoked, ota-cut (a rollout whose downloads are cut); at start: redis-down-at-start, mysql-down-at-start, stores-down-at-start (both), redis-lost-mid-start, mysql-lost-mid-start; a comma list, or all'],
    ['--agents N', 'real agents in one worker process (default 4)'],
    ['--duration D', 'wall time of commands (default 15s, 2 a second)'],
    ['--fault-at D', 'the fault goes on this long after the first command (default 2s)'],
    ['--fault-for D', 'and is healed this long after (default 6s); within --duration'],
    ['--reconnect-bound D', 'after the heal every agent must be online again within this (default 30s)'],
    ['--drain-bound D', 'after the last command every command must be terminal within this (default 60s)'],
    ['--seed S', 'fleet and command choices (default: random, printed)'],
    ['--toxiproxy URL', "a running Toxiproxy's API (default: our proxy, in this process)"],
    ['--redis URL', 'Redis for the bus and key/value store, behind a proxy (default: embedded stores)'],
    ['--mysql URL', 'MySQL/MariaDB for SQL, behind a proxy (default: sql.js)'],
    ['--keep-stores', "keep each run's Redis keys (sdc-chaos-<tag>:*) and MySQL database (sdc_chaos_<tag>) for a post-mortem; by default they are removed when the run ends, passed or not"],
    ['--out DIR', 'write chaos-run-<scenario>.json for each scenario'],
    ['--json', 'print the report as JSON'],
  ],
  options: {
    scenario: { type: 'string' }, agents: { type: 'string' }, duration: { type: 'string' }, 'fault-at': { type: 'string' }, 'fault-for': { type: 'string' },
    'reconnect-bound': { type: 'string' }, 'drain-bound': { type: 'string' }, seed: { type: 'string' }, toxiproxy: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' },
    out: { type: 'string' }, json: { type: 'boolean' }, 'keep-stores': { type: 'boolean' },
  },
  run: runChaosCommand,
};
