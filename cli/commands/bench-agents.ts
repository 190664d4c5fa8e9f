import { SdcError } from '../../core/errors/index.js';
import { integerOption, type Command, type ParsedCommandArgs } from '../command.js';
import { benchOutputHelp, benchOutputOptions, emitBenchReport } from '../bench-output.js';
import { durationOption, durationOptions, formatDurationMs, type DurationOptionSpec } from '../duration-option.js';
import { agentScenario, agentScenarioLimits, loadScenarioFile, type AgentScenario } from '../../bench/harness/scenario.js';
import { thresholdsCrossedExitCode } from '../../bench/harness/thresholds.js';
import { rampingVusDefaults } from '../../bench/harness/ramping-vus.js';
import type { AgentVuIdentity } from '../../bench/harness/agent-session.js';
import type { CommandFeedTally } from '../../bench/harness/agent-target.js';

const durationOverride: DurationOptionSpec = { name: 'duration', fallbackMs: 1_000, minMs: 1_000, maxMs: agentScenarioLimits.stageDurationSMax * 1000 };
const sessionOverride: DurationOptionSpec = { name: 'session', fallbackMs: 1_000, minMs: 100, maxMs: agentScenarioLimits.sessionSMax * 1000 };
const heartbeatOverride: DurationOptionSpec = { name: 'heartbeat', fallbackMs: 1_000, minMs: agentScenarioLimits.intervalMsMin, maxMs: agentScenarioLimits.intervalMsMax };
const telemetryOverride: DurationOptionSpec = { name: 'telemetry', fallbackMs: 1_000, minMs: agentScenarioLimits.intervalMsMin, maxMs: agentScenarioLimits.intervalMsMax };
const gracefulRampDown: DurationOptionSpec = { name: 'graceful-ramp-down', fallbackMs: rampingVusDefaults.gracefulRampDownMs, minMs: 0, maxMs: 3_600_000 };
const gracefulStop: DurationOptionSpec = { name: 'graceful-stop', fallbackMs: rampingVusDefaults.gracefulStopMs, minMs: 0, maxMs: 3_600_000 };
const setupTimeout: DurationOptionSpec = { name: 'setup-timeout', fallbackMs: 300_000, minMs: 5_000, maxMs: 3_600_000 };
/** A TLS + WebSocket handshake slower than this is abandoned, as the agent's driver does (agent/ws-transport.ts). */
const connectTimeoutMs = 15_000;
const commandRateMax = 100;

/**
 * Overrides for a quick look, as SDC_SESSION_S, SDC_HEARTBEAT_MS and SDC_TELEMETRY_MS do under k6:
 * --vus N scales every stage's target so the highest is N (a stage above 0 keeps at least one VU);
 * --duration D scales the stages' durations so they add up to D.
 */
export function withAgentOverrides(args: ParsedCommandArgs, scenario: AgentScenario): AgentScenario {
  const vus = integerOption(args, 'vus', 0, 1, agentScenarioLimits.vusMax);
  const peak = Math.max(...scenario.stages.map((s) => s.target_vus));
  const totalS = scenario.stages.reduce((sum, s) => sum + s.duration_s, 0);
  const durationMs = args.values.duration === undefined ? 0 : durationOption(args, durationOverride);
  if (durationMs > 0 && totalS === 0) throw new SdcError('CLI_USAGE', '--duration cannot scale stages of 0 s');
  const stages = scenario.stages.map((s) => ({
    duration_s: durationMs > 0 ? (s.duration_s * durationMs) / 1000 / totalS : s.duration_s,
    target_vus: vus > 0 && s.target_vus > 0 ? Math.max(1, Math.round((s.target_vus * vus) / peak)) : s.target_vus,
  }));
  const ms = (spec: DurationOptionSpec) => (args.values[spec.name] === undefined ? undefined : durationOption(args, spec));
  const sessionMs = ms(sessionOverride);
  const heartbeatMs = ms(heartbeatOverride);
  const telemetryMs = ms(telemetryOverride);
  return {
    ...scenario, stages,
    ...(sessionMs === undefined ? {} : { session_s: sessionMs / 1000 }),
    ...(heartbeatMs === undefined ? {} : { heartbeat_interval_ms: heartbeatMs }),
    ...(telemetryMs === undefined ? {} : { telemetry_interval_ms: telemetryMs }),
  };
}

function commandLine(name: string, scenario: AgentScenario, remote: boolean, commandRatePerS: number): string {
  const vus = Math.max(...scenario.stages.map((s) => s.target_vus));
  const totalMs = Math.round(scenario.stages.reduce((sum, s) => sum + s.duration_s, 0) * 1000);
  const target = remote ? ' --agents-file agents.json' : ` --command-rate ${commandRatePerS}`;
  return `sdc bench agents --scenario ${name} --vus ${vus} --duration ${formatDurationMs(totalMs)} --session ${formatDurationMs(Math.round(scenario.session_s * 1000))}${target}`;
}

export const agentsBenchCommand: Command = {
  name: 'agents',
  summary: 'The agent scenario of bench/k6/agent.js in Node: k6 ramping-vus over device sessions (mutual TLS, AUTH, signed heartbeats and telemetry, commands answered); k6 thresholds, exit 99 when one is crossed',
  usage: '--scenario NAME [--vus N] [--duration D] [--session D] [--command-rate N | --agents-file FILE [--gateway HOST:PORT]] [--json] [--out DIR]',
  optionHelp: [
    ['--scenario NAME', 'An agent scenario of bench/k6/scenarios.json (agent-sessions, agent-smoke), the definitions k6 reads too'],
    ['--scenarios FILE', 'Another scenario file of the same shape'],
    ['--vus N', "Scale the stages' targets so the highest is N"],
    ['--duration D', "Scale the stages' durations so they add up to D, like 60s"],
    ['--session D', "Override the scenario's session time (one iteration), like 20s"],
    ['--heartbeat D', "Override the scenario's heartbeat interval"],
    ['--telemetry D', "Override the scenario's telemetry interval"],
    ['--graceful-ramp-down D', "k6's gracefulRampDown: a ramped-down VU's session may run this much longer (default 30s, as the k6 script)"],
    ['--graceful-stop D', "k6's gracefulStop: sessions running when the stages end may run this much longer (default 30s)"],
    ['--command-rate N', 'In-process: EXEC_PING_KERNEL commands per second through the API to devices with a session (default 1, 0 for none)'],
    ['--redis URL', 'In-process: Redis for the bus and key/value store'],
    ['--mysql URL', 'In-process: MySQL/MariaDB for SQL'],
    ['--agents-file FILE', 'Run against a running deployment: agents.json as bench/k6/agent.js reads it (one enrolled device per VU; stop those agents first)'],
    ['--gateway HOST:PORT', 'With --agents-file: the gateway to dial (default: each device\'s first pinned gateway URL)'],
    ['--setup-timeout D', 'In-process: give up setting up after D (default 5m)'],
    ...benchOutputHelp('agents.md'),
  ],
  options: {
    scenario: { type: 'string' }, scenarios: { type: 'string' }, vus: { type: 'string' }, ...durationOptions(durationOverride), ...durationOptions(sessionOverride),
    ...durationOptions(heartbeatOverride), ...durationOptions(telemetryOverride), ...durationOptions(gracefulRampDown), ...durationOptions(gracefulStop),
    'command-rate': { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' }, 'agents-file': { type: 'string' }, gateway: { type: 'string' },
    ...durationOptions(setupTimeout), ...benchOutputOptions,
  },
  async run(args, io) {
    const name = typeof args.values.scenario === 'string' ? args.values.scenario : 'agent-sessions';
    const file = await loadScenarioFile(typeof args.values.scenarios === 'string' ? args.values.scenarios : undefined);
    const scenario = withAgentOverrides(args, agentScenario(file.scenarios, name));
    const gracefulRampDownMs = durationOption(args, gracefulRampDown);
    const gracefulStopMs = durationOption(args, gracefulStop);
    const setupTimeoutMs = durationOption(args, setupTimeout);
    const agentsFile = typeof args.values['agents-file'] === 'string' ? args.values['agents-file'] : undefined;
    const gateway = typeof args.values.gateway === 'string' ? args.values.gateway : undefined;
    if (gateway !== undefined && agentsFile === undefined) throw new SdcError('CLI_USAGE', '--gateway needs --agents-file (the devices to connect as)');
    if (agentsFile !== undefined && args.values['command-rate'] !== undefined) throw new SdcError('CLI_USAGE', '--command-rate is for the in-process deployment; against a running one, send commands as its operator');
    const commandRatePerS = agentsFile === undefined ? integerOption(args, 'command-rate', 1, 0, commandRateMax) : 0;
    // Loaded here: the deployment and the session code are most of the CLI's start-up time.
    const [{ checkAgentThresholds, maxPlannedVus, runAgentScenario }, { agentBenchReport, agentMarkdown }, { renderThresholds, trendCdfFiles }, target] = await Promise.all([
      import('../../bench/harness/agent-scenario.js'), import('../../bench/harness/agent-report.js'), import('../../bench/harness/api-report.js'),
      import('../../bench/harness/agent-target.js'),
    ]);
    checkAgentThresholds(scenario);
    const vus = maxPlannedVus(scenario);
    let identities: AgentVuIdentity[];
    let stop = async () => undefined as void;
    let startFeed: ((tally: Parameters<typeof target.startCommandFeed>[3]) => void) | undefined;
    let stopFeed = async () => undefined as void;
    let feedTally: CommandFeedTally | null = null;
    if (agentsFile !== undefined) {
      identities = await target.agentsFromFile(agentsFile, gateway);
    } else {
      const { default: pino } = await import('pino');
      const started = await target.startInProcessAgentTarget({
        devices: vus, setupTimeoutMs, logger: pino({ level: 'silent' }), progress: (line) => io.stderr(`${line}\n`),
        ...(typeof args.values.redis === 'string' ? { redisUrl: args.values.redis } : {}), ...(typeof args.values.mysql === 'string' ? { mysqlUrl: args.values.mysql } : {}),
      });
      ({ identities, stop } = started);
      if (commandRatePerS > 0) {
        startFeed = (tally) => {
          const feed = target.startCommandFeed(started.api, started.runTag, commandRatePerS, tally);
          feedTally = feed.tally;
          stopFeed = feed.stop;
        };
      }
    }
    try {
      io.stderr(`bench agents: ${name}, up to ${vus} VUs over ${scenario.stages.length} stage(s), sessions of ${scenario.session_s} s, against ${identities.length} device(s)\n`);
      const run = await runAgentScenario(scenario, identities, {
        gracefulRampDownMs, gracefulStopMs, connectTimeoutMs, ...(startFeed === undefined ? {} : { onStarted: startFeed }),
      }).finally(() => stopFeed());
      const report = agentBenchReport(run, {
        name, scenario, scenarioFile: file.path, command: commandLine(name, scenario, agentsFile !== undefined, commandRatePerS),
        target: agentsFile === undefined ? 'in-process' : 'remote', devices: identities.length, gracefulRampDownMs, gracefulStopMs, commandRatePerS, commands: feedTally,
      });
      io.stderr(renderThresholds(run.thresholds));
      await emitBenchReport(args, io, report, { extraFiles: { 'agents.md': agentMarkdown(report), ...trendCdfFiles(run.metrics, 'agents') } });
      return run.thresholds.some((t) => t.crossed) ? thresholdsCrossedExitCode : 0;
    } finally {
      await stop();
    }
  },
};
