import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEnrolled } from '../../agent/enrollment.js';
import { openSse } from '../../runtime/sse-client.js';
import { SdcError } from '../../core/errors/index.js';
import { commandNotExecutedStates, commandStates, commandTerminalStates, type CommandState } from '../../core/protocol/command-machine.js';
import { httpsJson } from '../../runtime/https-json.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { checkCommandHistories, checkNoneLost, checkPresence, type CommandEventRow } from '../checkers.js';
import { SeededRandom } from '../../core/random/prng.js';
import { commandMeanGapMs, opcodePicker, type Scenario } from '../scenario.js';
import type { WorkerAgentSpec } from './messages.js';
import { WorkerPool } from './worker-pool.js';

/**
 * `sdc sim --real URL`: the simulator's agents (the real agent core with the in-memory journal,
 * synthetic telemetry and the mock kernel) over real WebSocket/TLS against a running `sdc serve`,
 * spread over child processes. Time is the wall clock, so a run is not reproducible; the seed
 * still fixes the fleet (per-agent PRNGs, start spread, clock skew), the command targets, mix and
 * gaps. Only the scenario's fleet, telemetry interval, command rate/mix/TTL, kernel errors and
 * clock skew apply: link and store faults need the in-process world.
 */
export interface RealRunOptions {
  /** Control plane base URL, https://HOST:PORT. */
  readonly url: string;
  /** The deployment's root CA (PEM): trusted for HTTPS and, through enrollment, for the gateways. */
  readonly caPem: string;
  readonly admin: string;
  readonly password: string;
  readonly scenario: Scenario;
  readonly scenarioRef: string;
  readonly seed: number;
  /** Overrides scenario.agents. */
  readonly agents?: number;
  /** Wall ms during which commands are sent (default scenario.safetyMs). */
  readonly durationMs?: number;
  /** Worker processes (default ceil(N / 2000)). */
  readonly processes?: number;
  /** Keep the agents' enrollment directories under DIR/agents (default: a temporary directory, removed). */
  readonly outDir?: string;
  /** Enrollments in flight at once (default 8). */
  readonly pairConcurrency?: number;
  /** Wall ms allowed for every agent to come online (default 30 s + 20 ms per agent). */
  readonly onlineTimeoutMs?: number;
  readonly onProgress?: (line: string) => void;
}

export type RealCheckerName = 'none_lost' | 'at_most_once' | 'ran_once' | 'not_executed' | 'legal_transitions' | 'audit_chain' | 'presence' | 'liveness';

export interface RealViolation {
  readonly checker: RealCheckerName;
  readonly message: string;
}

export interface RealSeriesSample {
  readonly t_ms: number;
  readonly online_agents: number;
  readonly commands: Readonly<Record<CommandState, number>>;
}

export interface RealRunResult {
  readonly mode: 'real';
  readonly url: string;
  readonly seed: number;
  readonly scenario: string;
  /** Not a reproduction (wall time): the same fleet, mix and command timing choices against the same URL. */
  readonly rerun: string;
  readonly agents: number;
  readonly processes: number;
  readonly durationMs: number;
  /** The scenario's liveness bound: wall ms allowed after the last command for every command to finish. */
  readonly drainBoundMs: number;
  readonly drainedAfterMs: number | null;
  readonly pairingMs: number;
  readonly onlineAfterMs: number;
  readonly wallMs: number;
  readonly counts: Readonly<Record<string, number>>;
  /** Agents with a ready session (workers) and devices the control plane shows online, at the end. */
  readonly online: { readonly agents: number; readonly controlPlane: number };
  readonly commandsByState: Readonly<Record<CommandState, number>>;
  readonly checkers: Readonly<Record<RealCheckerName, 'pass' | 'fail' | 'not_reached'>>;
  readonly violations: readonly RealViolation[];
  readonly series: readonly RealSeriesSample[];
  /** Round trip from creation to the device's result (succeeded, failed, rejected), from each command's history. */
  readonly latencyHistogram: ReadonlyArray<{ readonly le_ms: number | null; readonly count: number }>;
}

/** The buckets of sim/run.ts, so virtual and real histograms compare. */
const latencyBucketsMs = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];
const checkerNames: readonly RealCheckerName[] = ['none_lost', 'at_most_once', 'ran_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'liveness'];
const agentsPerProcessDefault = 2_000;
/** Each agent is one socket; a process may hold 20,000 open files here, so stay well below. */
const agentsPerProcessMax = 10_000;
const commandPostsInFlightMax = 64;
const commandsMax = 1_000_000;
const readBackConcurrency = 16;
const violationsKeptMax = 50;
const tokenRefreshMs = 10 * 60_000;
const rampMsMax = 20_000;
const presenceAttemptsMax = 5;
const deviceResultStates: readonly CommandState[] = ['succeeded', 'failed', 'rejected'];

const sleep = (ms: number) => new Promise<void>((resolve) => systemScheduler.schedule(ms, () => resolve()));

function emptyStates(): Record<CommandState, number> {
  return Object.fromEntries(commandStates.map((s) => [s, 0])) as Record<CommandState, number>;
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function forEachBounded<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  }));
}

interface CommandRecord {
  id: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number; detail?: unknown }>;
}

export async function runRealSimulation(options: RealRunOptions): Promise<RealRunResult> {
  const wallStart = systemClock.nowMs();
  const { scenario, seed } = options;
  const agentCount = options.agents ?? scenario.agents;
  const durationMs = options.durationMs ?? scenario.safetyMs;
  const processes = options.processes ?? Math.ceil(agentCount / agentsPerProcessDefault);
  if (!Number.isSafeInteger(processes) || processes < 1 || processes > agentCount || Math.ceil(agentCount / processes) > agentsPerProcessMax) {
    throw new SdcError('CLI_USAGE', `--processes must be from ${Math.ceil(agentCount / agentsPerProcessMax)} to ${agentCount} for ${agentCount} agents (at most ${agentsPerProcessMax} agents per process)`);
  }
  const progress = options.onProgress ?? (() => {});
  const root = new SeededRandom(seed);
  // One fork per concern, in a fixed order, as in sim/run.ts.
  const rng = { agents: root.fork(), commands: root.fork() };
  const violations: RealViolation[] = [];
  const violate = (checker: RealCheckerName, message: string) => { if (violations.length < violationsKeptMax) violations.push({ checker, message }); };
  const counts: Record<string, number> = { commands_accepted: 0, commands_refused: 0, commands_skipped: 0 };

  const apiUrl = new URL(options.url);
  let token = '';
  let tokenAtMs = 0;
  const login = async () => {
    try {
      token = (await httpsJson<{ token: string }>({ method: 'POST', url: new URL('/v1/auth/login', apiUrl), caPem: options.caPem, body: { name: options.admin, password: options.password } })).body.token;
      tokenAtMs = systemClock.nowMs();
    } catch (error) {
      throw new SdcError('SIM_REAL_SETUP_FAILED', `login as ${options.admin} at ${apiUrl.origin} failed: ${(error as Error).message}`, {}, { cause: error });
    }
  };
  const api = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    // Operator tokens live 15 minutes by default; a long run logs in again.
    if (systemClock.nowMs() - tokenAtMs > tokenRefreshMs) await login();
    return (await httpsJson<T>({ method, url: new URL(path, apiUrl), caPem: options.caPem, token, ...(body === undefined ? {} : { body }) })).body;
  };
  await login();
  progress(`logged in as ${options.admin} at ${apiUrl.origin}`);

  // Live states first, so that no change is missed. Keyed by id before the POST answers, so bounded.
  const liveStates = new Map<string, CommandState>();
  let liveEnded = false;
  const live = await openSse({
    url: new URL(`/v1/live?token=${encodeURIComponent(token)}`, apiUrl), caPem: options.caPem,
    onEvent: ({ event, data }) => {
      if (event !== 'command') return;
      const message = JSON.parse(data) as { command_id?: string; state?: CommandState };
      if (typeof message.command_id !== 'string' || message.state === undefined) return;
      if (!liveStates.has(message.command_id) && liveStates.size >= commandsMax) return;
      liveStates.set(message.command_id, message.state);
    },
    onEnd: () => { liveEnded = true; },
  });

  const workDir = options.outDir === undefined ? await mkdtemp(join(tmpdir(), 'sdc-sim-real-')) : options.outDir;
  let pool: WorkerPool | undefined;
  try {
    // --- the fleet, from the seed -----------------------------------------------------------------
    // The run tag keeps device ids apart from earlier runs against the same deployment.
    const runTag = Buffer.from(systemRandom.bytes(3)).toString('hex');
    const rampMs = Math.min(rampMsMax, Math.max(1_000, agentCount * 5));
    const skewMax = scenario.faults.clockSkewMsMax ?? 0;
    const agents: WorkerAgentSpec[] = Array.from({ length: agentCount }, (_, i) => {
      const random = rng.agents.fork();
      const deviceId = `simr-${seed}-${runTag}-${String(i + 1).padStart(5, '0')}`;
      return {
        deviceId, dir: join(workDir, 'agents', deviceId), seed: random.seed,
        clockSkewMs: skewMax === 0 ? 0 : random.intBetween(-skewMax, skewMax), startDelayMs: random.intBelow(rampMs),
      };
    });
    const deviceIds = agents.map((a) => a.deviceId);

    // --- pairing: a one-time token through the API, then the agent's own enrollment ----------------
    let paired = 0;
    await forEachBounded(agents, options.pairConcurrency ?? 8, async (agent) => {
      try {
        const { token: pairingToken } = await api<{ token: string }>('POST', `/v1/devices/${encodeURIComponent(agent.deviceId)}/pairing-tokens`, {});
        await mkdir(agent.dir, { recursive: true, mode: 0o700 });
        await ensureEnrolled({ dir: agent.dir, serverUrl: apiUrl.origin, deviceId: agent.deviceId, pairingToken, caPem: options.caPem, random: systemRandom, clock: systemClock });
      } catch (error) {
        throw new SdcError('SIM_REAL_SETUP_FAILED', `pairing ${agent.deviceId} failed: ${(error as Error).message}`, {}, { cause: error });
      }
      paired += 1;
      if (paired % 50 === 0 || paired === agentCount) progress(`paired ${paired}/${agentCount}`);
    });
    const pairingMs = systemClock.nowMs() - wallStart;

    // --- workers ------------------------------------------------------------------------------------
    pool = new WorkerPool({ processes, onViolation: (message) => violate('at_most_once', message) });
    pool.start(agents, {
      telemetryIntervalMs: scenario.telemetryIntervalMs,
      ...(scenario.faults.kernelErrors ? { kernelErrors: scenario.faults.kernelErrors } : {}),
    });
    const onlineDeadlineMs = systemClock.nowMs() + (options.onlineTimeoutMs ?? 30_000 + 20 * agentCount);
    for (;;) {
      pool.assertHealthy();
      const { connected } = pool.totals();
      if (connected === agentCount) break;
      if (systemClock.nowMs() >= onlineDeadlineMs) throw new SdcError('SIM_REAL_SETUP_FAILED', `only ${connected}/${agentCount} agents came online`);
      await sleep(250);
    }
    const onlineAfterMs = systemClock.nowMs() - wallStart;
    progress(`${agentCount} agents online over ${processes} processes`);

    // --- commands at the scenario's rate, and the time series ----------------------------------------
    const accepted: string[] = [];
    const byStateNow = () => {
      const states = emptyStates();
      for (const id of accepted) states[liveStates.get(id) ?? 'queued'] += 1;
      return states;
    };
    const series: RealSeriesSample[] = [];
    const phaseStartMs = systemClock.nowMs();
    const sampleIntervalMs = Math.max(1_000, Math.ceil((durationMs + scenario.livenessBoundMs) / 200 / 1_000) * 1_000);
    let sampleTimer = systemScheduler.schedule(0, function sample() {
      series.push({ t_ms: systemClock.nowMs() - phaseStartMs, online_agents: pool!.totals().connected, commands: byStateNow() });
      sampleTimer = systemScheduler.schedule(sampleIntervalMs, sample);
    });
    const pickOpcode = opcodePicker(scenario.commands.mix, rng.commands);
    const phaseEndMs = phaseStartMs + durationMs;
    let inFlight = 0;
    const posts = new Set<Promise<void>>();
    const meanGapMs = commandMeanGapMs(scenario.commands, agentCount);
    if (meanGapMs > 0) {
      while (systemClock.nowMs() < phaseEndMs) {
        await sleep(rng.commands.intBetween(0, Math.max(1, Math.round(2 * meanGapMs))));
        if (systemClock.nowMs() >= phaseEndMs) break;
        pool.assertHealthy();
        // The draws happen whether or not the command can be sent, so a slow server does not shift the choices.
        const deviceId = rng.commands.pick(deviceIds);
        const opcode = pickOpcode();
        if (inFlight >= commandPostsInFlightMax || accepted.length >= commandsMax) {
          counts.commands_skipped! += 1;
          continue;
        }
        inFlight += 1;
        const post: Promise<void> = api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode, args: {}, ttl_ms: scenario.commands.ttlMs }).then((command) => {
          counts.commands_accepted! += 1;
          accepted.push(command.id);
        }, () => { counts.commands_refused! += 1; }).finally(() => {
          inFlight -= 1;
          posts.delete(post);
        });
        posts.add(post);
      }
    }
    await Promise.all([...posts]);
    progress(`${counts.commands_accepted} commands accepted; waiting for terminal states`);

    // --- drain: every accepted command terminal within the liveness bound ----------------------------
    const drainStartMs = systemClock.nowMs();
    const drainEndMs = drainStartMs + scenario.livenessBoundMs;
    let drainedAfterMs: number | null = null;
    const unfinished = () => accepted.filter((id) => !commandTerminalStates.includes(liveStates.get(id) ?? 'queued'));
    for (;;) {
      pool.assertHealthy();
      let open = unfinished();
      if (open.length > 0 && liveEnded) {
        // The live stream is gone (dropped as slow, or the server restarted): ask for a few directly.
        await forEachBounded(open.slice(0, 200), readBackConcurrency, async (id) => {
          liveStates.set(id, (await api<{ state: CommandState }>('GET', `/v1/commands/${id}`)).state);
        });
        open = unfinished();
      }
      if (open.length === 0) {
        drainedAfterMs = systemClock.nowMs() - drainStartMs;
        break;
      }
      if (systemClock.nowMs() >= drainEndMs) {
        violate('liveness', `${open.length} commands not terminal ${scenario.livenessBoundMs} ms after the last command (first: ${open[0]})`);
        break;
      }
      await sleep(250);
    }
    systemScheduler.cancel(sampleTimer);
    series.push({ t_ms: systemClock.nowMs() - phaseStartMs, online_agents: pool.totals().connected, commands: byStateNow() });

    // --- checks from outside ---------------------------------------------------------------------------
    const collection = await pool.collect();
    const records: CommandRecord[] = [];
    await forEachBounded(accepted, readBackConcurrency, async (id) => { records.push(await api<CommandRecord>('GET', `/v1/commands/${id}`)); });
    for (const v of checkNoneLost(records, new Set(accepted))) violate('none_lost', v.message);
    const rows: CommandEventRow[] = records.flatMap((r) => r.history.map((h) => ({
      command_id: r.id, state: h.state, at: h.at_ms, detail_json: h.detail === undefined ? null : JSON.stringify(h.detail),
    })));
    for (const v of checkCommandHistories(rows, new Map(records.map((r) => [r.id, r.state])))) violate('legal_transitions', v.message);
    const commandsByState = emptyStates();
    const latency = new Array<number>(latencyBucketsMs.length + 1).fill(0);
    for (const record of records) {
      commandsByState[record.state] += 1;
      const executions = collection.executions.get(record.id) ?? 0;
      if (executions > 1) violate('at_most_once', `command ${record.id} took effect ${executions} times`);
      // Every opcode is exactly one kernel call, so a success that never reached a kernel was not run by our agent.
      if ((record.state === 'succeeded' || record.state === 'succeeded_late') && executions !== 1) violate('ran_once', `command ${record.id} ${record.state} with ${executions} kernel executions`);
      if (commandNotExecutedStates.includes(record.state) && executions > 0) violate('not_executed', `command ${record.id} is ${record.state}, which guarantees it never ran, but took effect ${executions} times`);
      const first = record.history[0];
      const last = record.history.at(-1);
      if (deviceResultStates.includes(record.state) && first !== undefined && last !== undefined) {
        const rttMs = last.at_ms - first.at_ms;
        const bucket = latencyBucketsMs.findIndex((le) => rttMs <= le);
        latency[bucket === -1 ? latencyBucketsMs.length : bucket]! += 1;
      }
    }
    const audit = await api<{ ok: boolean; firstBrokenSeq?: number; reason?: string }>('GET', '/v1/audit/verify');
    if (audit.ok !== true) violate('audit_chain', `audit chain broken at seq ${String(audit.firstBrokenSeq)}: ${String(audit.reason)}`);

    // Presence: what the control plane shows against the sessions the workers hold. A session that
    // is reconnecting right now may disagree for a moment, so a few looks are allowed.
    const ours = new Set(deviceIds);
    let onlineAtControlPlane = 0;
    let presenceViolations: RealViolation[] = [];
    let connected = collection.connected;
    for (let attempt = 1; attempt <= presenceAttemptsMax; attempt += 1) {
      const online = new Set<string>();
      let cursor: string | null | undefined;
      for (let page = 0; page < 10_000; page += 1) {
        const answer = await api<{ items: Array<{ id: string; online: boolean }>; next_cursor?: string | null }>('GET', `/v1/devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        for (const d of answer.items) if (d.online && ours.has(d.id)) online.add(d.id);
        cursor = answer.next_cursor;
        if (!cursor) break;
      }
      onlineAtControlPlane = online.size;
      presenceViolations = checkPresence(deviceIds.map((id) => ({ deviceId: id, connected: connected.has(id), online: online.has(id) })))
        .map((v) => ({ checker: 'presence', message: v.message }));
      if (presenceViolations.length === 0 || attempt === presenceAttemptsMax) break;
      await sleep(1_000);
      connected = (await pool.collect()).connected;
    }
    for (const v of presenceViolations) violate(v.checker, v.message);

    const failed = new Set(violations.map((v) => v.checker));
    const checkers = Object.fromEntries(checkerNames.map((name) => [name, failed.has(name) ? 'fail' : 'pass'])) as RealRunResult['checkers'];
    const status = collection.status;
    return {
      mode: 'real', url: apiUrl.origin, seed, scenario: scenario.name,
      rerun: `sdc sim --real ${apiUrl.origin} --seed ${seed} --scenario ${options.scenarioRef} --agents ${agentCount} --duration ${durationMs}ms --processes ${processes}`,
      agents: agentCount, processes, durationMs, drainBoundMs: scenario.livenessBoundMs, drainedAfterMs, pairingMs, onlineAfterMs,
      wallMs: systemClock.nowMs() - wallStart,
      counts: {
        ...counts, executions: status.executions, rejections: status.rejections, kernel_calls: status.kernelCalls,
        sessions_ready: status.sessionsReady, sessions_closed: status.sessionsClosed,
      },
      online: { agents: connected.size, controlPlane: onlineAtControlPlane },
      commandsByState, checkers, violations, series,
      latencyHistogram: latency.map((count, i) => ({ le_ms: latencyBucketsMs[i] ?? null, count })),
    };
  } finally {
    live.close();
    await pool?.stop();
    if (options.outDir === undefined) await rm(workDir, { recursive: true, force: true });
  }
}
