import { readdir, readFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { monitorEventLoopDelay, performance as perfHooks } from 'node:perf_hooks';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { ensureEnrolled, type AgentIdentity } from '../agent/enrollment.js';
import { runAgent, type RunningAgent } from '../agent/agent-runtime.js';
import { openSse } from '../runtime/sse-client.js';
import { startDeployment, type Deployment } from '../server/deployment/deployment.js';
import { initDeployment } from '../server/materials/materials.js';
import { SdcError } from '../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../core/protocol/command-machine.js';
import { httpsJson } from '../runtime/https-json.js';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';
import { summarizeLatencies, type LatencySummary } from './stats.js';
import { runWsEchoBaseline } from './ws-echo.js';

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
  };
  baseline: { samples: number; message_bytes: number; latency_ms: LatencySummary };
  real: {
    /**
     * `total` measured commands planned; `refused` creations the API answered with an error, by code;
     * `not_terminal` created but not terminal by the deadline; `not_sent` never sent (deadline reached first).
     */
    commands: { total: number; succeeded: number; refused: number; not_sent: number; refused_by_code: Record<string, number>; not_terminal: number; by_state: Partial<Record<CommandState, number>> };
    /** Created (`queued`) to terminal, from the command's state history (ms resolution). */
    server_ms: LatencySummary;
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
  commands_phase_load: { event_loop_utilization: number; event_loop_delay_ms: { p50: number; p99: number; max: number }; cpu_per_wall: number };
  duration_ms: number;
  ok: boolean;
}

export interface RoundtripBenchRun {
  summary: RoundtripSummary;
  /** Every measured sample, for histograms. */
  samplesMs: { baseline: number[]; server: number[]; client: number[] };
}

export const roundtripLimits = Object.freeze({ agentsMax: 5_000, commandsPerAgentMax: 1_000 });
const warmupRounds = 1;
/** Long enough that no telemetry sample competes with the commands during a run. */
const benchTelemetryIntervalMs = 3_600_000;
const onlinePollMs = 100;

export async function runRoundtripBench(options: RoundtripBenchOptions): Promise<RoundtripBenchRun> {
  const { agents: agentCount, commandsPerAgent } = options;
  if (!Number.isSafeInteger(agentCount) || agentCount < 1 || agentCount > roundtripLimits.agentsMax) {
    throw new SdcError('CLI_USAGE', `agents must be 1 to ${roundtripLimits.agentsMax}`);
  }
  if (!Number.isSafeInteger(commandsPerAgent) || commandsPerAgent < 1 || commandsPerAgent > roundtripLimits.commandsPerAgentMax) {
    throw new SdcError('CLI_USAGE', `commands per agent must be 1 to ${roundtripLimits.commandsPerAgentMax}`);
  }
  const progress = options.progress ?? (() => undefined);
  const logger = options.logger ?? pino({ level: 'silent' });
  const startedMs = performance.now();
  const deadlineMs = systemClock.nowMs() + options.timeoutMs;
  const concurrency = Math.max(1, options.enrollConcurrency ?? 16);
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'sdc-bench-roundtrip-')));
  const fdSampler = openFileSampler();
  const agents: RunningAgent[] = [];
  let deployment: Deployment | undefined;
  let live: LiveTracker | undefined;
  const phase = { at: performance.now() };
  const lap = () => {
    const now = performance.now();
    const elapsed = now - phase.at;
    phase.at = now;
    return Math.round(elapsed);
  };
  try {
    // 1. Deployment and an operator.
    const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
    deployment = await startDeployment({
      materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
      ...(options.redisUrl ? { redisUrl: options.redisUrl, keyPrefix: options.keyPrefix ?? `sdc-bench-${process.pid}-${Date.now()}:` } : {}),
      ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
      // A throwaway account: cheap password hashing keeps start-up short.
      scryptParams: { N: 2 ** 14, r: 8, p: 1 },
    });
    const { controlPlane, apiUrl } = deployment;
    if (controlPlane === undefined || apiUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'the bench needs a control plane');
    const caPem = materials.rootCaPem;
    const runTag = Buffer.from(systemRandom.bytes(3)).toString('hex');
    const adminName = `bench-admin-${runTag}`;
    const password = Buffer.from(systemRandom.bytes(18)).toString('base64url');
    await controlPlane.auth.users.add({ name: adminName, role: 'admin', password, nowMs: systemClock.nowMs() });
    const { token } = (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem, body: { name: adminName, password } })).body;
    const api = async <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>): Promise<T> =>
      (await httpsJson<T>({ method, url: new URL(path, apiUrl), caPem, token, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}), timeoutMs: 120_000 })).body;
    const phaseDeploymentMs = lap();
    progress(`deployment up: control plane ${apiUrl}, gateway ${deployment.gatewayUrl}`);

    // 2. Enrollment through the real HTTPS path, a few at a time.
    const deviceIds = Array.from({ length: agentCount }, (_, i) => `bench-${runTag}-${String(i + 1).padStart(5, '0')}`);
    const identities: AgentIdentity[] = [];
    let setupConflictRetries = 0;
    for (let i = 0; i < deviceIds.length; i += concurrency) {
      if (systemClock.nowMs() >= deadlineMs) break;
      identities.push(...await Promise.all(deviceIds.slice(i, i + concurrency).map((deviceId) => retryOnConflict(async () => {
        const { token: pairingToken } = await api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
        const dir = join(dataDir, 'agents', deviceId);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const { identity } = await ensureEnrolled({ dir, serverUrl: apiUrl, deviceId, pairingToken, caPem, random: systemRandom, clock: systemClock });
        return identity;
      }, () => { setupConflictRetries += 1; }))));
      progress(`enrolled ${identities.length}/${agentCount}`);
    }
    const phaseEnrollmentMs = lap();

    // 3. Baseline: the same TLS material, the same number of concurrent clients, nothing else running.
    const echoMessageBytes = options.echoMessageBytes ?? 512;
    const baseline = await runWsEchoBaseline({
      tls: {
        server: materials.serverTls, clientCaPem: caPem,
        clients: identities.map((identity) => ({ certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem })),
      },
      clients: Math.max(1, identities.length), roundsPerClient: commandsPerAgent, warmupRounds, messageBytes: echoMessageBytes,
      connectConcurrency: concurrency * 2, timeoutMs: Math.max(1_000, deadlineMs - systemClock.nowMs()), onConnected: fdSampler.sample,
    });
    const phaseBaselineMs = lap();
    progress(`baseline: ${baseline.samplesMs.length} echoes over ${baseline.clients} TLS WebSockets`);

    // 4. Agents, started a batch at a time; each batch is online before the next starts.
    for (let i = 0; i < identities.length; i += concurrency * 2) {
      const batch = await Promise.all(identities.slice(i, i + concurrency * 2).map((identity) => runAgent({
        dir: identity.paths.dir, kernel: 'mock', telemetryIntervalMs: benchTelemetryIntervalMs,
        clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: logger.child({ device: identity.deviceId }),
      })));
      agents.push(...batch);
      while (!batch.every((agent) => agent.core.isReady) && systemClock.nowMs() < deadlineMs) await sleep(onlinePollMs);
      progress(`agents ready ${agents.filter((a) => a.core.isReady).length}/${identities.length}`);
    }
    const enrolledIds = new Set(identities.map((identity) => identity.deviceId));
    const online = await waitForOnline(api, enrolledIds, deadlineMs);
    await fdSampler.sample();
    const phaseOnlineMs = lap();
    progress(`${online}/${agentCount} agents online`);

    // 5. Commands: M per agent one after another, all agents at once; terminal states through SSE.
    live = await LiveTracker.open({ apiUrl, token, caPem, api });
    const load = loadMonitor();
    const serverSamples: number[] = [];
    const clientSamples: number[] = [];
    const postSamples: number[] = [];
    const lagSamples: number[] = [];
    const refusedByCode: Record<string, number> = {};
    const ids: string[] = [];
    let terminalCount = 0;
    const measuredTotal = identities.length * commandsPerAgent;
    await Promise.all(identities.map(async ({ deviceId }) => {
      for (let round = 0; round < warmupRounds + commandsPerAgent; round += 1) {
        if (systemClock.nowMs() >= deadlineMs) return;
        const sentMs = performance.now();
        let command: { id: string };
        try {
          command = await api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {} },
            { 'idempotency-key': `bench-${runTag}-${deviceId}-${round}` });
        } catch (error) {
          // A refused creation is a result, not a reason to stop: counted by code, the agent moves on.
          const code = SdcError.is(error) ? String(error.details?.serverCode ?? error.code) : 'UNKNOWN';
          if (round >= warmupRounds) refusedByCode[code] = (refusedByCode[code] ?? 0) + 1;
          continue;
        }
        const postedMs = performance.now();
        const seen = await live!.waitTerminal(command.id, deadlineMs);
        if (round < warmupRounds) continue;
        postSamples.push(postedMs - sentMs);
        ids.push(command.id);
        if (seen !== undefined) {
          terminalCount += 1;
          if (seen.atMs !== undefined) clientSamples.push(seen.atMs - sentMs);
          if (seen.lagMs !== undefined) lagSamples.push(seen.lagMs);
        }
        if (terminalCount % 100 === 0) progress(`commands ${terminalCount}/${measuredTotal} terminal`);
      }
    }));
    await fdSampler.sample();
    const phaseCommandsMs = lap();
    const commandsPhaseLoad = load.stop();
    progress(`commands ${terminalCount}/${measuredTotal} terminal`);

    // 6. The server's own record of each measured command.
    const byState: Partial<Record<CommandState, number>> = {};
    for (let i = 0; i < ids.length; i += 64) {
      const records = await Promise.all(ids.slice(i, i + 64).map((id) => api<CommandRecord>('GET', `/v1/commands/${id}`)));
      for (const record of records) {
        byState[record.state] = (byState[record.state] ?? 0) + 1;
        const first = record.history[0];
        const last = record.history.at(-1);
        if (commandTerminalStates.includes(record.state) && first !== undefined && last !== undefined) serverSamples.push(last.at_ms - first.at_ms);
      }
    }
    const refused = Object.values(refusedByCode).reduce((sum, n) => sum + n, 0);
    const notTerminal = ids.length - serverSamples.length;
    const baselineSummary = summarizeLatencies(baseline.samplesMs);
    const serverSummary = summarizeLatencies(serverSamples);
    const clientSummary = summarizeLatencies(clientSamples);
    const summary: RoundtripSummary = {
      benchmark: 'roundtrip',
      agents: { requested: agentCount, enrolled: identities.length, online },
      commands_per_agent: commandsPerAgent,
      warmup_rounds: warmupRounds,
      environment: {
        node: process.version, openssl: process.versions.openssl, cpu: cpus()[0]?.model ?? 'unknown', cpu_count: cpus().length,
        open_files_limit: await openFilesLimit(), open_files_peak: fdSampler.peak(),
        stores: { sql: options.mysqlUrl ? 'mysql' : 'sql.js', bus_kv: options.redisUrl ? 'redis' : 'embedded' },
      },
      baseline: { samples: baseline.samplesMs.length, message_bytes: echoMessageBytes, latency_ms: baselineSummary },
      real: {
        commands: { total: measuredTotal, succeeded: byState.succeeded ?? 0, refused, not_sent: measuredTotal - refused - ids.length, refused_by_code: refusedByCode, not_terminal: notTerminal, by_state: byState },
        server_ms: serverSummary, client_ms: clientSummary, api_post_ms: summarizeLatencies(postSamples),
        live_lag_ms: summarizeLatencies(lagSamples), live_stream_reconnects: live.reconnects,
      },
      ratios: { server: ratiosOf(serverSummary, baselineSummary), client: ratiosOf(clientSummary, baselineSummary) },
      setup_conflict_retries: setupConflictRetries,
      phases_ms: { deployment: phaseDeploymentMs, enrollment: phaseEnrollmentMs, baseline: phaseBaselineMs, agents_online: phaseOnlineMs, commands: phaseCommandsMs },
      commands_phase_load: commandsPhaseLoad,
      duration_ms: Math.round(performance.now() - startedMs),
      ok: false,
    };
    summary.ok = online === agentCount && notTerminal === 0 && summary.real.commands.succeeded === measuredTotal;
    return { summary, samplesMs: { baseline: baseline.samplesMs, server: serverSamples, client: clientSamples } };
  } finally {
    live?.close();
    // Agents stop in batches: each stop is a close handshake with the gateway.
    for (let i = 0; i < agents.length; i += 100) await Promise.allSettled(agents.slice(i, i + 100).map((agent) => agent.stop()));
    await deployment?.stop();
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

interface CommandRecord {
  id: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number }>;
}

function ratiosOf(real: LatencySummary, baseline: LatencySummary): PercentileRatios {
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10) / 10 : 0);
  return { p50: ratio(real.p50, baseline.p50), p90: ratio(real.p90, baseline.p90), p99: ratio(real.p99, baseline.p99), max: ratio(real.max, baseline.max) };
}

const setupAttemptsMax = 5;

/**
 * Set-up (not measured) retries a step the server refused with a *_CONFLICT code: concurrent
 * writers on a real database can lose a race the server does not retry itself. Each retry is counted.
 */
async function retryOnConflict<T>(step: () => Promise<T>, onRetry: () => void): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      const serverCode = SdcError.is(error) ? error.details?.serverCode : undefined;
      if (attempt >= setupAttemptsMax || typeof serverCode !== 'string' || !serverCode.endsWith('_CONFLICT')) throw error;
      onRetry();
      await sleep(50 * attempt);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => { systemScheduler.schedule(ms, resolve); });
}

/** Devices the control plane shows online, among ours; polls until all are or the deadline passes. */
async function waitForOnline(api: <T>(method: 'GET', path: string) => Promise<T>, ours: ReadonlySet<string>, deadlineMs: number): Promise<number> {
  for (;;) {
    let online = 0;
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const answer = await api<{ items: Array<{ id: string; online: boolean }>; next_cursor?: string | null }>(
        'GET', `/v1/devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      online += answer.items.filter((d) => d.online && ours.has(d.id)).length;
      if (!answer.next_cursor) break;
      cursor = answer.next_cursor;
    }
    if (online >= ours.size || systemClock.nowMs() >= deadlineMs) return online;
    await sleep(250);
  }
}

/** A terminal state as the tracker saw it: arrival time (performance.now) and lag when it came live. */
interface LiveSeen {
  state: CommandState;
  atMs?: number;
  lagMs?: number;
}

interface LiveTrackerOptions {
  apiUrl: string;
  token: string;
  caPem: string;
  api: <T>(method: 'GET', path: string) => Promise<T>;
}

/**
 * Terminal command states from the SSE live stream, with the local time each arrived. The hub
 * drops a client that falls behind; the tracker then reconnects and asks the API for the commands
 * it was waiting on (those get no client-observed time: their event was lost).
 */
class LiveTracker {
  readonly #seen = new Map<string, LiveSeen>();
  readonly #waiters = new Map<string, (seen: LiveSeen) => void>();
  #close: (() => void) | undefined;
  #closed = false;
  reconnects = 0;
  static readonly seenMax = 1_000_000;

  private readonly o: LiveTrackerOptions;

  private constructor(options: LiveTrackerOptions) {
    this.o = options;
  }

  static async open(o: LiveTrackerOptions): Promise<LiveTracker> {
    const tracker = new LiveTracker(o);
    await tracker.#connect();
    return tracker;
  }

  async #connect(): Promise<void> {
    const live = await openSse({
      url: new URL(`/v1/live?token=${encodeURIComponent(this.o.token)}`, this.o.apiUrl), caPem: this.o.caPem,
      onEvent: ({ event, data }) => {
        if (event !== 'command') return;
        const message = JSON.parse(data) as { command_id: string; state: CommandState; at_ms?: number };
        if (!commandTerminalStates.includes(message.state)) return;
        // The state's own time is the gateway's wall clock (same host): arrival minus it is the delivery lag.
        // It goes with its command, so only measured commands count (not the warm-up round's).
        const seen: LiveSeen = { state: message.state, atMs: performance.now(), ...(typeof message.at_ms === 'number' ? { lagMs: systemClock.nowMs() - message.at_ms } : {}) };
        const waiter = this.#waiters.get(message.command_id);
        if (waiter !== undefined) waiter(seen);
        else if (this.#seen.size < LiveTracker.seenMax) this.#seen.set(message.command_id, seen);
      },
      onEnd: () => {
        if (!this.#closed) void this.#reconnect();
      },
    });
    this.#close = live.close;
  }

  async #reconnect(): Promise<void> {
    this.reconnects += 1;
    for (let attempt = 0; attempt < 20 && !this.#closed; attempt += 1) {
      try {
        await this.#connect();
        break;
      } catch {
        await sleep(250);
      }
    }
    // Terminal events sent while we were away are lost: ask for the state of everything pending.
    for (const [id, waiter] of [...this.#waiters]) {
      const record = await this.o.api<CommandRecord>('GET', `/v1/commands/${id}`).catch(() => undefined);
      if (record !== undefined && commandTerminalStates.includes(record.state)) waiter({ state: record.state });
    }
  }

  /** Resolves with the terminal state (and arrival time when seen live), or undefined at the deadline. */
  waitTerminal(id: string, deadlineMs: number): Promise<LiveSeen | undefined> {
    const known = this.#seen.get(id);
    if (known !== undefined) {
      this.#seen.delete(id);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => {
      const timer = systemScheduler.schedule(Math.max(0, deadlineMs - systemClock.nowMs()), () => {
        this.#waiters.delete(id);
        resolve(undefined);
      });
      this.#waiters.set(id, (seen) => {
        systemScheduler.cancel(timer);
        this.#waiters.delete(id);
        resolve(seen);
      });
    });
  }

  close(): void {
    this.#closed = true;
    this.#close?.();
  }
}

/** Event-loop utilization, event-loop delay and CPU use from now until `stop`. */
function loadMonitor(): { stop(): RoundtripSummary['commands_phase_load'] } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu = perfHooks.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const startedMs = performance.now();
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  return {
    stop() {
      delay.disable();
      const wallMs = Math.max(1, performance.now() - startedMs);
      const used = process.cpuUsage(cpu);
      return {
        event_loop_utilization: Math.round(perfHooks.eventLoopUtilization(elu).utilization * 1000) / 1000,
        event_loop_delay_ms: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
        cpu_per_wall: Math.round(((used.user + used.system) / 1000 / wallMs) * 100) / 100,
      };
    },
  };
}

/** RLIMIT_NOFILE (soft) from /proc/self/limits (Node has no getrlimit); null where unknown or unlimited. */
export async function openFilesLimit(): Promise<number | null> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (match === null) return null;
    return match[1] === 'unlimited' ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/** Samples the open descriptor count (/proc/self/fd) when asked; keeps the peak. */
function openFileSampler(): { sample(): Promise<void>; peak(): number | null } {
  let peak: number | null = null;
  return {
    async sample() {
      const count = await readdir('/proc/self/fd').then((entries) => entries.length, () => null);
      if (count !== null) peak = Math.max(peak ?? 0, count);
    },
    peak() {
      return peak;
    },
  };
}
