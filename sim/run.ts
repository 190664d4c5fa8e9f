import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoctlKernelBridge, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { kvKeys, liveChannel } from '../server/bus-contract/streams.js';
import { createControlPlane, type ControlPlane } from '../server/control-plane/control-plane.js';
import { hexFromBytes } from '../core/crypto/bytes.js';
import { SdcError } from '../core/errors/index.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { initDeployment, serviceKid, type DeploymentMaterials, type ServiceSigner } from '../server/materials/materials.js';
import { createGatewayCore, type GatewayCore } from '../server/gateway/gateway-core.js';
import { commandNotExecutedStates, commandStates, commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import type { Clock } from '../core/ports/ports.js';
import { systemClock, systemRandom } from '../runtime/system.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { MemoryStreamBus } from '../server/stores/bus/memory-stream-bus.js';
import { MemoryKeyValueSpace, MemoryKeyValueStore } from '../server/stores/kv/memory-key-value-store.js';
import { openSqlJsDatabase, type SqlJsDatabase } from '../server/stores/sql/sqljs-database.js';
import type { KernelFault } from '../kernel/mock/faults.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import {
  ExecutionChecker, SessionSeqChecker, checkAuditChain, checkCommandHistories, checkNoneLost, checkNotExecuted, checkPresence,
  type CommandEventRow, type Violation,
} from './checkers.js';
import { faultyBus, faultySql } from '../chaos/faulty-stores.js';
import { countOutcomes } from './outcomes.js';
import { SimNetwork, type LinkFaults, type SimLink } from '../chaos/network.js';
import { SeededRandom } from '../core/random/prng.js';
import { commandMeanGapMs, opcodePicker, type Scenario } from './scenario.js';
import { SimAgent, type SimAgentWorld } from './sim-agent.js';
import { Trace } from './trace.js';
import { observedKernel } from './observed-agent-parts.js';

/**
 * One simulator run (TigerBeetle's VOPR): the real control plane, gateways and agents in one
 * process on virtual time, an in-memory network, embedded stores and one seeded PRNG. A safety
 * phase with the scenario's faults, then a liveness phase with every fault healed that must
 * converge within scenario.livenessBoundMs. Checkers watch throughout; the first violation stops
 * the run.
 */
export interface RunOptions {
  readonly scenario: Scenario;
  /** How the scenario is named in the reproduce line (a path or a built-in name). */
  readonly scenarioRef: string;
  readonly seed: number;
  /** Overrides scenario.agents. */
  readonly agents?: number;
  /** Overrides scenario.safetyMs. */
  readonly safetyMs?: number;
  /** Virtual ms between time-series samples (default: about 200 samples per run, at least 1 s). */
  readonly sampleIntervalMs?: number;
  readonly onProgress?: (progress: RunProgress) => void;
}

export interface RunProgress {
  readonly phase: 'safety' | 'liveness';
  readonly virtualMs: number;
  readonly totalMs: number;
  readonly connected: number;
  readonly agents: number;
  readonly commands: number;
}

export interface SeriesSample {
  readonly t_ms: number;
  readonly online_agents: number;
  readonly commands: Readonly<Record<CommandState, number>>;
}

export interface RunResult {
  readonly seed: number;
  readonly scenario: string;
  readonly reproduce: string;
  readonly traceHash: string;
  readonly traceEvents: number;
  readonly agents: number;
  readonly gateways: number;
  readonly safetyMs: number;
  readonly livenessBoundMs: number;
  /** Virtual ms after healing until everything converged; null when it did not. */
  readonly convergedAfterMs: number | null;
  readonly virtualMs: number;
  readonly wallMs: number;
  readonly peakRssBytes: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly commandsByState: Readonly<Record<CommandState, number>>;
  /** Final state and result error code of every command (sim/outcomes.ts); empty when a live violation stopped the run. */
  readonly outcomesByCode: Readonly<Record<string, number>>;
  readonly network: Readonly<Record<string, number>>;
  readonly checkers: Readonly<Record<Violation['checker'], 'pass' | 'fail' | 'not_reached'>>;
  readonly violations: readonly Violation[];
  readonly series: readonly SeriesSample[];
  /** Round trip from creation to a device result (succeeded, failed or rejected). */
  readonly latencyHistogram: ReadonlyArray<{ readonly le_ms: number | null; readonly count: number }>;
  readonly recentTrace: readonly string[];
}

export const simStartMs = 1_800_000_000_000;
const latencyBucketsMs = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];
const checkerNames: ReadonlyArray<Violation['checker']> = ['none_lost', 'at_most_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'session_seq', 'liveness'];
const provider = createNodeEd25519Provider();
const textDecoder = new TextDecoder();
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const chunkMs = 1_000;
const teardownRoundsMax = 20;
/** A gateway whose start failed (stores down) is started again after this long, as a process supervisor would. */
const gatewayStartRetryMs = 1_000;

/**
 * The CA is made once per process (X.509 issuance is slow and nothing in a run depends on it).
 * initDeployment writes it to a directory; once loaded, every key is in memory, so the directory
 * (with the CA private keys) is removed at once, awaited, instead of in an exit handler, where an
 * asynchronous rm never completes.
 */
let baseMaterials: Promise<{ materials: DeploymentMaterials }> | undefined;
function sharedMaterials(): Promise<{ materials: DeploymentMaterials }> {
  baseMaterials ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-sim-pki-'));
    try {
      return { materials: await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom }) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return baseMaterials;
}

function seededSigner(role: 'cp' | 'gateway', random: SeededRandom): ServiceSigner {
  const seed = random.bytes(32);
  const publicKey = provider.publicKeyFromSeed(seed);
  return { kid: serviceKid(role, publicKey), seed, publicKey };
}

function inWindow(nowMs: number, windows: ReadonlyArray<{ atMs: number; durationMs: number }> | undefined): boolean {
  return (windows ?? []).some((w) => nowMs >= simStartMs + w.atMs && nowMs < simStartMs + w.atMs + w.durationMs);
}

function emptyStates(): Record<CommandState, number> {
  return Object.fromEntries(commandStates.map((state) => [state, 0])) as Record<CommandState, number>;
}

export async function runSimulation(options: RunOptions): Promise<RunResult> {
  const wallStart = performance.now();
  let peakRssBytes = process.memoryUsage().rss;
  const { scenario, seed } = options;
  const agentCount = options.agents ?? scenario.agents;
  const safetyMs = options.safetyMs ?? scenario.safetyMs;
  const reproduce = `sdc sim --seed ${seed} --scenario ${options.scenarioRef}${options.agents === undefined ? '' : ` --agents ${agentCount}`}${options.safetyMs === undefined ? '' : ` --duration ${safetyMs}ms`}`;
  const root = new SeededRandom(seed);
  // One fork per component, in a fixed order: adding draws in one does not shift the others.
  const rng = {
    network: root.fork(), controlPlane: root.fork(), gateways: root.fork(), agents: root.fork(),
    faults: root.fork(), commands: root.fork(), keys: root.fork(),
  };
  const time = new VirtualTime(simStartMs, 50_000_000);
  const trace = new Trace(time);
  const violations: Violation[] = [];
  let stopped = false;
  const violate = (violation: Violation | undefined) => {
    if (violation === undefined) return;
    violations.push(violation);
    trace.add('violation', `${violation.checker} ${violation.message}`);
    stopped = true;
  };
  const counts: Record<string, number> = {
    commands_accepted: 0, commands_refused: 0, executions: 0, rejections: 0, interrupted: 0, sessions_ready: 0,
    sessions_closed: 0, agent_crashes: 0, churn_leaves: 0, gateway_restarts: 0, kernel_calls: 0, frames_checked: 0,
  };

  // --- stores, with outage wrappers ---------------------------------------------------------
  let healed = false;
  const busDown = () => !healed && inWindow(time.nowMs(), scenario.faults.busOutages);
  const sqlDown = () => !healed && inWindow(time.nowMs(), scenario.faults.sqlOutages);
  const workDir = await mkdtemp(join(tmpdir(), 'sdc-sim-'));
  const { materials: base } = await sharedMaterials();
  const materials: DeploymentMaterials = { ...base, commandSigner: seededSigner('cp', rng.keys), gatewaySigner: seededSigner('gateway', rng.keys) };
  // Saved only at close: a run never waits on the disk.
  const rawSql: SqlJsDatabase = await openSqlJsDatabase({ dataDir: workDir, durability: { mode: 'interval', intervalMs: 365 * 24 * 3600 * 1000 }, scheduler: time });
  const rawBus = new MemoryStreamBus({ clock: time, scheduler: time, entriesPerStreamMax: 2_000_000, pendingPerGroupMax: 1_000_000, waitersMax: 100_000 });
  const kvSpace = new MemoryKeyValueSpace({ clock: time, keysMax: 1_000_000 });
  const kvFor = () => new MemoryKeyValueStore({ space: kvSpace, keyPrefix: 'sdc:kv:' });
  const sql = faultySql(rawSql, sqlDown);
  const bus = faultyBus(rawBus, busDown);

  // --- control plane --------------------------------------------------------------------------
  const cpKv = kvFor();
  const cp: ControlPlane = await createControlPlane({
    materials, stores: { sql, bus, kv: cpKv }, clock: time, random: rng.controlPlane, scheduler: time,
    gatewayUrls: ['sim://gateway'], persistJwtKeys: false, consumerName: 'cp-sim', scryptParams: { N: 1024, r: 8, p: 1 },
    expirySweepIntervalMs: 5_000, consumerBlockMs: 1_000, claimIdleMs: 30_000,
  });

  await cp.start();

  // Observed through the store: the live channel carries every command state and presence change.
  const commandState = new Map<string, { state: CommandState; createdAtMs: number }>();
  const byState = emptyStates();
  const latency = new Array<number>(latencyBucketsMs.length + 1).fill(0);
  const accepted = new Set<string>();
  const liveKv = kvFor();
  await liveKv.subscribe(liveChannel, (message) => {
    const event = JSON.parse(message) as { type: string; command_id?: string; device_id: string; state?: string; online?: boolean; gateway_id?: string; at_ms: number };
    if (event.type === 'command' && event.command_id !== undefined && event.state !== undefined) {
      const state = event.state as CommandState;
      const known = commandState.get(event.command_id);
      if (known) byState[known.state] -= 1;
      byState[state] += 1;
      commandState.set(event.command_id, { state, createdAtMs: known?.createdAtMs ?? event.at_ms });
      trace.add('cmd.state', `${event.command_id} ${state}`);
      if (known && (state === 'succeeded' || state === 'failed' || state === 'rejected')) {
        const rttMs = event.at_ms - known.createdAtMs;
        const bucket = latencyBucketsMs.findIndex((le) => rttMs <= le);
        latency[bucket === -1 ? latencyBucketsMs.length : bucket]! += 1;
      }
    } else if (event.type === 'presence') {
      trace.add('presence', `${event.device_id} ${event.online ? 'online' : 'offline'} ${event.gateway_id ?? ''}`);
    }
  });

  // --- devices: keys from the PRNG, registered directly (see docs/simulation.md) ----------------
  const agentRandoms = Array.from({ length: agentCount }, () => rng.agents.fork());
  const deviceIds = Array.from({ length: agentCount }, (_, i) => `dev-${String(i + 1).padStart(5, '0')}`);
  const deviceKeys = agentRandoms.map((r) => {
    const deviceSeed = r.bytes(32);
    return { deviceSeed, devicePublicKey: provider.publicKeyFromSeed(deviceSeed), certSerialHex: hexFromBytes(r.bytes(8)).replace(/^0+/, '') || '1' };
  });
  await rawSql.transaction(async (tx) => {
    for (let i = 0; i < agentCount; i += 1) {
      await tx.execute(
        "INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
        [deviceIds[i]!, simStartMs, deviceKeys[i]!.certSerialHex, simStartMs + 365 * 24 * 3600 * 1000, Buffer.from(deviceKeys[i]!.devicePublicKey).toString('base64url')],
      );
    }
  });
  // Registered behind the control plane's back, so publish their enrolled keys as enrollment would (gateways admit only those).
  await cp.devices.publishEnrolledDevices();

  // --- gateways ---------------------------------------------------------------------------------
  const gatewayIds = Array.from({ length: scenario.gateways }, (_, i) => `gw-${i + 1}`);
  const gateways = new Map<string, GatewayCore | undefined>();
  const commandKeys = new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]);
  const startGateway = async (gatewayId: string) => {
    const gateway = createGatewayCore({
      gatewayId, signer: { kid: materials.gatewaySigner.kid, seed: materials.gatewaySigner.seed }, provider,
      stores: { bus, kv: kvFor() }, clock: time, random: rng.gateways.fork(), scheduler: time, commandKeys,
      heartbeatIntervalMs: scenario.heartbeatIntervalMs, connectionsMax: Math.max(10_000, agentCount + 100),
      pendingDeliveriesMax: Math.max(10_000, agentCount * 4),
    });
    try {
      await gateway.start();
    } catch (error) {
      // The stores are down (an outage during a restart): the process exits and its supervisor
      // starts it again a second later, as `sdc gateway` under systemd or compose would.
      gateway.abort();
      trace.add('gw.start_failed', `${gatewayId} ${SdcError.is(error) ? error.code : 'error'}`);
      time.schedule(gatewayStartRetryMs, () => { void startGateway(gatewayId); });
      return;
    }
    gateways.set(gatewayId, gateway);
    trace.add('gw.up', gatewayId);
  };
  for (const id of gatewayIds) await startGateway(id);

  // --- network and checkers ---------------------------------------------------------------------
  const seqChecker = new SessionSeqChecker();
  const executionChecker = new ExecutionChecker();
  const network = new SimNetwork({
    clock: time, scheduler: time, random: rng.network, queueFramesMax: 1024,
    observer: {
      sent(link, direction, bytes) {
        counts.frames_checked! += 1;
        const frame = JSON.parse(textDecoder.decode(bytes)) as { session_id?: unknown; seq?: unknown };
        if (typeof frame.session_id === 'string' && typeof frame.seq === 'number') violate(seqChecker.observe(`${link.id}:${direction}`, frame.session_id, frame.seq));
      },
      delivered(link, direction, bytes) {
        trace.add('frame', `${link.id} ${direction} ${bytes.length}`);
      },
    },
  });
  const linkFaults = (faults: LinkFaults | undefined): LinkFaults => faults ?? {};
  network.setFaults(linkFaults(scenario.faults.network), new Map(Object.entries(scenario.faults.gatewayLinks ?? {})));

  // --- agents -----------------------------------------------------------------------------------
  const kernelFaults: KernelFault[] = [
    ...(scenario.faults.kernelErrors ? [{ kind: 'status', status: scenario.faults.kernelErrors.status, ratio: scenario.faults.kernelErrors.ratio } as const] : []),
    ...(scenario.faults.kernelLatency ? [{ kind: 'latency', delayMs: scenario.faults.kernelLatency.delayMs, ratio: scenario.faults.kernelLatency.ratio } as const] : []),
  ];
  const skewMax = scenario.faults.clockSkewMsMax ?? 0;
  const world: SimAgentWorld = {
    time, network, provider, gatewayIds,
    gateway: (id) => gateways.get(id),
    resolveGatewayKey: (kid) => (kid === materials.gatewaySigner.kid ? materials.gatewaySigner.publicKey : undefined),
    resolveCommandKey: (kid) => commandKeys.get(kid),
    heartbeatIntervalMs: scenario.heartbeatIntervalMs,
    telemetryIntervalMs: scenario.telemetryIntervalMs,
    trace: (kind, detail) => trace.add(kind, detail),
    onExecuting: (deviceId, commandId) => executionChecker.executing(deviceId, commandId),
    onAgentEvent(agent, event) {
      switch (event.kind) {
        case 'ready': counts.sessions_ready! += 1; trace.add('agent.ready', agent.deviceId); break;
        case 'closed': counts.sessions_closed! += 1; trace.add('agent.closed', agent.deviceId); break;
        case 'executed': counts.executions! += 1; trace.add('exec', `${agent.deviceId} ${event.commandId} ${event.status}`); break;
        case 'rejected': counts.rejections! += 1; trace.add('exec.rejected', `${agent.deviceId} ${event.commandId} ${event.code}`); break;
        case 'interrupted': counts.interrupted! += 1; trace.add('exec.interrupted', `${agent.deviceId} ${event.commandId}`); break;
      }
    },
    linkClosed: (link: SimLink) => {
      seqChecker.forget(`${link.id}:to_gateway`);
      seqChecker.forget(`${link.id}:to_agent`);
    },
  };
  const agents = deviceIds.map((deviceId, i) => {
    const random = agentRandoms[i]!;
    const skewMs = skewMax === 0 ? 0 : random.intBetween(-skewMax, skewMax);
    const clock: Clock = { nowMs: () => time.nowMs() + skewMs };
    const agentSeed = random.bytes(32);
    const serviceSeed = random.bytes(32);
    const device = new MockIoctlDevice({
      ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock, scheduler: time,
      faults: kernelFaults, random: random.fork(),
    });
    const bridge = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: BigInt(simStartMs) * 1000n });
    const kernel = observedKernel(bridge, () => {
      counts.kernel_calls! += 1;
      violate(executionChecker.kernelCall(deviceId));
    });
    return new SimAgent(world, {
      deviceId, ...deviceKeys[i]!, random, clock, kernel, preferredGateway: random.intBelow(gatewayIds.length),
    });
  });
  for (const agent of agents) agent.boot();

  // --- faults and workload on the virtual scheduler ----------------------------------------------
  const safetyEndMs = simStartMs + safetyMs;
  const inSafety = () => !healed && time.nowMs() < safetyEndMs;
  for (const partition of scenario.faults.partitions ?? []) {
    const agentIds = partition.agents ? new Set(deviceIds.filter(() => rng.faults.chance(partition.agents!.numerator, partition.agents!.denominator))) : undefined;
    network.addPartition({
      startMs: simStartMs + partition.atMs, endMs: Math.min(safetyEndMs, simStartMs + partition.atMs + partition.durationMs),
      ...(partition.gateways ? { gatewayIds: partition.gateways } : {}), ...(agentIds ? { agentIds } : {}),
    });
  }
  /** A fleet-wide Poisson-like process: events at uniform gaps in [0, 2 * mean]. */
  const every = (meanGapMs: number, random: SeededRandom, act: () => void) => {
    if (!(meanGapMs > 0 && Number.isFinite(meanGapMs))) return;
    const next = () => {
      time.schedule(random.intBetween(0, Math.max(1, Math.round(2 * meanGapMs))), () => {
        if (!inSafety() || stopped) return;
        act();
        next();
      });
    };
    next();
  };
  const crashes = scenario.faults.agentCrashes;
  if (crashes && crashes.perAgentHour > 0) {
    const random = rng.faults.fork();
    every(3_600_000 / (agentCount * crashes.perAgentHour), random, () => {
      counts.agent_crashes! += 1;
      random.pick(agents).crash(random.intBetween(crashes.downMsMin, crashes.downMsMax));
    });
  }
  const churn = scenario.churn;
  if (churn && churn.perAgentHour > 0) {
    const random = rng.faults.fork();
    every(3_600_000 / (agentCount * churn.perAgentHour), random, () => {
      counts.churn_leaves! += 1;
      random.pick(agents).leave(random.intBetween(churn.offlineMsMin, churn.offlineMsMax));
    });
  }
  for (const restart of scenario.faults.gatewayRestarts ?? []) {
    if (restart.atMs >= safetyMs) continue;
    time.schedule(restart.atMs, () => {
      const gateway = gateways.get(restart.gateway);
      if (gateway === undefined) return;
      counts.gateway_restarts! += 1;
      trace.add('gw.crash', restart.gateway);
      gateway.abort();
      gateways.set(restart.gateway, undefined);
      for (const link of network.linksTo(restart.gateway)) link.abort('gateway');
      time.schedule(restart.downMs, () => { void startGateway(restart.gateway); });
    });
  }
  const pickOpcode = opcodePicker(scenario.commands.mix, rng.commands);
  const commandGapMs = commandMeanGapMs(scenario.commands, agentCount);
  if (commandGapMs > 0) {
    every(commandGapMs, rng.commands, () => {
      const deviceId = rng.commands.pick(deviceIds);
      const opcode = pickOpcode();
      cp.commands.create({ actor: { name: 'sim', role: 'admin' }, deviceId, opcode, args: {}, ttlMs: scenario.commands.ttlMs }).then(({ command }) => {
        counts.commands_accepted! += 1;
        accepted.add(command.id);
        trace.add('cmd.accepted', `${command.id} ${deviceId} ${opcode}`);
      }, (error: unknown) => {
        counts.commands_refused! += 1;
        trace.add('cmd.refused', `${deviceId} ${opcode} ${(error as { code?: string }).code ?? 'ERROR'}`);
      });
    });
  }

  // --- the two phases ---------------------------------------------------------------------------
  const livenessEndMs = safetyEndMs + scenario.livenessBoundMs;
  const totalMs = safetyMs + scenario.livenessBoundMs;
  const sampleIntervalMs = options.sampleIntervalMs ?? Math.max(1_000, Math.ceil(totalMs / 200 / 1_000) * 1_000);
  const series: SeriesSample[] = [];
  let nextSampleMs = simStartMs;
  const connectedCount = () => agents.reduce((n, agent) => n + (agent.connected ? 1 : 0), 0);
  const step = async (phase: RunProgress['phase'], untilMs: number) => {
    await time.runUntil(untilMs, settle);
    const rss = process.memoryUsage().rss;
    if (rss > peakRssBytes) peakRssBytes = rss;
    if (time.nowMs() >= nextSampleMs) {
      series.push({ t_ms: time.nowMs() - simStartMs, online_agents: connectedCount(), commands: { ...byState } });
      nextSampleMs += sampleIntervalMs;
    }
    options.onProgress?.({ phase, virtualMs: time.nowMs() - simStartMs, totalMs, connected: connectedCount(), agents: agentCount, commands: commandState.size });
  };
  while (!stopped && time.nowMs() < safetyEndMs) await step('safety', Math.min(safetyEndMs, time.nowMs() + chunkMs));

  healed = true;
  trace.add('heal', '');
  network.heal();
  for (const agent of agents) agent.heal();
  const nonTerminal = () => [...commandState.values()].some(({ state }) => !commandTerminalStates.includes(state));
  const presenceObservations = async () => Promise.all(agents.map(async (agent) => ({
    deviceId: agent.deviceId, connected: agent.connected, online: (await cpKv.get(kvKeys.presence(agent.deviceId))) !== null,
  })));
  let convergedAfterMs: number | null = null;
  let livenessReached = false;
  while (!stopped && time.nowMs() < livenessEndMs) {
    await step('liveness', Math.min(livenessEndMs, time.nowMs() + chunkMs));
    livenessReached = true;
    if (nonTerminal() || connectedCount() !== agentCount) continue;
    if (checkPresence(await presenceObservations()).length > 0) continue;
    convergedAfterMs = time.nowMs() - safetyEndMs;
    break;
  }

  // --- final checks through the stores ----------------------------------------------------------
  const checked = new Set<Violation['checker']>(['session_seq', 'at_most_once']);
  let outcomesByCode: Record<string, number> = {};
  if (!stopped) {
    if (convergedAfterMs === null) violations.push({ checker: 'liveness', message: `did not converge within ${scenario.livenessBoundMs} ms of healing (${connectedCount()}/${agentCount} connected, ${[...commandState.values()].filter(({ state }) => !commandTerminalStates.includes(state)).length} commands unfinished)` });
    checked.add('liveness');
    const rows = await rawSql.query<{ id: string; state: string; result_json: string | null }>('SELECT id, state, result_json FROM commands');
    outcomesByCode = countOutcomes(rows);
    const [telemetry] = await rawSql.query<{ n: number }>('SELECT COUNT(*) AS n FROM telemetry');
    counts.telemetry_stored = Number(telemetry?.n ?? 0);
    violations.push(...checkNoneLost(rows, accepted));
    checked.add('none_lost');
    // The simulator saw what every agent started and ran: the states that promise "never ran" must be true.
    const notExecuted = await rawSql.query<{ id: string; device_id: string; state: string }>(
      `SELECT id, device_id, state FROM commands WHERE state IN (${commandNotExecutedStates.map((state) => `'${state}'`).join(', ')})`,
    );
    violations.push(...checkNotExecuted(notExecuted, executionChecker));
    checked.add('not_executed');
    const history = await rawSql.query<CommandEventRow>('SELECT command_id, state, at, detail_json FROM command_events ORDER BY id ASC');
    violations.push(...checkCommandHistories(history, new Map(rows.map((row) => [row.id, row.state]))));
    checked.add('legal_transitions');
    violations.push(...await checkAuditChain(auditEntries(cp)));
    checked.add('audit_chain');
    if (livenessReached) {
      violations.push(...checkPresence(await presenceObservations()));
      checked.add('presence');
    }
    for (const violation of violations) trace.add('violation', `${violation.checker} ${violation.message}`);
  }
  const virtualMs = time.nowMs() - simStartMs;
  const traceHash = trace.digest();

  // --- teardown: stop loops that block on virtual timers by letting time run -----------------------
  for (const gateway of gateways.values()) gateway?.abort();
  const agentsStopped = Promise.all(agents.map((agent) => agent.stop()));
  let cpStopped = false;
  const cpStopping = cp.stop().finally(() => { cpStopped = true; });
  for (let round = 0; round < teardownRoundsMax && !cpStopped; round += 1) await time.runUntil(time.nowMs() + 2_000, settle);
  await Promise.race([agentsStopped, settle()]);
  await Promise.race([cpStopping, settle()]);
  await Promise.allSettled([liveKv.close(), cpKv.close(), rawBus.close(), rawSql.close()]);
  await rm(workDir, { recursive: true, force: true });

  const failed = new Set(violations.map((v) => v.checker));
  const checkers = Object.fromEntries(checkerNames.map((name) => [name, failed.has(name) ? 'fail' : checked.has(name) ? 'pass' : 'not_reached'])) as RunResult['checkers'];
  counts.frames_checked = seqChecker.framesChecked;
  return {
    seed, scenario: scenario.name, reproduce, traceHash, traceEvents: trace.events, agents: agentCount, gateways: gatewayIds.length,
    safetyMs, livenessBoundMs: scenario.livenessBoundMs, convergedAfterMs, virtualMs, wallMs: Math.round(performance.now() - wallStart),
    peakRssBytes, counts, commandsByState: { ...byState }, outcomesByCode, network: { ...network.stats }, checkers, violations, series,
    latencyHistogram: latency.map((count, i) => ({ le_ms: latencyBucketsMs[i] ?? null, count })),
    recentTrace: trace.recent(),
  };
}

async function* auditEntries(cp: ControlPlane): AsyncIterable<unknown> {
  let from = 1;
  for (;;) {
    const batch = await cp.auditStore.scan(from, 1_000);
    yield* batch;
    if (batch.length < 1_000) return;
    from = batch[batch.length - 1]!.seq + 1;
  }
}

