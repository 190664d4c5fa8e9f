import { readFile } from 'node:fs/promises';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SdcError } from '../core/errors/index.js';
import { checkLinkFaults, checkRatio } from '../chaos/network.js';
import { telemetryBatchLimits } from '../core/protocol/limits.js';

/**
 * A scenario file (sim/scenarios/*.json): what the fleet looks like and which faults hit it.
 * Everything a scenario leaves open (which agent crashes when, delays, command targets...) is
 * drawn from the run's seed. The schema below is the format's documentation (docs/simulation.md).
 */

const Ratio = Type.Object({
  numerator: Type.Integer({ minimum: 0 }),
  denominator: Type.Integer({ minimum: 1 }),
}, { additionalProperties: false, description: 'numerator/denominator: an exact probability' });

const LinkFaults = Type.Object({
  loss: Type.Optional(Ratio),
  delayMsMin: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
  delayMsMax: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
  duplicate: Type.Optional(Ratio),
  reorder: Type.Optional(Ratio),
  reorderDelayMsMax: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
}, { additionalProperties: false });

/** Opcodes the simulator can issue without update artifacts. */
export const simOpcodes = ['EXEC_PING_KERNEL', 'EXEC_GET_PROCESS_LIST', 'EXEC_GET_STATUS', 'EXEC_LOCK_SCREEN', 'EXEC_ROLLBACK_UPDATE'] as const;
export type SimOpcode = (typeof simOpcodes)[number];

const Window = Type.Object({
  atMs: Type.Integer({ minimum: 0, description: 'start, virtual ms after the run starts' }),
  durationMs: Type.Integer({ minimum: 1 }),
}, { additionalProperties: false });

const OtaWave = Type.Object({
  percent: Type.Integer({ minimum: 1, maximum: 100, description: 'share of the fleet in this wave (core/ota assignWaves)' }),
  successThreshold: Type.Object({
    succeededMin: Type.Integer({ minimum: 0 }), succeededPercentMin: Type.Integer({ minimum: 0, maximum: 100 }), soakMs: Type.Integer({ minimum: 0 }),
  }, { additionalProperties: false }),
  errorThreshold: Type.Object({
    executedMin: Type.Integer({ minimum: 0 }), failedPercentMax: Type.Integer({ minimum: 0, maximum: 100 }),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

/** An OTA rollout run by the real coordinator (server/ota/rollouts.ts) in the full tier (sim/ota/). */
const Ota = Type.Object({
  atMs: Type.Integer({ minimum: 0, description: 'when the release is published and its rollout started, virtual ms after the run starts' }),
  artifactBytes: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, description: 'artifact size; its bytes are drawn from the seed' }),
  waves: Type.Array(OtaWave, { minItems: 1, maxItems: 64 }),
  devicesPerMinuteMax: Type.Integer({ minimum: 1, maximum: 100_000 }),
  stepTimeoutMs: Type.Integer({ minimum: 1_000, description: 'every execution step times out after this long (timed_out, a failure)' }),
  executionTimeoutMs: Type.Integer({ minimum: 1_000 }),
  bricks: Type.Optional(Type.Object({
    ratio: Ratio,
    mode: Type.Union([Type.Literal('health_check_fails'), Type.Literal('silent')], {
      description: 'health_check_fails: the post-reboot version report says unhealthy and the device rolls back; silent: the device never reports after the reboot',
    }),
  }, { additionalProperties: false, description: 'the release bricks this share of the devices it reaches, counted in the order devices take it from a seeded phase: any n consecutive devices hold floor or ceil of n x ratio bricked ones' })),
  device: Type.Object({
    stepDelayMsMin: Type.Integer({ minimum: 0, maximum: 600_000 }),
    stepDelayMsMax: Type.Integer({ minimum: 0, maximum: 600_000 }),
    downloadBytesPerSecond: Type.Integer({ minimum: 1 }),
    downloadChunkBytes: Type.Integer({ minimum: 1 }),
    retryDelayMs: Type.Integer({ minimum: 1, maximum: 600_000 }),
    /** Download attempts in a row that bring no new bytes before the device gives up (the downloader's attemptsWithoutProgressMax). */
    attemptsMax: Type.Integer({ minimum: 1, maximum: 1_000 }),
  }, { additionalProperties: false }),
  downloadCuts: Type.Optional(Type.Array(Type.Object({
    atMs: Type.Integer({ minimum: 0 }),
    durationMs: Type.Integer({ minimum: 1 }),
    cutAtPercent: Type.Integer({ minimum: 1, maximum: 99, description: 'in the window, a download is cut once it holds this share of the artifact (at once if it holds more); new attempts find no server' }),
  }, { additionalProperties: false }), { maxItems: 100 })),
  targetsRoute: Type.Optional(Type.Object({ ratio: Ratio }, {
    additionalProperties: false,
    description: 'this share of the executions (counted as bricks are) reaches its device without an artifact URL, as a control plane that could not presign one sends it: the device takes the TUF targets route',
  })),
  crashes: Type.Optional(Type.Object({
    ratio: Ratio,
    downMsMin: Type.Integer({ minimum: 0, maximum: 600_000 }),
    downMsMax: Type.Integer({ minimum: 0, maximum: 600_000 }),
  }, {
    additionalProperties: false,
    description: 'this share of the executions (counted as bricks are) has its agent crash once mid-update, at a kernel call drawn from the seed (stage, commit, or rollback when there is one), just before or just after the call reaches the kernel; the agent restarts after a seeded down time and its update runner recovers from its journal',
  })),
  expect: Type.Union([Type.Literal('paused_in_first_wave'), Type.Literal('completed')], { description: 'what the ota checkers hold the rollout to' }),
}, { additionalProperties: false });

/**
 * The full tier's largest fleet (issue 17: 100,000 agents for 10 virtual minutes in 8 GiB). A
 * bound, not a hope: sim/run.ts refuses more and sizes the stores' and gateways' limits from the
 * fleet, so a larger run fails at once instead of after hours of start-up.
 */
export const fullTierAgentsMax = 100_000;

export const ScenarioSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.String({ maxLength: 1000 }),
  agents: Type.Integer({ minimum: 1, maximum: fullTierAgentsMax, description: 'fleet size (--agents overrides)' }),
  gateways: Type.Integer({ minimum: 1, maximum: 8, description: 'gateways gw-1..gw-N; each agent picks one by seed and fails over on reconnect' }),
  safetyMs: Type.Integer({ minimum: 1_000, description: 'virtual length of the safety phase, faults on (--duration overrides)' }),
  livenessBoundMs: Type.Integer({ minimum: 1_000, description: 'virtual time the system gets after healing to converge' }),
  heartbeatIntervalMs: Type.Integer({ minimum: 1_000, maximum: 600_000 }),
  telemetryIntervalMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000 }),
  telemetrySamplesPerFrame: Type.Optional(Type.Integer({
    minimum: 1, maximum: telemetryBatchLimits.samplesPerFrameMax,
    description: 'telemetry batches (decision 0004, "Batches"): each agent sends up to this many samples per TELEMETRY_BATCH frame (AgentCoreOptions.telemetrySamplesPerFrameMax); absent or 1: one TELEMETRY frame per sample, as before',
  })),
  telemetryBatchDelayMs: Type.Optional(Type.Integer({
    minimum: 1, maximum: 3_600_000,
    description: 'the longest a buffered sample waits for its batch to fill (AgentCoreOptions.telemetryBatchDelayMs; default the agent\'s, 30 s); needs telemetrySamplesPerFrame',
  })),
  telemetryAcks: Type.Optional(Type.Boolean({
    description: 'telemetry acknowledgements (decision 0004, "Acknowledgements"): every agent offers telemetry_ack at AUTH (AgentCoreOptions.telemetryAcks), the gateways send TELEMETRY_ACK and the agents resend unacknowledged samples on their next session; full tier only (the model tier does not model acks); absent or false: the agents\' AUTH and every trace as before',
  })),
  commands: Type.Object({
    perMinute: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'fleet-wide rate during the safety phase (or perAgentHour)' })),
    perAgentHour: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, description: 'rate per agent during the safety phase, so that --agents scales it (or perMinute)' })),
    ttlMs: Type.Integer({ minimum: 1_000, description: 'command TTL; keep it above livenessBoundMs so that "none lost" is not satisfied by expiry alone' }),
    mix: Type.Record(Type.String(), Type.Integer({ minimum: 0, maximum: 1000 }), { description: 'opcode -> weight' }),
  }, { additionalProperties: false }),
  churn: Type.Optional(Type.Object({
    perAgentHour: Type.Integer({ minimum: 0, maximum: 3600, description: 'orderly disconnects per agent per hour' }),
    offlineMsMin: Type.Integer({ minimum: 0 }),
    offlineMsMax: Type.Integer({ minimum: 0 }),
  }, { additionalProperties: false })),
  faults: Type.Object({
    network: Type.Optional(LinkFaults),
    gatewayLinks: Type.Optional(Type.Record(Type.String(), LinkFaults, { description: 'gateway id -> faults on its links' })),
    partitions: Type.Optional(Type.Array(Type.Object({
      atMs: Type.Integer({ minimum: 0 }),
      durationMs: Type.Integer({ minimum: 1 }),
      gateways: Type.Optional(Type.Array(Type.String())),
      agents: Type.Optional(Ratio),
    }, { additionalProperties: false }), { maxItems: 100 })),
    agentCrashes: Type.Optional(Type.Object({
      perAgentHour: Type.Integer({ minimum: 0, maximum: 3600 }),
      downMsMin: Type.Integer({ minimum: 0 }),
      downMsMax: Type.Integer({ minimum: 0 }),
    }, { additionalProperties: false })),
    gatewayRestarts: Type.Optional(Type.Array(Type.Object({
      atMs: Type.Integer({ minimum: 0 }),
      gateway: Type.String(),
      downMs: Type.Integer({ minimum: 0 }),
    }, { additionalProperties: false }), { maxItems: 100 })),
    busOutages: Type.Optional(Type.Array(Window, { maxItems: 100 })),
    sqlOutages: Type.Optional(Type.Array(Window, { maxItems: 100 })),
    kernelErrors: Type.Optional(Type.Object({
      ratio: Ratio,
      status: Type.Union([Type.Literal('BUSY'), Type.Literal('IO_ERROR')]),
    }, { additionalProperties: false, description: 'mock kernel status faults; they hold for the whole run (a failed result is terminal)' })),
    kernelLatency: Type.Optional(Type.Object({
      ratio: Ratio,
      delayMs: Type.Integer({ minimum: 1, maximum: 600_000 }),
    }, { additionalProperties: false, description: 'mock kernel latency: this ratio of kernel calls answers delayMs later (a slow driver); commands taken behind one wait, and may pass their deadline' })),
    clockSkewMsMax: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, description: 'each agent clock is off by a seeded amount in [-max, max]' })),
  }, { additionalProperties: false }),
  ota: Type.Optional(Ota),
}, { additionalProperties: false });

export type Scenario = Static<typeof ScenarioSchema>;
export type ScenarioLinkFaults = Static<typeof LinkFaults>;
export type ScenarioOta = Static<typeof Ota>;

function check<T extends TSchema>(schema: T, value: unknown, source: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First();
  throw new SdcError('CLI_INPUT', `${source}: ${first?.path || '/'} ${first?.message ?? 'is invalid'}`);
}

/** Validates a parsed scenario, including what the schema cannot say (ratios, ranges, opcodes). */
export function parseScenario(value: unknown, source = 'scenario'): Scenario {
  const scenario = check(ScenarioSchema, value, source);
  const fail = (message: string): never => { throw new SdcError('CLI_INPUT', `${source}: ${message}`); };
  const { faults, commands } = scenario;
  try {
    if (faults.network) checkLinkFaults(faults.network);
    for (const linkFaults of Object.values(faults.gatewayLinks ?? {})) checkLinkFaults(linkFaults);
    for (const partition of faults.partitions ?? []) if (partition.agents) checkRatio(partition.agents, 'partition agents');
    if (faults.kernelErrors) checkRatio(faults.kernelErrors.ratio, 'kernelErrors.ratio');
    if (faults.kernelLatency) checkRatio(faults.kernelLatency.ratio, 'kernelLatency.ratio');
  } catch (error) {
    fail((error as Error).message);
  }
  const gatewayIds = new Set(Array.from({ length: scenario.gateways }, (_, i) => `gw-${i + 1}`));
  for (const id of Object.keys(faults.gatewayLinks ?? {})) if (!gatewayIds.has(id)) fail(`gatewayLinks names unknown gateway ${id}`);
  for (const restart of faults.gatewayRestarts ?? []) if (!gatewayIds.has(restart.gateway)) fail(`gatewayRestarts names unknown gateway ${restart.gateway}`);
  for (const partition of faults.partitions ?? []) for (const id of partition.gateways ?? []) if (!gatewayIds.has(id)) fail(`partition names unknown gateway ${id}`);
  for (const [opcode, weight] of Object.entries(commands.mix)) {
    if (!(simOpcodes as readonly string[]).includes(opcode)) fail(`commands.mix: ${opcode} is not one of ${simOpcodes.join(', ')}`);
    if (weight < 0) fail('commands.mix weights are non-negative');
  }
  if ((commands.perMinute === undefined) === (commands.perAgentHour === undefined)) fail('commands needs exactly one of perMinute and perAgentHour');
  if ((commands.perMinute ?? commands.perAgentHour ?? 0) > 0 && Object.values(commands.mix).every((w) => w === 0)) fail('commands.mix needs a positive weight');
  if (commands.ttlMs <= scenario.livenessBoundMs) fail('commands.ttlMs must exceed livenessBoundMs');
  if (scenario.churn && scenario.churn.offlineMsMax < scenario.churn.offlineMsMin) fail('churn.offlineMsMax < offlineMsMin');
  if (faults.agentCrashes && faults.agentCrashes.downMsMax < faults.agentCrashes.downMsMin) fail('agentCrashes.downMsMax < downMsMin');
  if (scenario.telemetryBatchDelayMs !== undefined && scenario.telemetrySamplesPerFrame === undefined) fail('telemetryBatchDelayMs needs telemetrySamplesPerFrame');
  if (scenario.ota) checkOta(scenario.ota, scenario, fail);
  return scenario;
}

function checkOta(ota: ScenarioOta, scenario: Scenario, fail: (message: string) => never): void {
  if (ota.atMs >= scenario.safetyMs) fail('ota.atMs must fall in the safety phase');
  if (ota.device.stepDelayMsMax < ota.device.stepDelayMsMin) fail('ota.device.stepDelayMsMax < stepDelayMsMin');
  if (ota.crashes && ota.crashes.downMsMax < ota.crashes.downMsMin) fail('ota.crashes.downMsMax < downMsMin');
  for (const [name, ratio] of [['ota.targetsRoute.ratio', ota.targetsRoute?.ratio], ['ota.crashes.ratio', ota.crashes?.ratio]] as const) {
    if (ratio === undefined) continue;
    try { checkRatio(ratio, name); } catch (error) { fail((error as Error).message); }
  }
  if (ota.bricks) {
    try { checkRatio(ota.bricks.ratio, 'ota.bricks.ratio'); } catch (error) { fail((error as Error).message); }
  }
  for (const cut of ota.downloadCuts ?? []) if (cut.atMs + cut.durationMs > scenario.safetyMs) fail('ota.downloadCuts must end within the safety phase (the liveness phase heals every fault)');
  if (ota.expect === 'paused_in_first_wave' && ota.waves.length < 2) fail('ota.expect paused_in_first_wave needs a second wave that must stay untouched');
}

export async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read scenario ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SdcError('CLI_INPUT', `${path} is not JSON: ${(error as Error).message}`);
  }
  return parseScenario(value, path);
}

/** The path of a scenario shipped in sim/scenarios/ (`smoke` -> sim/scenarios/smoke.json). */
export function builtinScenarioPath(name: string): string {
  return new URL(`./scenarios/${name}.json`, import.meta.url).pathname;
}

/**
 * Mean virtual ms between two commands of the fleet (gaps are drawn uniformly in [0, 2 x mean]);
 * 0 when the scenario sends none. perAgentHour scales with the fleet, perMinute does not.
 */
export function commandMeanGapMs(commands: Scenario['commands'], agents: number): number {
  if (commands.perAgentHour !== undefined) return commands.perAgentHour > 0 ? 3_600_000 / (agents * commands.perAgentHour) : 0;
  const perMinute = commands.perMinute ?? 0;
  return perMinute > 0 ? 60_000 / perMinute : 0;
}

/** Draws opcodes by the scenario's integer weights (no floats, so a seed replays exactly). */
export function opcodePicker(mixByOpcode: Readonly<Record<string, number>>, random: { intBelow(bound: number): number }): () => string {
  const mix = Object.entries(mixByOpcode).filter(([, weight]) => weight > 0);
  const weightTotal = mix.reduce((sum, [, weight]) => sum + weight, 0);
  return () => {
    // parseScenario refuses a positive rate with an all-zero mix; this guards direct callers.
    if (mix.length === 0) throw new SdcError('CLI_INPUT', "the scenario's command mix has no opcode with a positive weight");
    let draw = random.intBelow(weightTotal);
    for (const [opcode, weight] of mix) {
      if (draw < weight) return opcode;
      draw -= weight;
    }
    return mix[0]![0];
  };
}
