import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatencyRecorder, type LatencyPercentiles } from './latency-recorder.js';
import { IoctlKernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { kvKeys, liveChannel } from '../server/bus-contract/streams.js';
import { createControlPlane, type ControlPlane } from '../server/control-plane/control-plane.js';
import { migrateControlPlane } from '../server/control-plane/database.js';
import { auditWindowMsDeployment } from '../server/control-plane/audit-drain-soon.js';
import { SqlAuditStore } from '../server/control-plane/stores/sql-audit-store.js';
import { hexFromBytes } from '../core/crypto/bytes.js';
import { SdcError } from '../core/errors/index.js';
import { ed25519CountsOf, ed25519CountsSince, realProviderFor, type SimEd25519Counts } from './real-crypto.js';
import { initDeployment, serviceKid, type DeploymentMaterials, type ServiceSigner } from '../server/materials/materials.js';
import { createGatewayCore, type GatewayCore } from '../server/gateway/gateway-core.js';
import { commandNotExecutedStates, commandStates, commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import type { Clock, Ed25519Provider, SessionKeyCrypto } from '../core/ports/ports.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import { systemClock, systemRandom } from '../runtime/system.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { MemoryStreamBus } from '../server/stores/bus/memory-stream-bus.js';
import { MemoryKeyValueSpace, MemoryKeyValueStore } from '../server/stores/kv/memory-key-value-store.js';
import type { KeyValueStore } from '../server/stores/kv/kv-port.js';
import type { StreamBus } from '../server/stores/bus/bus-port.js';
import type { SqlDatabase } from '../server/stores/sql/sql-port.js';
import { openSqlJsDatabase, type SqlJsDatabase } from '../server/stores/sql/sqljs-database.js';
import type { KernelFault } from '../kernel/mock/faults.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import {
  ExecutionChecker, SessionSeqChecker, checkAuditChain, checkCommandHistories, checkNoneLost, checkNotExecuted, checkPresence, otaCheckerNames,
  type CommandEventRow, type OtaCheckerName, type OtaViolation, type Violation,
} from './checkers.js';
import { faultyBus, faultySql } from '../chaos/faulty-stores.js';
import { countOutcomes } from './outcomes.js';
import { SimNetwork, type SimLink } from '../chaos/network.js';
import { SeededRandom } from '../core/random/prng.js';
import { commandMeanGapMs, fullTierAgentsMax, opcodePicker, type Scenario } from './scenario.js';
import { SimAgent, type SimAgentWorld } from './sim-agent.js';
import { Trace } from './trace.js';
import { observedKernel } from './observed-agent-parts.js';
import { lazyKernelBridge } from './lazy-kernel.js';
import { createModelEd25519Provider, createModelSessionKeyCrypto } from './model-crypto.js';
import { drainMicrotasks } from './drain.js';
import { frameSeqFields } from './frame-fields.js';
import { ConnectedTally } from './connected-tally.js';
import { TelemetryTally, telemetryObservedSql } from './telemetry-tally.js';
import { brickSelector, checkOta, crashPlanner, createUpdater, disposeOta, otaDeviceParts, prepareOta, publishAndStart, ratioSelector, readDeviceEnds, readRolloutFacts, type OtaSetup } from './ota/ota-run.js';
import { simControlPlaneUrl, type DeviceUpdates } from './ota/device-updates.js';
import { rolloutSummary, type RolloutSummary } from './model/rollout-summary.js';

/**
 * One simulator run (TigerBeetle's VOPR): the real control plane, gateways and agents in one
 * process on virtual time, an in-memory network, embedded stores and one seeded PRNG. A safety
 * phase with the scenario's faults, then a liveness phase with every fault healed that must
 * converge within scenario.livenessBoundMs. Checkers watch throughout; the first violation stops
 * the run. runSimulation names the steps; each is a function below, in the order it runs.
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
  /**
   * `real` (default): Ed25519 on node:crypto. `model`: sim/model-crypto.ts, signatures of the
   * same sizes without the curve arithmetic; the trace hash of a seed is the same with either.
   */
  readonly crypto?: SimCrypto;
  readonly onProgress?: (progress: RunProgress) => void;
  /**
   * Tests: at every step, check the kept count of connected agents (sim/connected-tally.ts)
   * against asking every agent, and throw on a difference.
   */
  readonly checkConnectedTally?: boolean;
}

export type SimCrypto = 'real' | 'model';

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

/**
 * Where the process's CPU went (process.cpuUsage, so the figures hold on a busy machine), for
 * `sdc bench sim`: building the world, then the virtual time until every agent first had a ready
 * session (start-up), then the rest of the safety phase (steady state).
 */
export interface RunTiming {
  readonly setupCpuMs: number;
  readonly setupWallMs: number;
  /** Virtual ms from the start until every agent was ready at once; null when that never happened in the safety phase. */
  readonly allReadyAtVirtualMs: number | null;
  readonly connectCpuMs: number;
  readonly connectWallMs: number;
  /**
   * SQL commits in the same span (sql.js's saveStats().commits: every transaction and every lone
   * write), a count that does not depend on the machine: a session's start-up in transactions
   * (issue 17). The faulty stores' refusals in an outage never reach sql.js and are not counted.
   */
  readonly connectSqlCommits: number;
  /**
   * SQL statements in the same span (sql.js's saveStats().statements: reads and writes, in
   * transactions and outside), the control plane's work per device at AUTH as a count (issue 17).
   */
  readonly connectSqlStatements: number;
  /**
   * Ed25519 operations of the start-up (setup and connect) with `--crypto real`: signs, OpenSSL
   * verifies, verifies answered from the verified-signature cache, key imports (sim/real-crypto.ts).
   * Counts that do not depend on the machine (issue 17); absent with modelled crypto.
   */
  readonly startupEd25519?: SimEd25519Counts;
  readonly steadyVirtualMs: number;
  readonly steadyCpuMs: number;
  readonly steadyWallMs: number;
  /** Virtual timers fired in the steady state (each one scheduler event). */
  readonly steadyTimersFired: number;
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
  /** Every checker's verdict; the OTA checkers only in runs whose scenario has a rollout. */
  readonly checkers: Readonly<Record<Violation['checker'], CheckerVerdict>> & Readonly<Partial<Record<OtaCheckerName, CheckerVerdict>>>;
  readonly violations: readonly Violation[];
  /** The OTA checkers' violations (runs with a rollout; empty otherwise). A run failed if either list is not empty. */
  readonly otaViolations: readonly OtaViolation[];
  readonly series: readonly SeriesSample[];
  /** Round trip from creation to a device result (succeeded, failed or rejected). */
  readonly latencyHistogram: ReadonlyArray<{ readonly le_ms: number | null; readonly count: number }>;
  /** The same round trips' percentiles (sim/latency-recorder.ts: within 1/64 above 128 ms, exact below). */
  readonly latencyMs: LatencyPercentiles;
  /**
   * Each stored telemetry sample's wait from its sampled_at to the INSERT that stored it (in the
   * agent's batch buffer, on the wire, in the writer). Counts: telemetry_frames_sent and
   * telemetry_samples_sent apart (sim/telemetry-tally.ts).
   */
  readonly telemetryStorageDelayMs?: LatencyPercentiles;
  /** Operators' requests the control plane refused at creation, by error code (counts.commands_refused in all). */
  readonly refusalsByCode: Readonly<Record<string, number>>;
  readonly recentTrace: readonly string[];
  /** The rollout's aggregates (sim/model/rollout-summary.ts, as the model tier computes them), in runs whose rollout started. */
  readonly ota?: RolloutSummary;
  /** The full tier's CPU split (absent in the model tier). */
  readonly timing?: RunTiming;
}

export type CheckerVerdict = 'pass' | 'fail' | 'not_reached';

export const simStartMs = 1_800_000_000_000;
const latencyBucketsMs = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];
const checkerNames: ReadonlyArray<Violation['checker']> = ['none_lost', 'at_most_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'session_seq', 'liveness'];
const chunkMs = 1_000;
const teardownRoundsMax = 20;
/** A gateway whose start failed (stores down) is started again after this long, as a process supervisor would. */
const gatewayStartRetryMs = 1_000;
/** The same for the control plane: `sdc serve` waits for its stores, and a start cut short by an outage is retried. */
const controlPlaneStartRetryMs = 1_000;
const certificateValidityMs = 365 * 24 * 3600 * 1000;

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

function inWindow(nowMs: number, windows: ReadonlyArray<{ atMs: number; durationMs: number }> | undefined): boolean {
  return (windows ?? []).some((w) => nowMs >= simStartMs + w.atMs && nowMs < simStartMs + w.atMs + w.durationMs);
}

function emptyStates(): Record<CommandState, number> {
  return Object.fromEntries(commandStates.map((state) => [state, 0])) as Record<CommandState, number>;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return Math.round((used.user + used.system) / 1_000);
}

// --- the run's shared state -------------------------------------------------------------------

/** One fork per component, in a fixed order: adding draws in one does not shift the others. */
interface RunRandoms {
  readonly network: SeededRandom; readonly controlPlane: SeededRandom; readonly gateways: SeededRandom; readonly agents: SeededRandom;
  readonly faults: SeededRandom; readonly commands: SeededRandom; readonly keys: SeededRandom;
  /** Last, so runs without a rollout draw exactly as before. */
  readonly ota: SeededRandom;
}

/** What every step shares: the plan (seed, sizes), virtual time, the trace, counters and verdicts. */
interface Run {
  readonly options: RunOptions;
  readonly scenario: Scenario;
  readonly seed: number;
  readonly agentCount: number;
  readonly safetyMs: number;
  readonly safetyEndMs: number;
  readonly reproduce: string;
  readonly rng: RunRandoms;
  readonly provider: Ed25519Provider;
  /** The session MAC's key agreement: modelled with modelled signatures, node:crypto's X25519 (undefined) with real ones. */
  readonly sessionCrypto: SessionKeyCrypto | undefined;
  readonly time: VirtualTime;
  readonly trace: Trace;
  readonly counts: Record<string, number>;
  readonly refusalsByCode: Record<string, number>;
  readonly violations: Violation[];
  readonly otaViolations: OtaViolation[];
  /** The rollout's aggregates, read from the stores at the end (runs with a rollout that started). */
  otaSummary?: RolloutSummary;
  /** Work on real I/O that virtual time waits for (holdTime). */
  readonly realWork: Set<Promise<unknown>>;
  /** The count of connected agents, kept as they change (read by runPhases and runLiveness). */
  readonly connectedTally: ConnectedTally;
  /** Telemetry frames and samples sent, and stored samples' storage delay. */
  readonly telemetry: TelemetryTally;
  readonly wallStartMs: number;
  peakRssBytes: number;
  stopped: boolean;
  healed: boolean;
}

interface Stores {
  readonly workDir: string;
  readonly rawSql: SqlJsDatabase;
  readonly rawBus: MemoryStreamBus;
  readonly sql: SqlDatabase;
  readonly bus: StreamBus;
  readonly kvFor: () => KeyValueStore;
}

/** What the live channel shows of commands: their states, round trips, and which were accepted. */
interface CommandObserver {
  readonly states: Map<string, { state: CommandState; createdAtMs: number }>;
  readonly byState: Record<CommandState, number>;
  readonly latency: number[];
  readonly latencyRecorder: LatencyRecorder;
  readonly accepted: Set<string>;
  readonly liveKv: KeyValueStore;
}

interface Fleet {
  readonly deviceIds: readonly string[];
  readonly agentRandoms: readonly SeededRandom[];
  readonly deviceKeys: ReadonlyArray<{ deviceSeed: Uint8Array; devicePublicKey: Uint8Array; certSerialHex: string }>;
}

interface Gateways {
  readonly ids: readonly string[];
  readonly byId: Map<string, GatewayCore | undefined>;
  readonly commandKeys: ReadonlyMap<string, Uint8Array>;
  start(gatewayId: string): Promise<void>;
}

interface Checkers {
  readonly seq: SessionSeqChecker;
  readonly execution: ExecutionChecker;
}

interface Phases {
  readonly convergedAfterMs: number | null;
  readonly livenessReached: boolean;
  readonly series: SeriesSample[];
  readonly timing: RunTiming;
}

// --- the steps --------------------------------------------------------------------------------

export async function runSimulation(options: RunOptions): Promise<RunResult> {
  const cpuStart = process.cpuUsage();
  const run = planRun(options);
  const ed25519Before = ed25519CountsOf(run.provider);
  const stores = await openStores(run);
  const ota = run.scenario.ota === undefined ? undefined : await prepareOta(run.scenario.ota, run.rng.ota, simStartMs);
  const materials = await runMaterials(run, ota?.dataDir ?? stores.workDir);
  const observer = await observeCommands(run, stores);
  const fleet = await registerDevices(run, stores);
  const controlPlane = await startControlPlane(run, stores, materials, ota);
  if (ota !== undefined) ota.app = () => controlPlane.cp?.app;
  const gateways = await startGateways(run, stores, materials);
  const checkers: Checkers = { seq: new SessionSeqChecker(), execution: new ExecutionChecker() };
  const network = createNetwork(run, checkers);
  const agents = bootAgents(run, { fleet, gateways, network, checkers, materials, ota });
  scheduleFaults(run, { fleet, agents, gateways, network });
  scheduleWorkload(run, { controlPlane, fleet, observer });
  if (ota !== undefined) scheduleRollout(run, { controlPlane, fleet, ota });
  const setup = { cpuMs: cpuMsSince(cpuStart), wallMs: performance.now() - run.wallStartMs, ed25519Before };
  const phases = await runPhases(run, { agents, network, observer, cpKv: controlPlane.kv, setup, sql: stores.rawSql });
  const { checked, outcomesByCode } = await finalChecks(run, { stores, controlPlane, observer, checkers, agents, phases, ota });
  const traceHash = run.trace.digest();
  const virtualMs = run.time.nowMs() - simStartMs;
  const final = finalSample(run, { agents, observer, phases });
  await teardown(run, { stores, controlPlane, observer, gateways, agents });
  if (ota !== undefined) await disposeOta(ota);
  run.counts.frames_checked = checkers.seq.framesChecked;
  return summarize(run, { traceHash, virtualMs, checked, outcomesByCode, phases, observer, network, gateways, final });
}

/** The plan: sizes, the reproduce line, one PRNG fork per component, virtual time and the trace. */
function planRun(options: RunOptions): Run {
  const { scenario, seed } = options;
  const agentCount = options.agents ?? scenario.agents;
  if (!(Number.isSafeInteger(agentCount) && agentCount >= 1 && agentCount <= fullTierAgentsMax)) throw new RangeError(`the full tier runs 1 to ${fullTierAgentsMax} agents, not ${agentCount}`);
  const safetyMs = options.safetyMs ?? scenario.safetyMs;
  const reproduce = `sdc sim --seed ${seed} --scenario ${options.scenarioRef}${options.agents === undefined ? '' : ` --agents ${agentCount}`}${options.safetyMs === undefined ? '' : ` --duration ${safetyMs}ms`}`;
  const root = new SeededRandom(seed);
  const rng: RunRandoms = {
    network: root.fork(), controlPlane: root.fork(), gateways: root.fork(), agents: root.fork(),
    faults: root.fork(), commands: root.fork(), keys: root.fork(), ota: root.fork(),
  };
  const time = new VirtualTime(simStartMs, 50_000_000);
  const trace = new Trace(time);
  const counts: Record<string, number> = {
    commands_accepted: 0, commands_refused: 0, executions: 0, rejections: 0, interrupted: 0, sessions_ready: 0,
    sessions_closed: 0, agent_crashes: 0, churn_leaves: 0, gateway_restarts: 0, kernel_calls: 0, frames_checked: 0,
  };
  return {
    options, scenario, seed, agentCount, safetyMs, safetyEndMs: simStartMs + safetyMs, reproduce, rng, time, trace, counts,
    provider: options.crypto === 'model' ? createModelEd25519Provider() : realProviderFor(agentCount),
    sessionCrypto: options.crypto === 'model' ? createModelSessionKeyCrypto() : undefined,
    refusalsByCode: {}, violations: [], otaViolations: [], realWork: new Set(), connectedTally: new ConnectedTally(), telemetry: new TelemetryTally(), wallStartMs: performance.now(), peakRssBytes: process.memoryUsage().rss, stopped: false, healed: false,
  };
}

/**
 * Virtual time stands still until `work` settles. A control plane's start awaits real I/O (its
 * JWT keys come from WebCrypto on the thread pool), which drainMicrotasks never waits for; the
 * first start finishes before time moves, and a retried one must too, or the virtual instant it
 * comes up would depend on the machine's speed.
 */
function holdTime(run: Run, work: Promise<unknown>): void {
  run.realWork.add(work);
  void work.finally(() => run.realWork.delete(work));
}

/** After each virtual timer: its promise work, and any held real work, runs to the end. */
async function settle(run: Run): Promise<void> {
  await drainMicrotasks();
  while (run.realWork.size > 0 || (run.scenario.ota !== undefined && fileRequestsInFlight())) {
    await Promise.allSettled([...run.realWork]);
    if (run.scenario.ota !== undefined) await new Promise<void>((resolve) => setImmediate(resolve));
    await drainMicrotasks();
  }
}

/**
 * Whether a file system request is on its way. A run with a rollout reaches code that touches
 * files on its own (the embedded blob store stats the artifact at every notice it presigns);
 * virtual time waits for every such request, and for what its completion starts, before the
 * next timer, so the virtual instant it lands on does not depend on the disk's speed. Runs
 * without a rollout never look (none of their code touches a file after the start).
 */
function fileRequestsInFlight(): boolean {
  // FSReqCallback, FSReqPromise, and a FileHandle's CloseReq (fs/promises closes its handle when a readFile ends).
  return process.getActiveResourcesInfo().some((resource) => resource.startsWith('FSReq') || resource === 'CloseReq');
}

/** The first violation stops the run. */
function violate(run: Run, violation: Violation | undefined): void {
  if (violation === undefined) return;
  run.violations.push(violation);
  run.trace.add('violation', `${violation.checker} ${violation.message}`);
  run.stopped = true;
}

/** ControlPlaneOptions.eventAuditWindowMs in a run: a deployment's window. */
const simEventAuditWindowMs = auditWindowMsDeployment;

/** Embedded stores behind the scenario's outage windows (a healed run has none). */
async function openStores(run: Run): Promise<Stores> {
  const { time, scenario } = run;
  const busDown = () => !run.healed && inWindow(time.nowMs(), scenario.faults.busOutages);
  const sqlDown = () => !run.healed && inWindow(time.nowMs(), scenario.faults.sqlOutages);
  const workDir = await mkdtemp(join(tmpdir(), 'sdc-sim-'));
  // Saved only at close: a run never waits on the disk.
  // Without the nested-call check: its AsyncLocalStorage costs every promise of the run (about 5 % of
  // start-up, issue 17); the control-plane tests run the same code with it on.
  const rawSql = await openSqlJsDatabase({
    dataDir: workDir, durability: { mode: 'interval', intervalMs: 365 * 24 * 3600 * 1000 }, scheduler: time, refuseNestedCalls: false,
  });
  const rawBus = new MemoryStreamBus({ clock: time, scheduler: time, entriesPerStreamMax: 2_000_000, pendingPerGroupMax: 1_000_000, waitersMax: 100_000 });
  // About five keys per device in a standard run (2,504 for 500 agents after 2 virtual minutes), more with
  // churn and faults: the bound grows with the fleet, 20 per device, so a large fleet is not refused for its size.
  const kvSpace = new MemoryKeyValueSpace({ clock: time, keysMax: Math.max(1_000_000, run.agentCount * 20) });
  return {
    workDir, rawSql, rawBus, bus: faultyBus(rawBus, busDown),
    sql: telemetryObservedSql(faultySql(rawSql, sqlDown), (sampledAtMs) => run.telemetry.stored(sampledAtMs, time.nowMs())),
    kvFor: () => new MemoryKeyValueStore({ space: kvSpace, keyPrefix: 'sdc:kv:' }),
  };
}

/** The shared CA with the run's command and gateway signing keys, drawn from the seed. */
async function runMaterials(run: Run, dataDir: string): Promise<DeploymentMaterials> {
  const { materials: base } = await sharedMaterials();
  const seededSigner = (role: 'cp' | 'gateway'): ServiceSigner => {
    const seed = run.rng.keys.bytes(32);
    const publicKey = run.provider.publicKeyFromSeed(seed);
    return { kid: serviceKid(role, publicKey), seed, publicKey };
  };
  // The control plane writes into its data directory (the blob store's key, blobs): the run's
  // own, removed at teardown, never the shared CA's (removed as soon as it is loaded). A rollout
  // needs the image repository there, as `sdc ota init` leaves it.
  return { ...base, commandSigner: seededSigner('cp'), gatewaySigner: seededSigner('gateway'), dataDir };
}

/**
 * The control plane (undefined until a start succeeded) and the key/value client it was given
 * (the presence checker reads through it).
 */
interface ControlPlaneRun {
  cp: ControlPlane | undefined;
  readonly kv: KeyValueStore;
  /** Set at teardown: a start still waiting to be retried is not. */
  retired: boolean;
}

/**
 * Starts the control plane; a start that fails with STORE_UNAVAILABLE (an outage from t = 0, or
 * one that begins during the start) is abandoned and tried again a second later on virtual time,
 * as `sdc serve` waiting for its stores, or its supervisor restarting it, would. Until then
 * operators' requests are refused (scheduleWorkload), and agents and gateways run on.
 */
async function startControlPlane(run: Run, stores: Stores, materials: DeploymentMaterials, ota: OtaSetup | undefined): Promise<ControlPlaneRun> {
  const { time, trace } = run;
  const holder: ControlPlaneRun = { cp: undefined, kv: stores.kvFor(), retired: false };
  const attempt = async (): Promise<void> => {
    if (holder.retired) return;
    let cp: ControlPlane | undefined;
    try {
      cp = await createControlPlane({
        materials, stores: { sql: stores.sql, bus: stores.bus, kv: holder.kv }, clock: time, random: run.rng.controlPlane, scheduler: time,
        gatewayUrls: ['sim://gateway'], persistJwtKeys: false, consumerName: 'cp-sim', scryptParams: { N: 1024, r: 8, p: 1 },
        expirySweepIntervalMs: 5_000, consumerBlockMs: 1_000, claimIdleMs: 30_000, ed25519: run.provider,
        // The event handlers' audit inputs (each device's compliance and policy bundle report at its
        // AUTH) share one outbox drain per window, not one per virtual millisecond: about 12 % of a
        // 2,000-agent start-up's CPU (issue 17). Virtual time only; the trace is the same.
        eventAuditWindowMs: simEventAuditWindowMs,
        // The notices' presigned artifact URLs name this origin; the devices' fetch adapter answers it in process.
        ...(ota === undefined ? {} : { otaExecutionTimeouts: ota.timeouts, otaBlobs: { publicBaseUrl: simControlPlaneUrl } }),
      });
      await cp.start();
    } catch (error) {
      if (!SdcError.is(error, 'STORE_UNAVAILABLE')) throw error;
      trace.add('cp.start_failed', error.code);
      // What the failed start had begun (timers, the live relay) goes with it, as with the process.
      cp?.stop().catch(() => undefined);
      time.schedule(controlPlaneStartRetryMs, () => { holdTime(run, attempt()); });
      return;
    }
    holder.cp = cp;
    trace.add('cp.up', '');
  };
  await attempt();
  return holder;
}

/** Observed through the store: the live channel carries every command state and presence change. */
async function observeCommands(run: Run, stores: Stores): Promise<CommandObserver> {
  const observer: CommandObserver = {
    states: new Map(), byState: emptyStates(), latency: new Array<number>(latencyBucketsMs.length + 1).fill(0), latencyRecorder: new LatencyRecorder(),
    accepted: new Set(), liveKv: stores.kvFor(),
  };
  await observer.liveKv.subscribe(liveChannel, (message) => {
    const event = JSON.parse(message) as { type: string; command_id?: string; device_id: string; state?: string; online?: boolean; gateway_id?: string; at_ms: number };
    if (event.type === 'command' && event.command_id !== undefined && event.state !== undefined) {
      observeCommandState(run, observer, event.command_id, event.state as CommandState, event.at_ms);
    } else if (event.type === 'presence') {
      run.trace.add('presence', `${event.device_id} ${event.online ? 'online' : 'offline'} ${event.gateway_id ?? ''}`);
    }
  });
  return observer;
}

function observeCommandState(run: Run, observer: CommandObserver, commandId: string, state: CommandState, atMs: number): void {
  const known = observer.states.get(commandId);
  if (known) observer.byState[known.state] -= 1;
  observer.byState[state] += 1;
  observer.states.set(commandId, { state, createdAtMs: known?.createdAtMs ?? atMs });
  run.trace.add('cmd.state', `${commandId} ${state}`);
  if (known && (state === 'succeeded' || state === 'failed' || state === 'rejected')) {
    const rttMs = atMs - known.createdAtMs;
    const bucket = latencyBucketsMs.findIndex((le) => rttMs <= le);
    observer.latency[bucket === -1 ? latencyBucketsMs.length : bucket]! += 1;
    observer.latencyRecorder.record(rttMs);
  }
}

/** Rows inserted per statement at start-up: well under sql.js's bound on bound parameters (32,766). */
const deviceRowsPerInsert = 500;

/**
 * Devices with keys from the PRNG, registered directly (see docs/simulation.md), many rows per
 * INSERT, before the control plane starts (as enrolled devices of an earlier run would be), so
 * that a store outage from t = 0 does not stop it: the control plane's start publishes their
 * enrolled keys (gateways admit only those).
 */
async function registerDevices(run: Run, stores: Stores): Promise<Fleet> {
  const { agentCount, provider } = run;
  // Pairwise different streams: plain forks give one pair of twin agents (same key and serial) per ~93,000 (core/random/prng.ts).
  const agentRandoms = run.rng.agents.forks(agentCount);
  const deviceIds = Array.from({ length: agentCount }, (_, i) => `dev-${String(i + 1).padStart(5, '0')}`);
  const deviceKeys = agentRandoms.map((r) => {
    const deviceSeed = r.bytes(32);
    return { deviceSeed, devicePublicKey: provider.publicKeyFromSeed(deviceSeed), certSerialHex: hexFromBytes(r.bytes(8)).replace(/^0+/, '') || '1' };
  });
  await migrateControlPlane(stores.rawSql, run.time);
  await stores.rawSql.transaction(async (tx) => {
    for (let from = 0; from < agentCount; from += deviceRowsPerInsert) {
      const to = Math.min(agentCount, from + deviceRowsPerInsert);
      const params: Array<string | number> = [];
      for (let i = from; i < to; i += 1) {
        params.push(deviceIds[i]!, simStartMs, deviceKeys[i]!.certSerialHex, simStartMs + certificateValidityMs, Buffer.from(deviceKeys[i]!.devicePublicKey).toString('base64url'));
      }
      const rows = Array.from({ length: to - from }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(', ');
      await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${rows}`, params);
    }
  });
  return { deviceIds, agentRandoms, deviceKeys };
}

/** Gateways gw-1..gw-N; one whose start fails (stores down) is started again as a supervisor would. */
async function startGateways(run: Run, stores: Stores, materials: DeploymentMaterials): Promise<Gateways> {
  const { time, scenario, agentCount, trace } = run;
  const ids = Array.from({ length: scenario.gateways }, (_, i) => `gw-${i + 1}`);
  const byId = new Map<string, GatewayCore | undefined>();
  const commandKeys = new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]);
  const start = async (gatewayId: string): Promise<void> => {
    const gateway = createGatewayCore({
      gatewayId, signer: { kid: materials.gatewaySigner.kid, seed: materials.gatewaySigner.seed }, provider: run.provider,
      ...(run.sessionCrypto === undefined ? {} : { sessionCrypto: run.sessionCrypto }),
      stores: { bus: stores.bus, kv: stores.kvFor() }, clock: time, random: run.rng.gateways.fork(), scheduler: time, commandKeys,
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
      time.schedule(gatewayStartRetryMs, () => { void start(gatewayId); });
      return;
    }
    byId.set(gatewayId, gateway);
    trace.add('gw.up', gatewayId);
  };
  for (const id of ids) await start(id);
  return { ids, byId, commandKeys, start };
}

/** The in-memory network; the seq checker sees every frame as it leaves its sender. */
function createNetwork(run: Run, checkers: Checkers): SimNetwork {
  const { time, scenario, counts, trace } = run;
  const network = new SimNetwork({
    clock: time, scheduler: time, random: run.rng.network, queueFramesMax: 1024,
    observer: {
      sent(link, direction, bytes) {
        counts.frames_checked! += 1;
        if (direction === 'to_gateway') run.telemetry.sent(bytes);
        // The two top-level members only, as JSON.parse would read them (sim/frame-fields.ts: a full parse of every frame cost 3.6 % of the steady state).
        const frame = frameSeqFields(bytes);
        if (typeof frame.sessionId === 'string' && typeof frame.seq === 'number') violate(run, checkers.seq.observe(`${link.id}:${direction}`, frame.sessionId, frame.seq));
      },
      delivered(link, direction, bytes) {
        trace.add('frame', `${link.id} ${direction} ${bytes.length}`);
      },
    },
  });
  network.setFaults(scenario.faults.network ?? {}, new Map(Object.entries(scenario.faults.gatewayLinks ?? {})));
  return network;
}

function kernelFaultsOf(scenario: Scenario): KernelFault[] {
  const { kernelErrors, kernelLatency } = scenario.faults;
  return [
    ...(kernelErrors ? [{ kind: 'status', status: kernelErrors.status, ratio: kernelErrors.ratio } as const] : []),
    ...(kernelLatency ? [{ kind: 'latency', delayMs: kernelLatency.delayMs, ratio: kernelLatency.ratio } as const] : []),
  ];
}

/** What the agents see of the world, and what the run learns from them. */
function agentWorld(run: Run, parts: { gateways: Gateways; network: SimNetwork; checkers: Checkers; materials: DeploymentMaterials }): SimAgentWorld {
  const { time, scenario, counts, trace } = run;
  const { gateways, checkers, materials } = parts;
  return {
    time, network: parts.network, provider: run.provider, gatewayIds: gateways.ids, connectedTally: run.connectedTally,
    ...(run.sessionCrypto === undefined ? {} : { sessionCrypto: run.sessionCrypto }),
    gateway: (id) => gateways.byId.get(id),
    resolveGatewayKey: (kid) => (kid === materials.gatewaySigner.kid ? materials.gatewaySigner.publicKey : undefined),
    resolveCommandKey: (kid) => gateways.commandKeys.get(kid),
    heartbeatIntervalMs: scenario.heartbeatIntervalMs,
    telemetryIntervalMs: scenario.telemetryIntervalMs,
    ...(scenario.telemetrySamplesPerFrame === undefined ? {} : { telemetrySamplesPerFrameMax: scenario.telemetrySamplesPerFrame }),
    ...(scenario.telemetryBatchDelayMs === undefined ? {} : { telemetryBatchDelayMs: scenario.telemetryBatchDelayMs }),
    ...(scenario.telemetryAcks === true ? { telemetryAcks: true } : {}),
    trace: (kind, detail) => trace.add(kind, detail),
    onExecuting: (deviceId, commandId) => checkers.execution.executing(deviceId, commandId),
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
      checkers.seq.forget(`${link.id}:to_gateway`);
      checkers.seq.forget(`${link.id}:to_agent`);
    },
  };
}

/** The backend a mock kernel's bridge reports (MockIoctlDevice.kind). */
const mockKernelBackend = 'mock';

/** One agent per device, each with its clock skew, mock kernel and journal; all booted. */
function bootAgents(run: Run, parts: { fleet: Fleet; gateways: Gateways; network: SimNetwork; checkers: Checkers; materials: DeploymentMaterials; ota: OtaSetup | undefined }): SimAgent[] {
  const { time, scenario, provider, counts } = run;
  const { fleet, gateways, checkers } = parts;
  const world = { ...agentWorld(run, parts), ...(parts.ota === undefined ? {} : { otaNotice: otaNoticeHandler(run, parts.ota, parts.materials) }) };
  const kernelFaults = kernelFaultsOf(scenario);
  const skewMax = scenario.faults.clockSkewMsMax ?? 0;
  const agents = fleet.deviceIds.map((deviceId, i) => {
    const random = fleet.agentRandoms[i]!;
    const skewMs = skewMax === 0 ? 0 : random.intBetween(-skewMax, skewMax);
    const clock: Clock = { nowMs: () => time.nowMs() + skewMs };
    const agentSeed = random.bytes(32);
    const serviceSeed = random.bytes(32);
    const ota = otaDeviceParts(parts.ota, deviceId, clock);
    // Drawn here, in the order the eager build drew it, whichever way the bridge is built.
    const deviceRandom = random.fork();
    const commandKeys = { deviceId, keys: [...gateways.commandKeys.values()] };
    const makeBridge = () => new IoctlKernelBridge({
      device: new MockIoctlDevice({
        ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock, scheduler: time,
        faults: kernelFaults, random: deviceRandom, ...ota.kernelOptions,
        // Provisioned as enrollment does: the kernel verifies every command's control-plane signature itself.
        commandKeys,
      }),
      ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: BigInt(simStartMs) * 1000n,
    });
    // Built on its first call (sim/lazy-kernel.ts: two key derivations less per agent at start-up,
    // issue 17); a rollout's update runner needs the bridge itself, so OTA runs build it at once.
    const bridge = parts.ota === undefined ? lazyKernelBridge(mockKernelBackend, makeBridge) : makeBridge();
    // The update runner's kernel calls are counted as every kernel call is, and attributed to its
    // execution by the OTA observer, not to an operator command (the at-most-once checker's).
    const otaObserver = parts.ota?.observer;
    if (otaObserver !== undefined) {
      ota.attach(observedKernel(bridge, (call) => {
        counts.kernel_calls! += 1;
        counts.ota_kernel_calls = (counts.ota_kernel_calls ?? 0) + 1;
        otaObserver.kernelCall(deviceId, call);
      }, { withConfirm: true }), bridge);
    }
    const kernel = observedKernel(bridge, () => {
      counts.kernel_calls! += 1;
      violate(run, checkers.execution.kernelCall(deviceId));
    });
    return new SimAgent(world, { deviceId, ...fleet.deviceKeys[i]!, random, clock, kernel, preferredGateway: random.intBelow(gateways.ids.length) });
  });
  for (const agent of agents) agent.boot();
  return agents;
}

/**
 * Each device's update runner (sim/ota/device-updates.ts: the real agent's, on the simulator's
 * ports), made when its first notice comes; it outlives crashes of the agent process, as the
 * update journal does, and reports through the agent core that runs now. Its randomness comes
 * from the run's OTA fork, in notice order.
 */
function otaNoticeHandler(run: Run, ota: OtaSetup, materials: DeploymentMaterials): (agent: SimAgent, notice: MessageBody<'OTA_NOTICE'>) => void {
  const scenarioOta = run.scenario.ota!;
  const updaters = new Map<string, DeviceUpdates>();
  const bricks = brickSelector(scenarioOta.bricks, run.rng.ota.fork());
  const random = run.rng.ota.fork();
  // Forked after the two above, so the draws they make stay as they were.
  const targetsRoute = ratioSelector(scenarioOta.targetsRoute?.ratio, run.rng.ota.fork());
  const crashes = crashPlanner(scenarioOta.crashes, run.rng.ota.fork());
  return (agent, notice) => {
    let updater = updaters.get(agent.deviceId);
    if (updater === undefined) {
      updater = createUpdater(ota, {
        deviceId: agent.deviceId, ota: scenarioOta, time: run.time, random: random.fork(), commandSigner: materials.commandSigner, provider: run.provider,
        bricks, targetsRoute, crashes,
        crashAgent: (downMs) => { run.counts.agent_crashes! += 1; agent.crash(downMs); },
        send: (report) => agent.core?.sendOtaReport(report) ?? false, trace: (kind, detail) => run.trace.add(kind, detail),
        // The agent's held policy bundle decides the rollout's STAGE and COMMIT; a crashed agent's runner goes on unchecked, as its reports wait.
        checkCommand: (command) => agent.core?.checkPolicyBundle(command),
        hold: (work) => holdTime(run, work),
      });
      updaters.set(agent.deviceId, updater);
    }
    updater.onNotice(notice);
  };
}

/** At the scenario's time: the release is published and its rollout started (real I/O: virtual time waits for it). */
function scheduleRollout(run: Run, parts: { controlPlane: ControlPlaneRun; fleet: Fleet; ota: OtaSetup }): void {
  const { ota } = parts;
  run.time.schedule(run.scenario.ota!.atMs, () => {
    const cp = parts.controlPlane.cp;
    if (cp === undefined) {
      ota.startError = 'the control plane was not up';
      run.trace.add('ota.start_failed', ota.startError);
      return;
    }
    holdTime(run, publishAndStart(ota, run.scenario.ota!, cp, parts.fleet.deviceIds, run.seed).then((rolloutId) => {
      ota.rolloutId = rolloutId;
      run.trace.add('ota.rollout_started', rolloutId);
    }, (error: unknown) => {
      ota.startError = SdcError.is(error) ? error.code : (error as Error).message;
      run.trace.add('ota.start_failed', ota.startError);
    }));
  });
}

const inSafety = (run: Run) => !run.healed && run.time.nowMs() < run.safetyEndMs;

/** A fleet-wide Poisson-like process in the safety phase: events at uniform gaps in [0, 2 * mean]. */
function every(run: Run, meanGapMs: number, random: SeededRandom, act: () => void): void {
  if (!(meanGapMs > 0 && Number.isFinite(meanGapMs))) return;
  const next = () => {
    run.time.schedule(random.intBetween(0, Math.max(1, Math.round(2 * meanGapMs))), () => {
      if (!inSafety(run) || run.stopped) return;
      act();
      next();
    });
  };
  next();
}

/** Partitions, agent crashes, churn and gateway restarts on the virtual scheduler. */
function scheduleFaults(run: Run, parts: { fleet: Fleet; agents: readonly SimAgent[]; gateways: Gateways; network: SimNetwork }): void {
  const { scenario, rng, agentCount, counts, trace } = run;
  const { agents, network } = parts;
  for (const partition of scenario.faults.partitions ?? []) {
    // A safety phase shortened below the partition's start (--duration) leaves it out, as gateway
    // restarts after the phase are: faults belong to the safety phase, and the liveness phase heals.
    if (partition.atMs >= run.safetyMs) {
      trace.add('fault.skipped', `partition at ${partition.atMs} ms is after the safety phase`);
      continue;
    }
    const agentIds = partition.agents ? new Set(parts.fleet.deviceIds.filter(() => rng.faults.chance(partition.agents!.numerator, partition.agents!.denominator))) : undefined;
    network.addPartition({
      startMs: simStartMs + partition.atMs, endMs: Math.min(run.safetyEndMs, simStartMs + partition.atMs + partition.durationMs),
      ...(partition.gateways ? { gatewayIds: partition.gateways } : {}), ...(agentIds ? { agentIds } : {}),
    });
  }
  const crashes = scenario.faults.agentCrashes;
  if (crashes && crashes.perAgentHour > 0) {
    const random = rng.faults.fork();
    every(run, 3_600_000 / (agentCount * crashes.perAgentHour), random, () => {
      counts.agent_crashes! += 1;
      random.pick(agents).crash(random.intBetween(crashes.downMsMin, crashes.downMsMax));
    });
  }
  const churn = scenario.churn;
  if (churn && churn.perAgentHour > 0) {
    const random = rng.faults.fork();
    every(run, 3_600_000 / (agentCount * churn.perAgentHour), random, () => {
      counts.churn_leaves! += 1;
      random.pick(agents).leave(random.intBetween(churn.offlineMsMin, churn.offlineMsMax));
    });
  }
  for (const restart of scenario.faults.gatewayRestarts ?? []) {
    if (restart.atMs < run.safetyMs) scheduleGatewayRestart(run, parts, restart);
  }
}

function scheduleGatewayRestart(run: Run, parts: { gateways: Gateways; network: SimNetwork }, restart: { atMs: number; gateway: string; downMs: number }): void {
  const { gateways, network } = parts;
  run.time.schedule(restart.atMs, () => {
    const gateway = gateways.byId.get(restart.gateway);
    if (gateway === undefined) return;
    run.counts.gateway_restarts! += 1;
    run.trace.add('gw.crash', restart.gateway);
    gateway.abort();
    gateways.byId.set(restart.gateway, undefined);
    for (const link of network.linksTo(restart.gateway)) link.abort('gateway');
    run.time.schedule(restart.downMs, () => { void gateways.start(restart.gateway); });
  });
}

/** Operators' commands: random devices and opcodes from the scenario's mix, at its rate. */
function scheduleWorkload(run: Run, parts: { controlPlane: ControlPlaneRun; fleet: Fleet; observer: CommandObserver }): void {
  const { scenario, rng, counts, trace } = run;
  const { controlPlane, fleet, observer } = parts;
  const pickOpcode = opcodePicker(scenario.commands.mix, rng.commands);
  every(run, commandMeanGapMs(scenario.commands, run.agentCount), rng.commands, () => {
    const deviceId = rng.commands.pick(fleet.deviceIds);
    const opcode = pickOpcode();
    const cp = controlPlane.cp;
    if (cp === undefined) {
      // Not started yet (its stores are down): the operator's request finds no API to answer it.
      counts.commands_refused! += 1;
      run.refusalsByCode.STORE_UNAVAILABLE = (run.refusalsByCode.STORE_UNAVAILABLE ?? 0) + 1;
      trace.add('cmd.refused', `${deviceId} ${opcode} STORE_UNAVAILABLE`);
      return;
    }
    cp.commands.create({ actor: { name: 'sim', role: 'admin' }, deviceId, opcode, args: {}, ttlMs: scenario.commands.ttlMs }).then(({ command }) => {
      counts.commands_accepted! += 1;
      observer.accepted.add(command.id);
      trace.add('cmd.accepted', `${command.id} ${deviceId} ${opcode}`);
    }, (error: unknown) => {
      counts.commands_refused! += 1;
      const code = (error as { code?: string }).code ?? 'ERROR';
      run.refusalsByCode[code] = (run.refusalsByCode[code] ?? 0) + 1;
      trace.add('cmd.refused', `${deviceId} ${opcode} ${code}`);
    });
  });
}

const connectedCount = (agents: readonly SimAgent[]) => agents.reduce((n, agent) => n + (agent.connected ? 1 : 0), 0);

/** The connected agents from the kept tally; with `checkConnectedTally`, checked against asking all of them. */
function tallied(run: Run, agents: readonly SimAgent[]): number {
  const count = run.connectedTally.count();
  if (run.options.checkConnectedTally === true) {
    const scanned = connectedCount(agents);
    if (scanned !== count) throw new Error(`connected tally ${count} != ${scanned} at virtual ${run.time.nowMs() - simStartMs} ms`);
  }
  return count;
}

/** The safety phase with faults, then healing and the liveness phase that must converge within the bound. */
async function runPhases(run: Run, parts: { agents: readonly SimAgent[]; network: SimNetwork; observer: CommandObserver; cpKv: KeyValueStore; setup: { cpuMs: number; wallMs: number; ed25519Before: SimEd25519Counts | undefined }; sql: SqlJsDatabase }): Promise<Phases> {
  const { time, scenario, agentCount } = run;
  const { agents, observer } = parts;
  const totalMs = run.safetyMs + scenario.livenessBoundMs;
  const sampleIntervalMs = run.options.sampleIntervalMs ?? Math.max(1_000, Math.ceil(totalMs / 200 / 1_000) * 1_000);
  const series: SeriesSample[] = [];
  let nextSampleMs = simStartMs;
  let timersFired = 0;
  const step = async (phase: RunProgress['phase'], untilMs: number) => {
    timersFired += await time.runUntil(untilMs, () => settle(run));
    const rss = process.memoryUsage.rss();
    if (rss > run.peakRssBytes) run.peakRssBytes = rss;
    if (time.nowMs() >= nextSampleMs) {
      series.push({ t_ms: time.nowMs() - simStartMs, online_agents: tallied(run, agents), commands: { ...observer.byState } });
      nextSampleMs += sampleIntervalMs;
    }
    run.options.onProgress?.({ phase, virtualMs: time.nowMs() - simStartMs, totalMs, connected: tallied(run, agents), agents: agentCount, commands: observer.states.size });
  };
  // Start-up lasts until every agent first has a ready session; the rest of the safety phase is the steady state.
  const connectCpu = process.cpuUsage();
  const connectWallStartMs = performance.now();
  const connectSqlBefore = parts.sql.saveStats();
  let allReadyAtVirtualMs: number | null = null;
  while (!run.stopped && time.nowMs() < run.safetyEndMs && allReadyAtVirtualMs === null) {
    await step('safety', Math.min(run.safetyEndMs, time.nowMs() + chunkMs));
    if (tallied(run, agents) === agentCount) allReadyAtVirtualMs = time.nowMs() - simStartMs;
  }
  const connectCpuMs = cpuMsSince(connectCpu);
  const connectWallMs = performance.now() - connectWallStartMs;
  const connectSqlAfter = parts.sql.saveStats();
  const connectSqlCommits = connectSqlAfter.commits - connectSqlBefore.commits;
  const connectSqlStatements = connectSqlAfter.statements - connectSqlBefore.statements;
  const startupEd25519 = ed25519CountsSince(parts.setup.ed25519Before, run.provider);
  const steadyCpu = process.cpuUsage();
  const steadyWallStartMs = performance.now();
  const steadyStartMs = time.nowMs();
  timersFired = 0;
  while (!run.stopped && time.nowMs() < run.safetyEndMs) await step('safety', Math.min(run.safetyEndMs, time.nowMs() + chunkMs));
  const timing: RunTiming = {
    setupCpuMs: parts.setup.cpuMs, setupWallMs: Math.round(parts.setup.wallMs), allReadyAtVirtualMs, connectCpuMs, connectWallMs: Math.round(connectWallMs), connectSqlCommits, connectSqlStatements,
    ...(startupEd25519 === undefined ? {} : { startupEd25519 }),
    steadyVirtualMs: time.nowMs() - steadyStartMs, steadyCpuMs: cpuMsSince(steadyCpu), steadyWallMs: Math.round(performance.now() - steadyWallStartMs),
    steadyTimersFired: timersFired,
  };
  heal(run, parts);
  const liveness = await runLiveness(run, parts, step);
  return { ...liveness, series, timing };
}

function heal(run: Run, parts: { agents: readonly SimAgent[]; network: SimNetwork }): void {
  run.healed = true;
  run.trace.add('heal', '');
  parts.network.heal();
  for (const agent of parts.agents) agent.heal();
}

const nonTerminal = (observer: CommandObserver) => [...observer.states.values()].some(({ state }) => !commandTerminalStates.includes(state));

function presenceObservations(agents: readonly SimAgent[], cpKv: KeyValueStore) {
  return Promise.all(agents.map(async (agent) => ({
    deviceId: agent.deviceId, connected: agent.connected, online: (await cpKv.get(kvKeys.presence(agent.deviceId))) !== null,
  })));
}

/** Runs healed until every agent is connected, every command terminal and presence true, or the bound passes. */
async function runLiveness(
  run: Run, parts: { agents: readonly SimAgent[]; observer: CommandObserver; cpKv: KeyValueStore },
  step: (phase: RunProgress['phase'], untilMs: number) => Promise<void>,
): Promise<{ convergedAfterMs: number | null; livenessReached: boolean }> {
  const { time, agentCount } = run;
  const livenessEndMs = run.safetyEndMs + run.scenario.livenessBoundMs;
  let livenessReached = false;
  while (!run.stopped && time.nowMs() < livenessEndMs) {
    await step('liveness', Math.min(livenessEndMs, time.nowMs() + chunkMs));
    livenessReached = true;
    if (nonTerminal(parts.observer) || tallied(run, parts.agents) !== agentCount) continue;
    if (checkPresence(await presenceObservations(parts.agents, parts.cpKv)).length > 0) continue;
    return { convergedAfterMs: time.nowMs() - run.safetyEndMs, livenessReached };
  }
  return { convergedAfterMs: null, livenessReached };
}

/** The checkers that read the stores at the end: none lost, not executed, legal transitions, audit chain, presence. */
async function finalChecks(
  run: Run, parts: { stores: Stores; controlPlane: ControlPlaneRun; observer: CommandObserver; checkers: Checkers; agents: readonly SimAgent[]; phases: Phases; ota: OtaSetup | undefined },
): Promise<{ checked: Set<Violation['checker'] | OtaCheckerName>; outcomesByCode: Record<string, number> }> {
  const checked = new Set<Violation['checker'] | OtaCheckerName>(['session_seq', 'at_most_once']);
  if (run.stopped) return { checked, outcomesByCode: {} };
  const { rawSql } = parts.stores;
  const { observer, phases, agents } = parts;
  const violations: Violation[] = [];
  if (phases.convergedAfterMs === null) violations.push({ checker: 'liveness', message: `did not converge within ${run.scenario.livenessBoundMs} ms of healing (${parts.controlPlane.cp === undefined ? 'the control plane never started, ' : ''}${connectedCount(agents)}/${run.agentCount} connected, ${[...observer.states.values()].filter(({ state }) => !commandTerminalStates.includes(state)).length} commands unfinished)` });
  checked.add('liveness');
  const rows = await rawSql.query<{ id: string; state: string; result_json: string | null }>('SELECT id, state, result_json FROM commands');
  const outcomesByCode = countOutcomes(rows);
  const [telemetry] = await rawSql.query<{ n: number }>('SELECT COUNT(*) AS n FROM telemetry');
  run.counts.telemetry_stored = Number(telemetry?.n ?? 0);
  countTelemetry(run, agents);
  violations.push(...checkNoneLost(rows, observer.accepted));
  checked.add('none_lost');
  // The simulator saw what every agent started and ran: the states that promise "never ran" must be true.
  const notExecuted = await rawSql.query<{ id: string; device_id: string; state: string }>(
    `SELECT id, device_id, state FROM commands WHERE state IN (${commandNotExecutedStates.map((state) => `'${state}'`).join(', ')})`,
  );
  violations.push(...checkNotExecuted(notExecuted, parts.checkers.execution));
  checked.add('not_executed');
  const history = await rawSql.query<CommandEventRow>('SELECT command_id, state, at, detail_json FROM command_events ORDER BY id ASC');
  violations.push(...checkCommandHistories(history, new Map(rows.map((row) => [row.id, row.state]))));
  checked.add('legal_transitions');
  violations.push(...await checkAuditChain(auditEntries(new SqlAuditStore(rawSql))));
  checked.add('audit_chain');
  if (phases.livenessReached) {
    violations.push(...checkPresence(await presenceObservations(agents, parts.controlPlane.kv)));
    checked.add('presence');
  }
  if (parts.ota !== undefined) {
    const ota = await finalOtaChecks(run, parts.ota, parts.controlPlane, rawSql);
    for (const violation of ota.violations) run.trace.add('violation', `${violation.checker} ${violation.message}`);
    run.otaViolations.push(...ota.violations);
    for (const name of ota.checked) checked.add(name);
  }
  for (const violation of violations) run.trace.add('violation', `${violation.checker} ${violation.message}`);
  run.violations.push(...violations);
  return { checked, outcomesByCode };
}

/**
 * Telemetry frames and samples apart (issue 17, batches), and where the samples that were not
 * stored are: still buffered in the agents at the end, dropped past an agent's buffer bound,
 * gone with a crashed process's buffer. The rest of sent minus stored was lost on the way (a
 * lossy link, a refused frame, a bus outage).
 */
function countTelemetry(run: Run, agents: readonly SimAgent[]): void {
  Object.assign(run.counts, run.telemetry.counts());
  let buffered = 0;
  let dropped = 0;
  let lostInCrashes = 0;
  for (const agent of agents) {
    buffered += agent.telemetrySamplesBuffered;
    dropped += agent.telemetrySamplesDropped;
    lostInCrashes += agent.telemetrySamplesLostInCrashes;
  }
  run.counts.telemetry_samples_buffered_end = buffered;
  run.counts.telemetry_samples_dropped = dropped;
  run.counts.telemetry_samples_lost_in_crashes = lostInCrashes;
}

/** The OTA checkers over the rollout as the stores hold it and what the simulated devices did. */
async function finalOtaChecks(run: Run, ota: OtaSetup, controlPlane: ControlPlaneRun, rawSql: SqlJsDatabase): Promise<{ checked: OtaCheckerName[]; violations: OtaViolation[] }> {
  const cp = controlPlane.cp;
  const rollout = ota.rolloutId === undefined || cp === undefined ? undefined : await readRolloutFacts(cp, rawSql, ota.rolloutId);
  if (rollout !== undefined) {
    run.trace.add('ota.rollout', `${rollout.status} ${rollout.pauseReason ?? '-'} wave ${rollout.waveIndex} executions ${rollout.executions.length}`);
    run.counts.ota_executions = rollout.executions.length;
    run.counts.ota_succeeded = rollout.executions.filter((e) => e.state === 'succeeded').length;
    run.otaSummary = rolloutSummary(rollout, rollout.updatedAtMs === undefined ? null : rollout.updatedAtMs - simStartMs);
  }
  const records = [...ota.observer.records.values()];
  run.counts.ota_devices_bricked = records.filter((r) => r.brick !== null).length;
  run.counts.ota_devices_committed = records.filter((r) => r.committed).length;
  run.counts.ota_download_cuts = ota.observer.cuts;
  run.counts.ota_download_attempts = records.reduce((n, r) => n + r.attempts.length, 0);
  run.counts.ota_crashes = records.filter((r) => r.crash !== null).length;
  run.counts.ota_targets_route = records.filter((r) => r.targetsRoute && r.downloaded !== null).length;
  return checkOta(ota, run.scenario.ota!, rollout, run.agentCount, await readDeviceEnds(ota));
}

/**
 * The state at the end of the run, before teardown moves time on: the time series' last row,
 * and the summary's commandsByState, so the CSVs and summary.json tell the same totals.
 */
function finalSample(run: Run, parts: { agents: readonly SimAgent[]; observer: CommandObserver; phases: Phases }): SeriesSample {
  const sample: SeriesSample = { t_ms: run.time.nowMs() - simStartMs, online_agents: connectedCount(parts.agents), commands: { ...parts.observer.byState } };
  const series = parts.phases.series;
  if (series.at(-1)?.t_ms === sample.t_ms) series.pop();
  series.push(sample);
  return sample;
}

/** Stops loops that block on virtual timers by letting time run, then closes the stores. */
async function teardown(run: Run, parts: { stores: Stores; controlPlane: ControlPlaneRun; observer: CommandObserver; gateways: Gateways; agents: readonly SimAgent[] }): Promise<void> {
  const { time } = run;
  const { stores } = parts;
  const { cp, kv } = parts.controlPlane;
  parts.controlPlane.retired = true;
  for (const gateway of parts.gateways.byId.values()) gateway?.abort();
  const agentsStopped = Promise.all(parts.agents.map((agent) => agent.stop()));
  let cpStopped = false;
  const cpStopping = (cp?.stop() ?? Promise.resolve()).finally(() => { cpStopped = true; });
  for (let round = 0; round < teardownRoundsMax && !cpStopped; round += 1) await time.runUntil(time.nowMs() + 2_000, () => settle(run));
  await Promise.race([agentsStopped, drainMicrotasks()]);
  await Promise.race([cpStopping, drainMicrotasks()]);
  await Promise.allSettled([parts.observer.liveKv.close(), kv.close(), stores.rawBus.close(), stores.rawSql.close()]);
  await rm(stores.workDir, { recursive: true, force: true });
}

function summarize(
  run: Run,
  facts: { traceHash: string; virtualMs: number; checked: Set<Violation['checker'] | OtaCheckerName>; outcomesByCode: Record<string, number>; phases: Phases; observer: CommandObserver; network: SimNetwork; gateways: Gateways; final: SeriesSample },
): RunResult {
  const { violations, otaViolations, counts } = run;
  const failed = new Set<Violation['checker'] | OtaCheckerName>([...violations, ...otaViolations].map((v) => v.checker));
  // The OTA checkers appear only in runs with a rollout, so other runs' summaries are as before.
  const names = run.scenario.ota === undefined ? checkerNames : [...checkerNames, ...otaCheckerNames.filter((name) => facts.checked.has(name) || failed.has(name))];
  const checkers = Object.fromEntries(names.map((name) => [name, failed.has(name) ? 'fail' : facts.checked.has(name) ? 'pass' : 'not_reached'])) as RunResult['checkers'];
  return {
    seed: run.seed, scenario: run.scenario.name, reproduce: run.reproduce, traceHash: facts.traceHash, traceEvents: run.trace.events,
    agents: run.agentCount, gateways: facts.gateways.ids.length, safetyMs: run.safetyMs, livenessBoundMs: run.scenario.livenessBoundMs,
    convergedAfterMs: facts.phases.convergedAfterMs, virtualMs: facts.virtualMs, wallMs: Math.round(performance.now() - run.wallStartMs),
    ...(run.otaSummary === undefined ? {} : { ota: run.otaSummary }),
    peakRssBytes: run.peakRssBytes, counts, commandsByState: { ...facts.final.commands }, outcomesByCode: facts.outcomesByCode,
    network: { ...facts.network.stats }, checkers, violations, otaViolations, series: facts.phases.series,
    latencyHistogram: facts.observer.latency.map((count, i) => ({ le_ms: latencyBucketsMs[i] ?? null, count })),
    latencyMs: facts.observer.latencyRecorder.summary(), telemetryStorageDelayMs: run.telemetry.storageDelaySummary(), refusalsByCode: { ...run.refusalsByCode },
    recentTrace: run.trace.recent(), timing: facts.phases.timing,
  };
}

async function* auditEntries(auditStore: SqlAuditStore): AsyncIterable<unknown> {
  let from = 1;
  for (;;) {
    const batch = await auditStore.scan(from, 1_000);
    yield* batch;
    if (batch.length < 1_000) return;
    from = batch[batch.length - 1]!.seq + 1;
  }
}
