// Shared by the end-to-end tests (test/e2e/*.test.ts): a whole deployment on real loopback TLS
// sockets, an operator token, agents paired through the API, a log capture and polling helpers.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import { runAgent, type RunningAgent } from '../../../agent/agent-runtime.js';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import { createGatewayCore } from '../../../server/gateway/gateway-core.js';
import { startGatewayServer } from '../../../server/gateway/gateway-server.js';
import { startDeployment, type Deployment, type StartDeploymentOptions } from '../../../server/deployment/deployment.js';
import { initDeployment, type DeploymentMaterials } from '../../../server/materials/materials.js';
import { SdcError } from '../../../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../../../core/protocol/command-machine.js';
import type { Opcode } from '../../../core/protocol/messages/opcodes.js';
import { httpsJson } from '../../../runtime/https-json.js';
import { removeKeysWithPrefix } from '../../../server/stores/redis-prefix-cleanup.js';
import { testStoreNamespace } from '../../../server/stores/test-store-namespace.js';
import { mysql2PromiseLibrary } from '../../../server/stores/store-libraries.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';

/** Which store pair a deployment runs on. The real pair only when both URLs are in the environment. */
export interface StoreTarget {
  readonly name: 'embedded' | 'redis+mysql';
  readonly redisUrl?: string;
  readonly mysqlUrl?: string;
}

export function storeTargets(): StoreTarget[] {
  const targets: StoreTarget[] = [{ name: 'embedded' }];
  const redisUrl = process.env.REDIS_URL;
  const mysqlUrl = process.env.MYSQL_URL;
  if (redisUrl && mysqlUrl) targets.push({ name: 'redis+mysql', redisUrl, mysqlUrl });
  return targets;
}

/** A tag unique to this run: device and user names carry it, since the MySQL database is shared. */
export function runTag(): string {
  return Buffer.from(systemRandom.bytes(4)).toString('hex');
}

/** An e2e deployment's own MySQL database (MySQL names are at most 64 characters: 8 + 32 + 8 here). */
export const ownDatabaseName = (storeTag: string): string => `sdc_e2e_${storeTag}`;

/** `mysqlUrl` naming the deployment's own database instead of the one it names (the shared `test`). */
export function ownDatabaseUrl(mysqlUrl: string, storeTag: string): string {
  const url = new URL(mysqlUrl);
  url.pathname = `/${ownDatabaseName(storeTag)}`;
  return url.toString();
}

/** One statement on its own connection to the server `mysqlUrl` names (mysql2 loaded only by the real-store runs). */
export async function mysqlAdmin(mysqlUrl: string, sql: string): Promise<void> {
  // No database on the connection: the one the URL names may not be there yet (a test's own, made later).
  const server = new URL(mysqlUrl);
  server.pathname = '/';
  const connection = await mysql2PromiseLibrary().createConnection({ uri: server.toString() });
  try { await connection.query(sql); } finally { await connection.end().catch(() => undefined); }
}

/** Every JSON line the services log, kept in memory (bounded) so tests can assert what was logged. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly #linesMax: number;

  constructor(linesMax = 200_000) {
    this.#linesMax = linesMax;
  }

  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const text of chunk.toString('utf8').split('\n')) {
          if (text.length === 0) continue;
          if (this.lines.length >= this.#linesMax) this.lines.shift();
          try {
            this.lines.push(JSON.parse(text) as Record<string, unknown>);
          } catch {
            this.lines.push({ unparsed: text });
          }
        }
        done();
      },
    });
  }

  /** Lines logging `code` with a trace id (`trace_id` in the gateway, `traceId` in the control plane). */
  withCode(code: string): Array<Record<string, unknown>> {
    return this.lines.filter((line) => line.code === code && typeof (line.trace_id ?? line.traceId) === 'string' && String(line.trace_id ?? line.traceId).length > 0);
  }
}

/** Short timeouts so that retries, presence and reconnects happen within a test's seconds. */
export const fastGateway: NonNullable<StartDeploymentOptions['gateway']> = {
  heartbeatIntervalMs: 1_000, authTimeoutMs: 3_000, ackTimeoutMs: 1_500, backoff: { baseMs: 200, maxMs: 1_000 },
  commandReadBlockMs: 100, aliveRefreshIntervalMs: 500, peerCheckIntervalMs: 500,
};

export type Api = <T>(method: 'GET' | 'POST', path: string, body?: unknown, options?: { headers?: Record<string, string>; token?: string | null }) => Promise<T>;

export interface E2eSystem {
  readonly dataDir: string;
  readonly materials: DeploymentMaterials;
  readonly deployment: Deployment;
  readonly target: StoreTarget;
  readonly keyPrefix: string;
  /** The deployment's own MySQL database on the server the target's URL names (created by startE2e, dropped by stop()); undefined on the embedded stores. */
  readonly mysqlDatabase: string | undefined;
  readonly tag: string;
  readonly logs: LogCapture;
  readonly token: string;
  readonly api: Api;
  readonly apiUrl: string;
  readonly agents: Map<string, RunningAgent>;
  /**
   * A gateway crash and restart: the running gateway's sockets are destroyed with no close
   * frames and its core is aborted; after `downMs`, a new gateway with the same id starts on the
   * same stores and port (what a supervisor restarting the process does).
   */
  crashAndRestartGateway(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartE2eOptions {
  target: StoreTarget;
  gateway?: StartDeploymentOptions['gateway'];
  /** Runs on the data directory before the deployment starts (e.g. writes an OTA image repository, as `sdc ota init` does). */
  beforeStart?: (dataDir: string) => Promise<void>;
  /** Merged over the short sweeps below (e.g. `otaBlobs` for a control plane whose blob store is S3). */
  controlPlaneTuning?: StartDeploymentOptions['controlPlaneTuning'];
}

export async function startE2e(options: StartE2eOptions): Promise<E2eSystem> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-e2e-'));
  const tag = runTag();
  // The test runner's namespace (hex, '' outside it) in the key prefix and the database name: the
  // runner removes what a killed test file's deployment left.
  const storeTag = `${testStoreNamespace()}${tag}`;
  const keyPrefix = `sdc-e2e-${storeTag}:`;
  const logs = new LogCapture();
  const logger = pino({ level: 'info' }, logs.stream());
  const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const { target } = options;
  const deploymentOptions: StartDeploymentOptions = {
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
    ...(target.redisUrl ? { redisUrl: target.redisUrl, keyPrefix } : {}),
    ...(target.mysqlUrl ? { mysqlUrl: ownDatabaseUrl(target.mysqlUrl, storeTag) } : {}),
    scryptParams: { N: 1024, r: 8, p: 1 },
    gateway: { ...fastGateway, ...options.gateway },
    // Short sweeps, so that recovery after a crash fits the tests' waits.
    controlPlaneTuning: { expirySweepIntervalMs: 500, redeliverySweepIntervalMs: 500, redispatchIntervalMs: 3_000, ...options.controlPlaneTuning },
  };
  // The run's own keys (sdc-e2e-<tag>:*) are removed when it stops, or here when its start fails;
  // SDC_TEST_KEEP_STORES=1 keeps them for a post-mortem. They were left behind (3,000 on a day's Redis).
  // Likewise its own MySQL database, sdc_e2e_<tag> (it wrote into the shared database the URL names,
  // `test`, and left 26 tables there; parallel files shared those tables).
  const removeKeys = async () => {
    if (process.env.SDC_TEST_KEEP_STORES === '1') return;
    // Both tried, whichever fails.
    const removed = await Promise.allSettled([
      target.redisUrl ? removeKeysWithPrefix(target.redisUrl, keyPrefix) : undefined,
      target.mysqlUrl ? mysqlAdmin(target.mysqlUrl, `DROP DATABASE IF EXISTS \`${ownDatabaseName(storeTag)}\``) : undefined,
    ]);
    for (const outcome of removed) if (outcome.status === 'rejected') throw outcome.reason;
  };
  await options.beforeStart?.(dataDir);
  if (target.mysqlUrl) await mysqlAdmin(target.mysqlUrl, `CREATE DATABASE \`${ownDatabaseName(storeTag)}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  const deployment = await startDeployment(deploymentOptions).catch(async (error: unknown) => { await removeKeys().catch(() => undefined); throw error; });
  const apiUrl = deployment.apiUrl;
  const controlPlane = deployment.controlPlane;
  if (apiUrl === undefined || controlPlane === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'the e2e deployment needs a control plane');
  const adminName = `e2e-admin-${tag}`;
  const password = Buffer.from(systemRandom.bytes(18)).toString('base64url');
  await controlPlane.auth.users.add({ name: adminName, role: 'admin', password, nowMs: systemClock.nowMs() });
  const caPem = materials.rootCaPem;
  const call = <T>(method: 'GET' | 'POST', path: string, body: unknown, headers: Record<string, string> | undefined, token: string | undefined) =>
    httpsJson<T>({ method, url: new URL(path, apiUrl), caPem, timeoutMs: e2eWaitMsMin, ...(token === undefined ? {} : { token }), ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) })
      .then((answer) => answer.body);
  const token = (await call<{ token: string }>('POST', '/v1/auth/login', { name: adminName, password }, undefined, undefined)).token;
  const api: Api = (method, path, body, opts) => call(method, path, body, opts?.headers, opts?.token === null ? undefined : (opts?.token ?? token));
  const agents = new Map<string, RunningAgent>();
  const extraStops: Array<() => Promise<void>> = [];
  const gatewayPort = deployment.gatewayServer.address.port;
  return {
    dataDir, materials, deployment, target, keyPrefix, mysqlDatabase: target.mysqlUrl ? ownDatabaseName(storeTag) : undefined, tag, logs, token, api, apiUrl, agents,
    async crashAndRestartGateway(downMs) {
      deployment.gatewayServer.kill();
      deployment.gateway.abort();
      await delay(downMs);
      const gateway = createGatewayCore({
        ...fastGateway, ...options.gateway,
        gatewayId: 'gw-1', signer: materials.gatewaySigner, provider: createNodeEd25519Provider(),
        stores: { bus: deployment.stores.bus, kv: deployment.stores.kv }, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
        logger: logger.child({ role: 'gateway', incarnation: 2 }),
        commandKeys: new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]),
      });
      await gateway.start();
      const server = await startGatewayServer({
        core: gateway, tls: materials.serverTls, host: '127.0.0.1', port: gatewayPort,
        trustAnchors: [materials.intermediateCaPem, materials.rootCaPem], clock: systemClock, logger: logger.child({ role: 'gateway-server', incarnation: 2 }),
      });
      extraStops.push(() => server.close(), () => gateway.stop());
    },
    async stop() {
      await Promise.allSettled([...agents.values()].map((agent) => agent.stop()));
      for (const stop of extraStops) await stop().catch(() => undefined);
      try {
        await deployment.stop();
      } finally {
        await rm(dataDir, { recursive: true, force: true });
        await removeKeys();
      }
    },
  };
}

export const updateVersions = ['1.0.1', '1.0.2'] as const;
export const artifactOf = (version: string): Buffer => Buffer.from(`sdc e2e update ${version}\n`.repeat(32));

/**
 * The agents' telemetry interval unless a test asks for another: a sample every 2 s. Was 300 ms,
 * though only the round trip reads telemetry (two samples per device) and the tests that need
 * more set their own; each sample is signed, ingested and stored, and at 300 ms with two agents
 * on two store pairs that was several seconds of CPU per file.
 */
export const e2eTelemetryIntervalMs = 2_000;

/** Pairs a device through the API (token) and starts a real agent that enrolls and connects. */
export async function pairAgent(system: E2eSystem, deviceId: string, options: { telemetryIntervalMs?: number } = {}): Promise<RunningAgent> {
  const { token: pairingToken } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
  const dir = agentDir(system, deviceId);
  await mkdir(join(dir, 'updates'), { recursive: true, mode: 0o700 });
  for (const version of updateVersions) await writeFile(join(dir, 'updates', `${version}.bin`), artifactOf(version));
  const agent = await runAgent({
    dir, serverUrl: system.apiUrl, deviceId, pairingToken, caPem: system.materials.rootCaPem, kernel: 'mock',
    // A simulated desktop: the round trip, approvals and viewer tests lock its screen.
    mockLockScreen: true, telemetryIntervalMs: options.telemetryIntervalMs ?? e2eTelemetryIntervalMs, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
  });
  system.agents.set(deviceId, agent);
  return agent;
}

/** Starts an already enrolled agent again from its directory (no pairing token). */
export async function restartAgent(system: E2eSystem, deviceId: string): Promise<RunningAgent> {
  const agent = await runAgent({
    dir: agentDir(system, deviceId), kernel: 'mock', mockLockScreen: true, telemetryIntervalMs: e2eTelemetryIntervalMs,
    clock: systemClock, random: systemRandom, scheduler: systemScheduler,
  });
  system.agents.set(deviceId, agent);
  return agent;
}

export function agentDir(system: Pick<E2eSystem, 'dataDir'>, deviceId: string): string {
  return join(system.dataDir, 'agents', deviceId);
}

/** What an OTA test's agent logs, each line with its fields (the update runner says how it downloaded). */
export type AgentLogLine = { readonly message: string; readonly fields: Record<string, unknown> };

/**
 * Pairs `deviceId`, enrolls and starts its agent on the mock kernel with the OTA runner
 * (`installedVersion` the mock's current version; `healthProbe` its post-commit check), its log
 * lines kept in `lines`, and registers it with the system. The OTA end-to-end tests' agent.
 */
export async function startOtaAgent(system: E2eSystem, deviceId: string, options: {
  installedVersion: string; healthProbe: () => Promise<boolean>; lines: AgentLogLine[];
  /** Artifact origins besides the control plane's (runAgent's ota.artifactOrigins): an S3 endpoint. */
  artifactOrigins?: readonly string[];
}): Promise<RunningAgent> {
  const { token } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
  const dir = agentDir(system, deviceId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const log = (fields: unknown, message: string) => { options.lines.push({ message, fields: (fields ?? {}) as Record<string, unknown> }); };
  const agent = await runAgent({
    logger: { debug() {}, info: log, warn: log, error: log },
    dir, serverUrl: system.apiUrl, deviceId, pairingToken: token, caPem: system.materials.rootCaPem, kernel: 'mock', telemetryIntervalMs: 1_000,
    clock: systemClock, random: systemRandom, scheduler: systemScheduler,
    ota: { platform: 'linux-x64', mockInstalledVersion: options.installedVersion, healthProbe: options.healthProbe, ...(options.artifactOrigins === undefined ? {} : { artifactOrigins: options.artifactOrigins }) },
  });
  system.agents.set(deviceId, agent);
  return agent;
}

/**
 * The shortest real-time wait for a condition before a test fails. Generous on purpose: these
 * tests share the machine with other work, a condition that holds ends the wait at once, and a
 * wait never proves anything about timing (what must happen within a bound is tested on virtual
 * time). A longer `timeoutMs` given by a caller still applies.
 */
export const e2eWaitMsMin = 120_000;

/** Polls until `check` returns a value other than undefined, or fails naming `what` after max(timeoutMs, e2eWaitMsMin). */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMsAsked = e2eWaitMsMin, intervalMs = 50): Promise<T> {
  const timeoutMs = Math.max(timeoutMsAsked, e2eWaitMsMin);
  const deadlineMs = systemClock.nowMs() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (systemClock.nowMs() > deadlineMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await delay(intervalMs);
  }
}

export async function waitOnline(system: E2eSystem, deviceIds: readonly string[], online = true, timeoutMs = e2eWaitMsMin): Promise<void> {
  await eventually(`${deviceIds.length} devices ${online ? 'online' : 'offline'}`, async () => {
    const states = await Promise.all(deviceIds.map((id) => system.api<{ online: boolean }>('GET', `/v1/devices/${id}`)));
    return states.every((d) => d.online === online) ? true : undefined;
  }, timeoutMs);
}

export interface CommandRecord {
  id: string;
  device_id: string;
  opcode: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number }>;
}

export const terminalStates: readonly CommandState[] = commandTerminalStates;

export interface CommandOutcome {
  state: CommandState;
  /** The device's error code from its signed COMMAND_RESULT, when it sent one with an error. */
  resultCode: string | undefined;
}

/** The final state and the device's own error code, from the stored signed result frame. */
export function outcomeOf(record: CommandRecord & { result_frame?: { body?: { error?: { code?: string } } } | null }): CommandOutcome {
  const frame = record.result_frame ?? undefined;
  return { state: record.state, resultCode: frame?.body?.error?.code };
}

/**
 * Outcome of a crash test: every accepted command succeeded and took effect exactly once (a
 * command redelivered out of order after the crash still runs: the agent refuses only seqs that
 * have already run). Returns the counts by state.
 */
export function checkExactlyOnce(finals: ReadonlyArray<{ record: CommandRecord; executions: number }>): Record<string, number> {
  const byState: Record<string, number> = {};
  for (const { record, executions } of finals) {
    byState[record.state] = (byState[record.state] ?? 0) + 1;
    if (record.state !== 'succeeded' || executions !== 1) {
      const outcome = outcomeOf(record);
      throw new Error(`command ${record.id} ended ${record.state} (${outcome.resultCode ?? 'no device code'}) after ${executions} executions: ${JSON.stringify(record.history)}`);
    }
  }
  return byState;
}

export async function createCommand(system: E2eSystem, deviceId: string, opcode: Opcode | string, args: Record<string, unknown> = {}, extra: { ttlMs?: number; idempotencyKey?: string } = {}): Promise<CommandRecord> {
  return system.api<CommandRecord>('POST', '/v1/commands', { device_id: deviceId, opcode, args, ...(extra.ttlMs === undefined ? {} : { ttl_ms: extra.ttlMs }) },
    extra.idempotencyKey === undefined ? undefined : { headers: { 'idempotency-key': extra.idempotencyKey } });
}

export async function waitTerminal(system: E2eSystem, commandId: string, timeoutMs = e2eWaitMsMin): Promise<CommandRecord> {
  let last: CommandRecord | undefined;
  try {
    return await eventually(`command ${commandId} terminal`, async () => {
      last = await system.api<CommandRecord>('GET', `/v1/commands/${commandId}`);
      return terminalStates.includes(last.state) ? last : undefined;
    }, timeoutMs, 100);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

/** The arguments each opcode needs; updates name artifacts that pairAgent wrote to the agent's directory. */
export function argsFor(opcode: Opcode, version: string = updateVersions[0]): Record<string, unknown> {
  if (opcode === 'EXEC_GET_PROCESS_LIST') return { limit: 20 };
  if (opcode === 'EXEC_STAGE_UPDATE') {
    const artifact = artifactOf(version);
    return { version, sha256: createHash('sha256').update(artifact).digest('hex'), size_bytes: artifact.length };
  }
  if (opcode === 'EXEC_COMMIT_UPDATE') return { version };
  return {};
}

/**
 * Counts kernel process-list calls by their `limit`: a test that gives every command its own
 * limit learns how many times each command took effect at the (mock) kernel.
 */
export function countProcessListCalls(agent: RunningAgent, options: { callDelayMs?: number } = {}): Map<number, number> {
  const counts = new Map<number, number>();
  const kernel = agent.kernel as { getProcessList: RunningAgent['kernel']['getProcessList'] };
  const original = kernel.getProcessList.bind(agent.kernel);
  kernel.getProcessList = async (maxEntries?: number) => {
    counts.set(maxEntries ?? -1, (counts.get(maxEntries ?? -1) ?? 0) + 1);
    // A slow kernel keeps commands executing long enough for a crash to land in the middle.
    if (options.callDelayMs !== undefined) await delay(options.callDelayMs);
    return original(maxEntries);
  };
  return counts;
}

/** The recorded history is the full path, each state once, in order, times never going back. */
/**
 * The command's states in order, a redelivery folded into the `sent` before it: on a loaded
 * machine the gateway's ACK can miss the redelivery timeout, and the control plane then records
 * `sent` again with the next attempt (both trees failed 'every state in order' this way in a
 * clean-clone run beside another). Folded only when the attempts go up one by one, which
 * `ordered` also requires, with the times never going back and the last state `final`.
 */
export function historyInOrder(record: CommandRecord, final: CommandState = 'succeeded'): { states: CommandState[]; ordered: boolean } {
  const states: CommandState[] = [];
  let lastAttempt = 0;
  let attemptsInOrder = true;
  for (const entry of record.history) {
    // The API's history entries carry `detail` (its type here leaves it out).
    const attempt = (entry as { detail?: { attempt?: unknown } }).detail?.attempt;
    if (entry.state === 'sent' && typeof attempt === 'number') {
      if (attempt !== lastAttempt + 1) attemptsInOrder = false;
      lastAttempt = attempt;
      if (states.at(-1) === 'sent') continue;
    }
    states.push(entry.state);
  }
  const times = record.history.map((h) => h.at_ms);
  return { states, ordered: attemptsInOrder && times.every((t, i) => i === 0 || t >= times[i - 1]!) && states.at(-1) === final };
}

/** One HTTPS call that returns any status with its JSON body (httpsJson turns refusals into errors without the trace id). */
export async function rawApi(system: Pick<E2eSystem, 'apiUrl' | 'materials'>, method: 'GET' | 'POST', path: string, options: { body?: string | object; token?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string; message: string; trace_id: string } } }> {
  const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, system.apiUrl), {
      method, ca: system.materials.rootCaPem, minVersion: 'TLSv1.3',
      headers: {
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        ...options.headers,
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try {
          body = text.length === 0 ? {} : (JSON.parse(text) as Record<string, unknown>);
        } catch {
          body = { text };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
