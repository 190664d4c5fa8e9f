import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { runAgent, type KernelChoice, type RunningAgent } from '../../agent/agent-runtime.js';
import { summarizeLatencies, type LatencySummary } from '../../bench/stats.js';
import { startDeployment, type Deployment } from '../../server/deployment/deployment.js';
import { prepareDemoRepository, runDemoRollout, type DemoRolloutSummary } from './demo-rollout.js';
import { generatedRootKeyPassphrasePath, initDeployment } from '../../server/materials/materials.js';
import { SdcError } from '../../core/errors/index.js';
import { commandStates, commandTerminalStates, type CommandState } from '../../core/protocol/command-machine.js';
import type { Opcode } from '../../core/protocol/messages/opcodes.js';
import { httpsJson } from '../../runtime/https-json.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { openLiveStream } from '../../runtime/sse-client.js';

export interface DemoOptions {
  agents: number;
  /** Keep everything in this directory (default: a temporary one, removed afterwards). */
  dataDir?: string;
  redisUrl?: string;
  mysqlUrl?: string;
  /** Prefix for Redis keys when redisUrl is given, so a demo never mixes with another deployment. */
  keyPrefix?: string;
  telemetryIntervalMs: number;
  /** Kernel backend of every agent (default mock). */
  kernel?: KernelChoice;
  /** Bound on the whole run; commands still open then are reported as not terminal. */
  timeoutMs: number;
  progress: (line: string, final?: boolean) => void;
  logger?: Logger;
  /**
   * `sdc demo --viewer`: called with the summary while the deployment and the agents still run;
   * they are stopped when it returns.
   */
  keepRunning?: (live: DemoLiveAccess) => Promise<void>;
}

/** What a person needs to open the console on the running demo. */
export interface DemoLiveAccess {
  readonly summary: DemoSummary;
  readonly apiUrl: string;
  readonly rootCaPem: string;
  /** The serving CA a browser trusts to open the console (D/pki/serving-ca.pem), and its certificate. */
  readonly servingCaPath: string;
  readonly servingCaPem: string;
  readonly name: string;
  readonly password: string;
}

export interface DemoSummary {
  agents: number;
  agents_requested: number;
  commands: Record<CommandState, number> & { total: number; not_terminal: number };
  /** Every command's recorded states were queued, sent, ack_received, executing, then one terminal state, in time order. */
  commands_in_order: number;
  roundtrip_ms: LatencySummary;
  telemetry_stored: number;
  audit_verified: boolean;
  audit_entries: number;
  stores: { sql: 'sql.js' | 'mysql'; bus_kv: 'embedded' | 'redis' };
  /** The update rollout's outcome (docs/ota.md); null on MySQL, whose database outlives the demo and keeps an earlier run's TUF root. */
  rollout: DemoRolloutSummary | null;
  duration_ms: number;
  ok: boolean;
}

interface DemoStep {
  opcode: Opcode;
  version?: string;
}

/**
 * What every agent is sent, in this order: each opcode at least once, and two updates so that the
 * rollback has a previous version to return to.
 */
const demoSteps: readonly DemoStep[] = [
  { opcode: 'EXEC_PING_KERNEL' }, { opcode: 'EXEC_GET_STATUS' }, { opcode: 'EXEC_GET_PROCESS_LIST' }, { opcode: 'EXEC_LOCK_SCREEN' },
  { opcode: 'EXEC_STAGE_UPDATE', version: '1.0.1' }, { opcode: 'EXEC_COMMIT_UPDATE', version: '1.0.1' },
  { opcode: 'EXEC_STAGE_UPDATE', version: '1.0.2' }, { opcode: 'EXEC_COMMIT_UPDATE', version: '1.0.2' },
  { opcode: 'EXEC_ROLLBACK_UPDATE' },
];
const updateVersions = ['1.0.1', '1.0.2'] as const;
const artifactOf = (version: string): Buffer => Buffer.from(`sdc demo update ${version}\n`.repeat(64));
const agentStartConcurrency = 8;
const expectedPath: readonly CommandState[] = ['queued', 'sent', 'ack_received', 'executing'];

interface CommandRecord {
  id: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number }>;
}

/**
 * `sdc demo`: the whole system in one process on embedded stores (or real ones when asked) and
 * real loopback TLS sockets. Creates the CA, pairs N agents with mock kernels, streams telemetry,
 * sends every opcode to every agent through the REST API, waits for terminal states through the
 * live event stream, then checks the audit chain.
 */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const startedMs = systemClock.nowMs();
  const deadlineMs = startedMs + options.timeoutMs;
  const logger = options.logger ?? pino({ level: 'silent' });
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'sdc-demo-')));
  const agents: RunningAgent[] = [];
  let deployment: Deployment | undefined;
  let closeLive: (() => void) | undefined;
  try {
    options.progress(`data directory ${dataDir}`);
    const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
    // The demo's root key is encrypted like any other; its passphrase is random and demo-only (docs/deployment.md).
    options.progress(`root key encrypted; demo-only passphrase in ${generatedRootKeyPassphrasePath(dataDir)}`);
    // An image repository for the update rollout, as `sdc ota init` writes one (fresh databases only: see DemoSummary.rollout).
    const otaKeys = options.mysqlUrl ? undefined : await prepareDemoRepository(dataDir, systemClock);
    deployment = await startDeployment({
      materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
      ...(options.redisUrl ? { redisUrl: options.redisUrl, keyPrefix: options.keyPrefix ?? `sdc-demo-${process.pid}-${startedMs}:` } : {}),
      ...(options.mysqlUrl ? { mysqlUrl: options.mysqlUrl } : {}),
      // Throwaway demo accounts: cheaper password hashing keeps start-up short.
      scryptParams: { N: 2 ** 14, r: 8, p: 1 },
      gateway: { heartbeatIntervalMs: 5_000 },
    });
    const { controlPlane, apiUrl, gatewayUrl } = deployment;
    if (controlPlane === undefined || apiUrl === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'the demo needs a control plane');
    options.progress(`control plane ${apiUrl}, gateway ${gatewayUrl}`);
    const caPem = materials.rootCaPem;
    const api = <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>) =>
      httpsJson<T>({ method, url: new URL(path, apiUrl), caPem, token, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) }).then((a) => a.body);

    // A tag unique to this run keeps names apart when the SQL database outlives the demo (MySQL).
    const runTag = Buffer.from(systemRandom.bytes(3)).toString('hex');
    // An operator account, then a real login over HTTPS for its token.
    const adminName = `demo-admin-${runTag}`;
    const password = Buffer.from(systemRandom.bytes(18)).toString('base64url');
    await controlPlane.auth.users.add({ name: adminName, role: 'admin', password, nowMs: systemClock.nowMs() });
    let token: string | undefined;
    token = (await api<{ token: string }>('POST', '/v1/auth/login', { name: adminName, password })).token;

    // Live events first, so that no terminal state is missed.
    const terminal = new Map<string, CommandState>();
    const waiters = new Map<string, (state: CommandState) => void>();
    const live = await openLiveStream({
      apiUrl, caPem, token,
      onEvent: ({ event, data }) => {
        // The server lost changes (a store outage): the commands still waited for are read again.
        if (event === 'resync') {
          for (const id of [...waiters.keys()]) {
            void api<{ state: CommandState }>('GET', `/v1/commands/${id}`).then(({ state }) => {
              if (!commandTerminalStates.includes(state)) return;
              terminal.set(id, state);
              waiters.get(id)?.(state);
            }, () => undefined);
          }
          return;
        }
        if (event !== 'command') return;
        const message = JSON.parse(data) as { command_id: string; state: CommandState };
        if (!commandTerminalStates.includes(message.state)) return;
        terminal.set(message.command_id, message.state);
        waiters.get(message.command_id)?.(message.state);
      },
    });
    closeLive = live.close;

    // Pair and start the agents, a few at a time (each enrollment is a CSR and an issuance).
    const deviceIds = Array.from({ length: options.agents }, (_, i) => `demo-${runTag}-${String(i + 1).padStart(4, '0')}`);
    for (let i = 0; i < deviceIds.length; i += agentStartConcurrency) {
      const batch = deviceIds.slice(i, i + agentStartConcurrency);
      agents.push(...await Promise.all(batch.map(async (deviceId) => {
        const { token: pairingToken } = await api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
        const dir = join(dataDir, 'agents', deviceId);
        await mkdir(join(dir, 'updates'), { recursive: true, mode: 0o700 });
        for (const version of updateVersions) await writeFile(join(dir, 'updates', `${version}.bin`), artifactOf(version));
        return runAgent({
          dir, serverUrl: apiUrl, deviceId, pairingToken, caPem, kernel: options.kernel ?? 'mock', telemetryIntervalMs: options.telemetryIntervalMs,
          // The demo's mock stands for a desktop with a session to lock, so EXEC_LOCK_SCREEN succeeds there (the agent's mock says NOT_SUPPORTED unless asked).
          mockLockScreen: true,
          clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: logger.child({ device: deviceId }),
        });
      })));
      options.progress(`paired ${agents.length}/${deviceIds.length} agents`);
    }

    const online = await waitForOnline(api, new Set(deviceIds), deadlineMs, options.progress);
    options.progress(`${online}/${deviceIds.length} agents online`, true);

    // Every opcode to every agent, in sequence per agent, agents in parallel.
    const ids: string[] = [];
    let done = 0;
    const total = deviceIds.length * demoSteps.length;
    const argsFor = ({ opcode, version }: DemoStep): Record<string, unknown> => {
      if (opcode === 'EXEC_GET_PROCESS_LIST') return { limit: 20 };
      if (opcode === 'EXEC_STAGE_UPDATE' && version) {
        const artifact = artifactOf(version);
        return { version, sha256: createHash('sha256').update(artifact).digest('hex'), size_bytes: artifact.length };
      }
      if (opcode === 'EXEC_COMMIT_UPDATE' && version) return { version };
      return {};
    };
    const waitTerminal = (id: string): Promise<CommandState | undefined> => new Promise((resolve) => {
      const known = terminal.get(id);
      if (known !== undefined) return resolve(known);
      const timer = systemScheduler.schedule(Math.max(0, deadlineMs - systemClock.nowMs()), () => { waiters.delete(id); resolve(undefined); });
      waiters.set(id, (state) => { systemScheduler.cancel(timer); waiters.delete(id); resolve(state); });
    });
    await Promise.all(deviceIds.map(async (deviceId) => {
      for (const [index, step] of demoSteps.entries()) {
        if (systemClock.nowMs() >= deadlineMs) return;
        const command = await api<{ id: string }>('POST', '/v1/commands', { device_id: deviceId, opcode: step.opcode, args: argsFor(step) },
          { 'idempotency-key': `demo-${deviceId}-${index}` });
        ids.push(command.id);
        await waitTerminal(command.id);
        done += 1;
        options.progress(`commands ${done}/${total} terminal`);
      }
    }));
    options.progress(`commands ${done}/${total} terminal`, true);

    // An update rollout of a signed release to every agent: a canary wave, then the rest.
    let rollout: DemoRolloutSummary | null = null;
    if (otaKeys !== undefined && controlPlane.ota !== undefined && online > 0) {
      rollout = await runDemoRollout({
        ota: controlPlane.ota, keys: otaKeys, runTag, deviceIds, deadlineMs, clock: systemClock, api: (method, path, body) => api(method, path, body),
        sleep: (ms) => new Promise((resolve) => { systemScheduler.schedule(ms, () => resolve(undefined)); }),
      });
      options.progress(`update rollout ${rollout.status}: ${rollout.succeeded}/${rollout.devices} devices updated`, true);
    }

    // Read every command back through the API: final state, history order, round trip.
    const records = await Promise.all(ids.map((id) => api<CommandRecord>('GET', `/v1/commands/${id}`)));
    const counts = Object.fromEntries(commandStates.map((s) => [s, 0])) as Record<CommandState, number>;
    const roundtrips: number[] = [];
    let inOrder = 0;
    for (const record of records) {
      counts[record.state] += 1;
      const states = record.history.map((h) => h.state);
      const times = record.history.map((h) => h.at_ms);
      const isTerminal = commandTerminalStates.includes(record.state);
      if (isTerminal && states.length === expectedPath.length + 1 && expectedPath.every((s, i) => states[i] === s)
        && times.every((t, i) => i === 0 || t >= times[i - 1]!)) inOrder += 1;
      if (isTerminal && record.history.length > 0) roundtrips.push(record.history.at(-1)!.at_ms - record.history[0]!.at_ms);
    }
    const notTerminal = records.filter((r) => !commandTerminalStates.includes(r.state)).length + (total - records.length);
    const telemetryRows = await deployment.stores.sql!.query<{ n: number | string }>(
      `SELECT COUNT(*) AS n FROM telemetry WHERE device_id IN (${deviceIds.map(() => '?').join(',')})`, deviceIds);
    const audit = await api<{ ok: boolean; count?: number }>('GET', '/v1/audit/verify');
    const summary: DemoSummary = {
      agents: online,
      agents_requested: options.agents,
      commands: { ...counts, total, not_terminal: notTerminal },
      commands_in_order: inOrder,
      roundtrip_ms: summarizeLatencies(roundtrips),
      telemetry_stored: Number(telemetryRows[0]?.n ?? 0),
      audit_verified: audit.ok === true,
      audit_entries: audit.count ?? 0,
      stores: { sql: options.mysqlUrl ? 'mysql' : 'sql.js', bus_kv: options.redisUrl ? 'redis' : 'embedded' },
      rollout,
      duration_ms: systemClock.nowMs() - startedMs,
      ok: false,
    };
    summary.ok = notTerminal === 0 && summary.audit_verified && online === options.agents && (rollout === null || rollout.status === 'completed');
    const browserTls = materials.browserTls;
    if (options.keepRunning !== undefined && browserTls === undefined) throw new SdcError('TRUST_PKI_MISSING', `${dataDir} has no serving CA for browsers: run sdc pki serving-ca --dir ${dataDir}`);
    if (browserTls !== undefined) await options.keepRunning?.({ summary, apiUrl, rootCaPem: caPem, servingCaPath: browserTls.servingCaPath, servingCaPem: browserTls.servingCaPem, name: adminName, password });
    return summary;
  } finally {
    closeLive?.();
    await Promise.allSettled(agents.map((agent) => agent.stop()));
    await deployment?.stop();
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

async function waitForOnline(
  api: <T>(method: 'GET', path: string) => Promise<T>, ours: ReadonlySet<string>, deadlineMs: number, progress: DemoOptions['progress'],
): Promise<number> {
  const wanted = ours.size;
  for (;;) {
    let online = 0;
    let cursor: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const answer = await api<{ items: Array<{ id: string; online: boolean }>; next_cursor?: string | null }>('GET', `/v1/devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      online += answer.items.filter((d) => d.online && ours.has(d.id)).length;
      if (!answer.next_cursor) break;
      cursor = answer.next_cursor;
    }
    progress(`${online}/${wanted} agents online`);
    if (online >= wanted || systemClock.nowMs() >= deadlineMs) return online;
    await new Promise((resolve) => systemScheduler.schedule(250, () => resolve(undefined)));
  }
}
