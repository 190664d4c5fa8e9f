import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { AgentIdentity } from '../agent/enrollment.js';
import { SdcError } from '../core/errors/index.js';
import type { CommandState } from '../core/protocol/command-machine.js';
import { systemClock } from '../runtime/system.js';
import { auditWindowMsDeployment } from '../server/control-plane/audit-drain-soon.js';
import { loadMonitor, openFileSampler, openFilesLimit, type ProcessLoad } from './process-load.js';
import { pacedRatePerSMax } from './paced-schedule.js';
import { readServerRecords, runCommandRounds, type CommandRounds } from './roundtrip-commands.js';
import { startBenchDeployment, type BenchDeployment } from './roundtrip-deployment.js';
import { enrollAgents, waitForOnline } from './roundtrip-fleet.js';
import { startAgentProcesses } from './roundtrip-agent-processes.js';
import { roundtripLimits } from './roundtrip-limits.js';
import { LiveTracker } from './roundtrip-live.js';
import { checkLadderRates, runLadder, type LadderSummary } from './roundtrip-ladder.js';
import type { LatencySummary } from './stats.js';
import { hdrLatencyTableSummary } from './latency-hdr.js';
import { runWsEchoBaseline, type WsEchoResult } from './ws-echo.js';
import { timestampScrape } from './report-scrapes.js';
import { startMetricsSeries, type MetricsSeries } from './metrics-series.js';
import { writeReportFile } from './report.js';

export { openFilesLimit } from './process-load.js';
export { roundtripLimits } from './roundtrip-limits.js';

/**
 * `sdc bench roundtrip`: the command round trip with N connected agents, next to its floor.
 *
 * 1. A deployment (control plane + gateway, embedded stores unless Redis/MySQL are given) in a
 *    temporary directory; N agents enrolled through the real HTTPS enrollment, a few at a time.
 * 2. The baseline: a bare WebSocket echo over the same TLS setup (the deployment's server
 *    certificate, the agents' client certificates, TLS 1.3), N clients at once, each sending one
 *    small message at a time: what loopback TLS + WebSocket costs on this machine.
 * 3. The N agents run (agent/agent-runtime.ts, mock kernel, telemetry once an hour so it does not
 *    compete); each gets M EXEC_PING_KERNEL commands one after another through the HTTPS API, all
 *    agents at once. Each command is timed twice: from its `queued` to its terminal state in the
 *    control plane's state history (server), and from just before the POST to the terminal event
 *    on the SSE live stream (client: adds the API request and the live fan-out).
 * One warm-up round per client/agent precedes the measured ones in both.
 */

export interface RoundtripBenchOptions {
  agents: number;
  commandsPerAgent: number;
  /** Keep the deployment here (default: a temporary directory, removed afterwards). */
  dataDir?: string;
  redisUrl?: string;
  mysqlUrl?: string;
  keyPrefix?: string;
  /** Bound on the whole run; commands still open then count as not terminal. */
  timeoutMs: number;
  /** Enrollments (and agent starts) in flight at once: each is a CSR and an issuance. */
  enrollConcurrency?: number;
  /** Size of the baseline's echo message; a signed EXEC_PING_KERNEL frame is about this size. */
  echoMessageBytes?: number;
  progress?: (line: string) => void;
  logger?: Logger;
  /** Write a V8 CPU profile of this process (the services and the bench's client) over the commands phase here. */
  cpuProfilePath?: string;
  /** The services' /metrics every this many ms over the commands phase (bench/metrics-series.ts; 0: only at its start and end). */
  scrapeIntervalMs?: number;
  /** Scrapes kept in the series, at most (halved, the interval doubled, when reached). */
  scrapesMax?: number;
  /**
   * Open loop (`--rate`): the commands, and the baseline's echoes, at this many per second over the
   * fleet on a fixed schedule, each timed from its due time (bench/paced-schedule.ts). Absent: the
   * closed loop (each agent's next command on its last one's terminal event).
   */
  ratePerS?: number;
  /** The control plane's commandAuditWindowMs (default the deployment's, 50 ms; null: each command commit awaits its drain). */
  commandAuditWindowMs?: number | null;
  /**
   * After the commands phase, with the same agents: an idle measurement, then open-loop steps at
   * these rates (ascending), each stepMs long (bench/roundtrip-ladder.ts, `--ladder`): which rate the
   * services sustain with their event loop under eluMax. Absent: no ladder.
   */
  ladder?: { ratesPerS: readonly number[]; stepMs: number; idleMs: number; eluMax: number };
}

export interface PercentileRatios {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface RoundtripSummary {
  benchmark: 'roundtrip';
  agents: { requested: number; enrolled: number; online: number };
  commands_per_agent: number;
  /** Commands (and baseline echoes) per second on a fixed schedule, or null for the closed loop (absent before 4 December 2026: closed). */
  rate_per_s?: number | null;
  /** The control plane's commandAuditWindowMs in this run (null: each command commit awaited its drain). */
  command_audit_window_ms?: number | null;
  warmup_rounds: number;
  environment: {
    node: string;
    openssl: string;
    cpu: string;
    cpu_count: number;
    /** Soft RLIMIT_NOFILE of this process (from /proc/self/limits), null where unknown or unlimited. */
    open_files_limit: number | null;
    /** Most file descriptors seen open at once (sampled at phase ends), null where unknown. */
    open_files_peak: number | null;
    stores: { sql: 'sql.js' | 'mysql'; bus_kv: 'embedded' | 'redis' };
    /** The real stores' versions (`sdc bench roundtrip` asks them after the run), absent on embedded stores. */
    store_versions?: Record<string, string>;
  };
  baseline: { samples: number; message_bytes: number; latency_ms: LatencySummary };
  real: {
    /**
     * `total` measured commands planned; `refused` creations the API answered with an error, by code;
     * `not_terminal` created but not terminal by the deadline; `not_sent` never sent (deadline reached first);
     * `warmup_refused_by_code` the warm-up round's refused creations (not in `total`; absent from runs before 5 December 2026).
     */
    commands: { total: number; succeeded: number; refused: number; not_sent: number; refused_by_code: Record<string, number>; warmup_refused_by_code?: Record<string, number>; not_terminal: number; by_state: Partial<Record<CommandState, number>> };
    /** Created (`queued`) to terminal, from the command's state history (ms resolution). */
    server_ms: LatencySummary;
    /**
     * server_ms split by step of the command's history (`queued->sent`, `sent->ack_received`, ...; ms
     * resolution, so a step under 1 ms reads 0 or 1): which hop the server time goes to. Absent from runs
     * before 5 December 2026.
     */
    server_steps_ms?: Record<string, LatencySummary>;
    /** POST sent to terminal event received on the live stream. */
    client_ms: LatencySummary;
    /** The POST /v1/commands request alone (part of client_ms). */
    api_post_ms: LatencySummary;
    /**
     * Terminal state's recorded time (the gateway's, on receiving the result) to its arrival on the
     * live stream, for the measured commands whose event arrived live: the same commands as
     * client_ms, and the tail of each (wall-clock ms on both ends, so within 1 ms of it).
     */
    live_lag_ms: LatencySummary;
    live_stream_reconnects: number;
    /** The hub's `dropped` events by reason (slow_client, token_expired), and reconnects that gave up. */
    live_stream_drops: Record<string, number>;
    live_stream_reconnect_failures: number;
  };
  /** real / baseline, per percentile. */
  ratios: { server: PercentileRatios; client: PercentileRatios };
  /** Set-up steps (pairing, enrollment) retried after a *_CONFLICT refusal; not part of the measurement. */
  setup_conflict_retries: number;
  phases_ms: { deployment: number; enrollment: number; baseline: number; agents_online: number; commands: number };
  /**
   * How busy this one process (agents, gateway, control plane and bench) was during the commands
   * phase: event-loop utilization (1 = never idle), timer lateness (sampled every 10 ms, so about
   * 10 ms when idle), and CPU time (all threads) per wall-clock time. Near 1 and rising delay: the
   * latencies include waiting for the CPU.
   */
  commands_phase_load: ProcessLoad;
  /**
   * This process's CPU over the commands phase divided by the commands created in it (warm-up
   * included): what one command round trip costs the services (control plane, gateway, stores'
   * clients) plus the bench's own HTTP and SSE client. Robust on a busy machine, unlike latencies.
   */
  cpu_ms_per_command: number;
  /**
   * Round trips to MySQL (statements, BEGIN, COMMIT) over the commands phase divided by the
   * commands created in it, warm-up included (server/stores/sql/mysql-database.ts counts them);
   * null on the embedded SQL store.
   */
  sql_round_trips_per_command: number | null;
  /**
   * `--ladder`: the open-loop steps run after the commands phase (bench/roundtrip-ladder.ts), and the
   * highest rate sustained with the process's event-loop utilization under elu_max. Absent without
   * --ladder (and from runs before 6 December 2026). Not part of `ok`: a step that falls behind is a finding.
   */
  open_loop_ladder?: LadderSummary;
  duration_ms: number;
  ok: boolean;
}

export interface RoundtripBenchRun {
  summary: RoundtripSummary;
  /** Every measured sample, for histograms. */
  samplesMs: { baseline: number[]; server: number[]; client: number[] };
  /**
   * The services' /metrics (control plane and gateway, one registry) just before and just after
   * the commands phase, each sample stamped with its scrape time (ms): `metrics-start.prom` and
   * `metrics-end.prom` with --out, so the report draws rates over the phase, not totals.
   */
  metricsScrapes?: { readonly start: string; readonly end: string };
  /**
   * The same registry scraped every `scrapeIntervalMs` over the commands phase, the first and the
   * last scrape being the two above: `metrics-series.jsonl` with --out, so the report draws each
   * panel over time.
   */
  metricsSeries?: MetricsSeries;
}

const warmupRounds = 1;
const enrollConcurrencyDefault = 16;
/** A signed EXEC_PING_KERNEL frame is about this size. */
const echoMessageBytesDefault = 512;

/** What every step of one run shares: its limits, where it reports, and its clocks. */
interface RoundtripRun {
  readonly options: RoundtripBenchOptions;
  readonly progress: (line: string) => void;
  readonly logger: Logger;
  readonly startedMs: number;
  readonly deadlineMs: number;
  readonly concurrency: number;
  readonly fdSampler: ReturnType<typeof openFileSampler>;
}

/**
 * The steps, each owning what it starts and stopping it in reverse order: the data directory, the
 * deployment and its operator, enrollment, the baseline, the agents until online, the commands
 * under the live stream, the server's records, the summary.
 */
export async function runRoundtripBench(options: RoundtripBenchOptions): Promise<RoundtripBenchRun> {
  checkRoundtripOptions(options);
  const run: RoundtripRun = {
    options, progress: options.progress ?? (() => undefined), logger: options.logger ?? pino({ level: 'silent' }),
    startedMs: performance.now(), deadlineMs: systemClock.nowMs() + options.timeoutMs,
    concurrency: Math.max(1, options.enrollConcurrency ?? enrollConcurrencyDefault), fdSampler: openFileSampler(),
  };
  return withDataDir(options.dataDir, async (dataDir) => {
    const lap = phaseClock();
    const bench = await startBenchDeployment({
      dataDir, logger: run.logger, ...storeOptions(options),
      ...(options.commandAuditWindowMs === undefined ? {} : { commandAuditWindowMs: options.commandAuditWindowMs }),
    });
    try {
      const deploymentMs = lap();
      run.progress(`deployment up: control plane ${bench.apiUrl}, gateway ${bench.deployment.gatewayUrl}`);
      return await enrollAndMeasure(run, bench, dataDir, { lap, deploymentMs });
    } finally {
      await bench.stop();
    }
  });
}

/** Refuses, before starting anything, an agent or command count outside the limits (CLI_USAGE). */
function checkRoundtripOptions({ agents, commandsPerAgent, ratePerS, ladder }: RoundtripBenchOptions): void {
  const ladderProblem = ladder === undefined ? undefined : checkLadderRates(ladder.ratesPerS, ladder.stepMs);
  if (ladderProblem !== undefined) throw new SdcError('CLI_USAGE', `ladder: ${ladderProblem}`);
  if (ratePerS !== undefined && !(ratePerS > 0 && ratePerS <= pacedRatePerSMax)) {
    throw new SdcError('CLI_USAGE', `rate must be above 0 and at most ${pacedRatePerSMax} per second`);
  }
  if (!Number.isSafeInteger(agents) || agents < 1 || agents > roundtripLimits.agentsMax) {
    throw new SdcError('CLI_USAGE', `agents must be 1 to ${roundtripLimits.agentsMax}`);
  }
  if (!Number.isSafeInteger(commandsPerAgent) || commandsPerAgent < 1 || commandsPerAgent > roundtripLimits.commandsPerAgentMax) {
    throw new SdcError('CLI_USAGE', `commands per agent must be 1 to ${roundtripLimits.commandsPerAgentMax}`);
  }
}

function storeOptions(options: RoundtripBenchOptions): { redisUrl?: string; mysqlUrl?: string; keyPrefix?: string } {
  return {
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}), ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
    ...(options.keyPrefix ? { keyPrefix: options.keyPrefix } : {}),
  };
}

/** Step: the deployment's directory: `dataDir` when given (kept), else a temporary directory removed at the end. */
async function withDataDir<T>(dataDir: string | undefined, run: (dataDir: string) => Promise<T>): Promise<T> {
  const dir = dataDir ?? await mkdtemp(join(tmpdir(), 'sdc-bench-roundtrip-'));
  try {
    return await run(dir);
  } finally {
    if (dataDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** Whole ms since the previous call (or since it was made): each phase's wall time. */
function phaseClock(): () => number {
  let atMs = performance.now();
  return () => {
    const nowMs = performance.now();
    const elapsedMs = nowMs - atMs;
    atMs = nowMs;
    return Math.round(elapsedMs);
  };
}

interface Phases {
  readonly lap: () => number;
  readonly deploymentMs: number;
}

/** Steps: enroll, the baseline, then the agents (owned here) and the commands. */
async function enrollAndMeasure(run: RoundtripRun, bench: BenchDeployment, dataDir: string, phases: Phases): Promise<RoundtripBenchRun> {
  const { options, progress } = run;
  const deviceIds = Array.from({ length: options.agents }, (_, i) => `bench-${bench.runTag}-${String(i + 1).padStart(5, '0')}`);
  const enrolled = await enrollAgents({
    api: bench.api, apiUrl: bench.apiUrl, caPem: bench.caPem, dataDir, deviceIds, concurrency: run.concurrency, deadlineMs: run.deadlineMs, progress,
  });
  const enrollmentMs = phases.lap();
  const baseline = await measureBaseline(run, bench, enrolled.identities);
  const baselineMs = phases.lap();
  progress(`baseline: ${baseline.samplesMs.length} echoes over ${baseline.clients} TLS WebSockets`);
  // In child processes: this process runs the services alone, so its event-loop figures are theirs.
  const agents = await startAgentProcesses({ identities: enrolled.identities, batchSize: run.concurrency * 2, deadlineMs: run.deadlineMs, verbose: run.options.logger !== undefined, progress });
  try {
    const online = await waitForOnline(bench.api, new Set(enrolled.identities.map((identity) => identity.deviceId)), run.deadlineMs);
    await run.fdSampler.sample();
    const agentsOnlineMs = phases.lap();
    progress(`${online}/${options.agents} agents online`);
    const scrapes = await startMetricsSeries({
      scrape: () => bench.deployment.metrics.text(), nowMs: () => systemClock.nowMs(),
      ...(options.scrapeIntervalMs === undefined ? {} : { intervalMs: options.scrapeIntervalMs }), ...(options.scrapesMax === undefined ? {} : { scrapesMax: options.scrapesMax }),
    });
    const measured = await measureCommands(run, bench, enrolled.identities).catch(async (error: unknown) => { await scrapes.stop(); throw error; });
    const commandsMs = phases.lap();
    const series = await scrapes.stop();
    const records = await readServerRecords(bench.api, measured.rounds.ids);
    if (records.unread > 0) progress(`${records.unread} command records could not be read back (API unreachable); counted as not terminal`);
    const ladder = options.ladder === undefined ? undefined : await measureLadder(run, bench, enrolled.identities, options.ladder);
    const result = await summarize(run, {
      ...measured, ...records, baseline, online, identities: enrolled.identities, setupConflictRetries: enrolled.setupConflictRetries,
      phasesMs: { deployment: phases.deploymentMs, enrollment: enrollmentMs, baseline: baselineMs, agents_online: agentsOnlineMs, commands: commandsMs },
    });
    if (ladder !== undefined) result.summary.open_loop_ladder = ladder;
    if (series.failures > 0) progress(`/metrics: ${series.failures} of ${series.entries.length} scrapes failed (noted in metrics-series.jsonl)`);
    const pair = seriesEnds(series);
    return { ...result, metricsSeries: series, ...(pair === undefined ? {} : { metricsScrapes: pair }) };
  } finally {
    await agents.stop();
  }
}

/** The series' first and last scrapes as stamped `.prom` texts (as before the series), when both succeeded; a failing collector is not the bench's failure. */
function seriesEnds(series: MetricsSeries): { start: string; end: string } | undefined {
  const first = series.entries[0];
  const last = series.entries.at(-1);
  if (first?.text === undefined || last?.text === undefined || series.entries.length < 2) return undefined;
  return { start: timestampScrape(first.text, first.atMs), end: timestampScrape(last.text, last.atMs) };
}

/**
 * Step: the floor. A bare WebSocket echo over the same TLS material (the deployment's server
 * certificate, the agents' client certificates, TLS 1.3), as many clients at once as agents, each
 * sending one small message at a time, with nothing else running.
 */
function measureBaseline(run: RoundtripRun, bench: BenchDeployment, identities: readonly AgentIdentity[]): Promise<WsEchoResult> {
  return runWsEchoBaseline({
    tls: {
      server: bench.materials.serverTls, clientCaPem: bench.caPem,
      clients: identities.map((identity) => ({ certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem })),
    },
    clients: Math.max(1, identities.length), roundsPerClient: run.options.commandsPerAgent, warmupRounds,
    messageBytes: run.options.echoMessageBytes ?? echoMessageBytesDefault, connectConcurrency: run.concurrency * 2,
    timeoutMs: Math.max(1_000, run.deadlineMs - systemClock.nowMs()), onConnected: run.fdSampler.sample,
    ...(run.options.ratePerS === undefined ? {} : { ratePerS: run.options.ratePerS }),
  });
}

/** Step: the command rounds under the live stream (owned here) and the process load meanwhile. */
async function measureCommands(run: RoundtripRun, bench: BenchDeployment, identities: readonly AgentIdentity[]): Promise<{ rounds: CommandRounds; load: ProcessLoad; liveStream: LiveStreamFacts; sqlRoundTrips: number | null }> {
  const live = await LiveTracker.open({ apiUrl: bench.apiUrl, caPem: bench.caPem, api: bench.api, currentToken: bench.currentToken, renewToken: bench.renewToken });
  try {
    // Loaded only with --mysql: without it the bench does not load mysql2 at all.
    const mysql = run.options.mysqlUrl ? await import('../server/stores/sql/mysql-database.js') : undefined;
    const sqlCount = mysql?.mysqlRoundTrips;
    const sqlBefore = sqlCount?.();
    const stopTally = mysql?.startMysqlStatementTally();
    const profiler = run.options.cpuProfilePath === undefined ? undefined : await startCpuProfile();
    const monitor = loadMonitor();
    const connectionsBefore = bench.apiConnectionsOpened();
    const ed25519Before = bench.deployment.ed25519Counts();
    const rounds = await runCommandRounds({
      api: bench.api, live, identities, warmupRounds, commandsPerAgent: run.options.commandsPerAgent, runTag: bench.runTag, deadlineMs: run.deadlineMs, progress: run.progress,
      ...(run.options.ratePerS === undefined ? {} : { ratePerS: run.options.ratePerS }),
    });
    const load = monitor.stop();
    const sqlRoundTrips = sqlCount === undefined || sqlBefore === undefined ? null : sqlCount() - sqlBefore;
    // Each one a TLS handshake on both ends, in this process (issue 17: the API client's kept-alive pool).
    run.progress(`API connections opened in the commands phase: ${bench.apiConnectionsOpened() - connectionsBefore} for ${rounds.created} commands created`);
    if (stopTally !== undefined) reportStatementTally(run, stopTally(), rounds.created);
    reportEd25519(run, ed25519Before, bench.deployment.ed25519Counts(), rounds.created);
    if (profiler !== undefined && run.options.cpuProfilePath !== undefined) await profiler.stop(run.options.cpuProfilePath);
    await run.fdSampler.sample();
    run.progress(`commands ${rounds.terminalCount}/${identities.length * run.options.commandsPerAgent} terminal`);
    if (live.reconnects > 0) run.progress(`live stream: ${live.reconnects} reconnects (${live.reconnectFailures} gave up), drops ${JSON.stringify(live.dropsByReason)}`);
    return { rounds, load, liveStream: { reconnects: live.reconnects, drops: { ...live.dropsByReason }, reconnectFailures: live.reconnectFailures }, sqlRoundTrips };
  } finally {
    live.close();
  }
}

/** Step (`--ladder`): the open-loop steps under a live stream of their own, after the commands phase and its scrapes. */
async function measureLadder(run: RoundtripRun, bench: BenchDeployment, identities: readonly AgentIdentity[], ladder: NonNullable<RoundtripBenchOptions['ladder']>): Promise<LadderSummary> {
  const live = await LiveTracker.open({ apiUrl: bench.apiUrl, caPem: bench.caPem, api: bench.api, currentToken: bench.currentToken, renewToken: bench.renewToken });
  try {
    return await runLadder({
      api: bench.api, live, identities, runTag: bench.runTag, ...ladder, deadlineMs: run.deadlineMs, progress: run.progress,
      readRecords: (ids) => readServerRecords(bench.api, ids),
    });
  } finally {
    live.close();
  }
}

/** Statements whose share is printed (stderr progress), largest first. */
const statementTallyLinesMax = 30;

/** The commands phase's MySQL round trips by statement, per created command: where the per-command figure goes. */
function reportStatementTally(run: RoundtripRun, tally: ReadonlyMap<string, number>, created: number): void {
  if (created === 0) return;
  const lines = [...tally].sort((a, b) => b[1] - a[1]).slice(0, statementTallyLinesMax);
  run.progress(`SQL round trips per command by statement (${created} commands):\n${lines.map(([sql, n]) => `  ${(n / created).toFixed(2).padStart(6)}  ${sql}`).join('\n')}`);
}

type Ed25519Counts = ReturnType<BenchDeployment['deployment']['ed25519Counts']>;

/** The services' Ed25519 work per created command over the commands phase (decision 0014: the control plane's checks the gateway already made are cache hits). */
function reportEd25519(run: RoundtripRun, before: Ed25519Counts, after: Ed25519Counts, created: number): void {
  if (created === 0) return;
  const per = (n: number) => (n / created).toFixed(2);
  const gw = { verifies: after.gateway.verifies - before.gateway.verifies, hits: after.gateway.verifiedCacheHits - before.gateway.verifiedCacheHits, signs: after.gateway.signs - before.gateway.signs };
  const cp = after.controlPlane === undefined || before.controlPlane === undefined ? undefined
    : { verifies: after.controlPlane.verifies - before.controlPlane.verifies, hits: after.controlPlane.verifiedCacheHits - before.controlPlane.verifiedCacheHits, signs: after.controlPlane.signs - before.controlPlane.signs };
  run.progress(`Ed25519 per command: gateway ${per(gw.verifies)} verifies, ${per(gw.hits)} cache hits, ${per(gw.signs)} signs`
    + (cp === undefined ? '' : `; control plane ${per(cp.verifies)} verifies, ${per(cp.hits)} cache hits, ${per(cp.signs)} signs`));
}

interface LiveStreamFacts {
  readonly reconnects: number;
  readonly drops: Record<string, number>;
  readonly reconnectFailures: number;
}

interface Measurements {
  readonly identities: readonly AgentIdentity[];
  readonly setupConflictRetries: number;
  readonly baseline: WsEchoResult;
  readonly online: number;
  readonly rounds: CommandRounds;
  readonly load: ProcessLoad;
  readonly liveStream: LiveStreamFacts;
  readonly sqlRoundTrips: number | null;
  readonly byState: Partial<Record<CommandState, number>>;
  readonly serverSamples: number[];
  readonly stepSamples: Record<string, number[]>;
  readonly phasesMs: RoundtripSummary['phases_ms'];
}

/** Step: the summary, and whether the run is ok: every agent online, every measured command terminal and succeeded. */
async function summarize(run: RoundtripRun, m: Measurements): Promise<RoundtripBenchRun> {
  const { options } = run;
  const { rounds } = m;
  const measuredTotal = m.identities.length * options.commandsPerAgent;
  const refused = Object.values(rounds.refusedByCode).reduce((sum, n) => sum + n, 0);
  const notTerminal = rounds.ids.length - m.serverSamples.length;
  // HdrHistogram percentiles (bench/latency-hdr.ts), as every bench's latency table; the samples stay exact in roundtrip-samples.csv.
  const baselineSummary = hdrLatencyTableSummary(m.baseline.samplesMs);
  const serverSummary = hdrLatencyTableSummary(m.serverSamples);
  const clientSummary = hdrLatencyTableSummary(rounds.clientSamples);
  const succeeded = m.byState.succeeded ?? 0;
  const summary: RoundtripSummary = {
    benchmark: 'roundtrip',
    agents: { requested: options.agents, enrolled: m.identities.length, online: m.online },
    commands_per_agent: options.commandsPerAgent,
    rate_per_s: options.ratePerS ?? null,
    command_audit_window_ms: options.commandAuditWindowMs === undefined ? auditWindowMsDeployment : options.commandAuditWindowMs,
    warmup_rounds: warmupRounds,
    environment: await environmentOf(run),
    baseline: { samples: m.baseline.samplesMs.length, message_bytes: options.echoMessageBytes ?? echoMessageBytesDefault, latency_ms: baselineSummary },
    real: {
      commands: { total: measuredTotal, succeeded, refused, not_sent: measuredTotal - refused - rounds.ids.length, refused_by_code: rounds.refusedByCode, warmup_refused_by_code: rounds.warmupRefusedByCode, not_terminal: notTerminal, by_state: m.byState },
      server_ms: serverSummary,
      server_steps_ms: Object.fromEntries(Object.entries(m.stepSamples).map(([step, samples]) => [step, hdrLatencyTableSummary(samples)])),
      client_ms: clientSummary, api_post_ms: hdrLatencyTableSummary(rounds.postSamples),
      live_lag_ms: hdrLatencyTableSummary(rounds.lagSamples), live_stream_reconnects: m.liveStream.reconnects,
      live_stream_drops: m.liveStream.drops, live_stream_reconnect_failures: m.liveStream.reconnectFailures,
    },
    ratios: { server: ratiosOf(serverSummary, baselineSummary), client: ratiosOf(clientSummary, baselineSummary) },
    setup_conflict_retries: m.setupConflictRetries,
    phases_ms: m.phasesMs,
    commands_phase_load: m.load,
    cpu_ms_per_command: rounds.created > 0 ? Math.round((m.load.cpu_ms / rounds.created) * 100) / 100 : 0,
    sql_round_trips_per_command: m.sqlRoundTrips === null || rounds.created === 0 ? null : Math.round((m.sqlRoundTrips / rounds.created) * 10) / 10,
    duration_ms: Math.round(performance.now() - run.startedMs),
    ok: m.online === options.agents && notTerminal === 0 && succeeded === measuredTotal,
  };
  return { summary, samplesMs: { baseline: m.baseline.samplesMs, server: m.serverSamples, client: rounds.clientSamples } };
}

/** The inspector's sampling profiler on this thread, from now until `stop` writes the `.cpuprofile` (Chrome DevTools format). */
async function startCpuProfile(): Promise<{ stop(path: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 1 ms sampling (the default is 1 ms too, set so a reader knows the resolution of the figures).
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return {
    async stop(path) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      await writeReportFile(path, JSON.stringify(profile));
    },
  };
}

async function environmentOf(run: RoundtripRun): Promise<RoundtripSummary['environment']> {
  return {
    node: process.version, openssl: process.versions.openssl, cpu: cpus()[0]?.model ?? 'unknown', cpu_count: cpus().length,
    open_files_limit: await openFilesLimit(), open_files_peak: run.fdSampler.peak(),
    stores: { sql: run.options.mysqlUrl ? 'mysql' : 'sql.js', bus_kv: run.options.redisUrl ? 'redis' : 'embedded' },
  };
}

function ratiosOf(real: LatencySummary, baseline: LatencySummary): PercentileRatios {
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10) / 10 : 0);
  return { p50: ratio(real.p50, baseline.p50), p90: ratio(real.p90, baseline.p90), p99: ratio(real.p99, baseline.p99), max: ratio(real.max, baseline.max) };
}
