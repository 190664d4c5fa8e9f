import { SdcError } from '../../core/errors/index.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../../runtime/ed25519-node.js';
import { initDeployment, type DeploymentMaterials } from '../materials/materials.js';
import { signEnvelope, type SignedEnvelope } from '../../core/protocol/envelope.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { createMysqlDatabase } from '../stores/sql/mysql-database.js';
import { removeKeysWithPrefix } from '../stores/redis-prefix-cleanup.js';
import { testStoreTag } from '../stores/test-store-namespace.js';
import { mysql2PromiseLibrary } from '../stores/store-libraries.js';
import { openSqlJsDatabase } from '../stores/sql/sqljs-database.js';
import type { SqlDatabase, SqlTransaction } from '../stores/sql/sql-port.js';
import { importEd25519PrivateKey, publicKeyOf } from '../../trust/ed25519-keys.js';
import { ed25519Algorithm, x509 } from '../../trust/x509-provider.js';
import { createControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.js';
import type { SqlAuditStore } from './stores/sql-audit-store.js';
import type { AuditEntry } from '../../core/protocol/audit-chain.js';
import { signApproval } from '../../core/protocol/approvals.js';
import type { PolicyRole } from '../../core/protocol/policy.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { GatewayCore } from '../gateway/gateway-core.js';
import { eventually, makeCore, onVirtualTime, settle, VirtualDriver } from '../gateway/test-support.js';

/** Calls `onDrain` with the entries of every store call that chains outbox inputs (an audit drain's append). */
export function watchAuditDrains(store: SqlAuditStore, onDrain: (entries: readonly AuditEntry[]) => void): void {
  const appendRecorded = store.appendRecorded.bind(store);
  store.appendRecorded = async (...args: Parameters<typeof appendRecorded>) => {
    const entries = await appendRecorded(...args);
    onDrain(entries);
    return entries;
  };
}

/** A clock tests move by hand. Starts at the real time so certificates and CA validity line up. */
export class ManualClock {
  #nowMs = Date.now();
  nowMs(): number { return this.#nowMs; }
  advance(ms: number): void { this.#nowMs += ms; }
}

export interface SqlTarget {
  readonly name: string;
  open(dataDir: string): Promise<SqlDatabase>;
  cleanup(): Promise<void>;
}

export const sqlJsTarget: SqlTarget = {
  name: 'sql.js',
  open: (dataDir) => openSqlJsDatabase({ dataDir: join(dataDir, 'db'), fileName: 'sdc.sqlite' }),
  cleanup: async () => undefined,
};

/**
 * sql.js, with every statement run inside a transaction written down in `statements` (a batch's
 * statements each, in order): for tests that count what a write's transaction sends. With
 * `outsideTransactions`, the database's own query and execute are written down too (every
 * statement the code under test runs).
 */
export function sqlJsTargetWatchingTransactions(statements: string[], options: { outsideTransactions?: boolean } = {}): SqlTarget {
  return {
    ...sqlJsTarget,
    open: async (dataDir) => {
      const db = await sqlJsTarget.open(dataDir);
      const watched = (tx: SqlTransaction): SqlTransaction => ({
        dialect: tx.dialect,
        query: (sql, params) => { statements.push(sql); return tx.query(sql, params); },
        execute: (sql, params) => { statements.push(sql); return tx.execute(sql, params); },
        executeBatch: (batch, options) => { statements.push(...batch.map((statement) => statement.sql)); return tx.executeBatch(batch, options); },
      });
      return new Proxy(db, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property === 'transaction') return <T>(fn: (tx: SqlTransaction) => Promise<T>) => target.transaction((tx) => fn(watched(tx)));
          if (options.outsideTransactions === true && (property === 'query' || property === 'execute')) {
            return (sql: string, params?: readonly unknown[]) => { statements.push(sql); return (value as (s: string, p?: readonly unknown[]) => unknown).call(target, sql, params); };
          }
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
  };
}

/**
 * The sql.js target whose `query` calls `onRead` before each statement that starts with
 * `sqlPrefix` (every other member passes through): for tests that count one kind of read, such as
 * DeviceService's batched device-key read (`SELECT id, public_key, status FROM devices`).
 */
export function sqlJsTargetCountingReads(sqlPrefix: string, onRead: () => void): SqlTarget {
  return {
    ...sqlJsTarget,
    open: async (dataDir) => {
      const db = await sqlJsTarget.open(dataDir);
      return new Proxy(db, {
        get(target, property, receiver) {
          if (property !== 'query') {
            const value = Reflect.get(target, property, receiver) as unknown;
            return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
          }
          return (sql: string, params?: readonly unknown[]) => {
            if (sql.startsWith(sqlPrefix)) onRead();
            return (target.query as (s: string, p?: readonly unknown[]) => Promise<unknown[]>)(sql, params);
          };
        },
      }) as SqlDatabase;
    },
  };
}

/** SDC_TEST_KEEP_STORES=1: the tests' own Redis keys and MySQL databases are kept for a post-mortem. */
const keepStores = (): boolean => process.env['SDC_TEST_KEEP_STORES'] === '1';

/**
 * The databases mysqlTarget made in this process and cleanup() has not dropped (name -> server
 * URL): dropped when the process is about to exit, for the files that never call cleanup() (about
 * a dozen did not: each run of them left an sdc_cp_<pid>_<hex> database on the server).
 */
const undroppedDatabases = new Map<string, string>();
let dropAtExitRegistered = false;

async function dropDatabase(url: string, name: string): Promise<void> {
  const admin = await mysql2PromiseLibrary().createConnection({ uri: url });
  try { await admin.query(`DROP DATABASE IF EXISTS \`${name}\``); } finally { await admin.end(); }
}

function dropAtExit(url: string, name: string): void {
  undroppedDatabases.set(name, url);
  if (dropAtExitRegistered) return;
  dropAtExitRegistered = true;
  process.on('beforeExit', () => {
    if (undroppedDatabases.size === 0 || keepStores()) return;
    const left = [...undroppedDatabases];
    undroppedDatabases.clear();
    // The drops keep the loop alive; beforeExit comes again once they are done, with nothing left.
    void Promise.allSettled(left.map(([name, serverUrl]) => dropDatabase(serverUrl, name)));
  });
}

/** A MySQL database of its own per target, so parallel test files never share tables; dropped by cleanup() or, at the latest, when the process exits. */
export function mysqlTarget(url: string): SqlTarget {
  // The run's namespace in the name (testStoreTag): the runner drops it if this process is killed first.
  const databaseName = `sdc_cp_${process.pid}_${testStoreTag()}`;
  const testUrl = new URL(url);
  testUrl.pathname = `/${databaseName}`;
  let created = false;
  return {
    name: 'mysql',
    async open() {
      if (!created) {
        // mysql2 is loaded by the first MySQL target, not at import: files on sql.js alone never load it.
        const admin = await mysql2PromiseLibrary().createConnection({ uri: url });
        await admin.query(`CREATE DATABASE \`${databaseName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
        await admin.end();
        created = true;
        dropAtExit(url, databaseName);
      }
      return createMysqlDatabase({ url: testUrl.toString(), connectionLimit: 4 });
    },
    async cleanup() {
      if (!created) return;
      await dropDatabase(url, databaseName);
      undroppedDatabases.delete(databaseName);
    },
    get url() { return testUrl.toString(); },
  } as SqlTarget & { url: string };
}

export interface Harness {
  readonly dir: string;
  readonly clock: ManualClock;
  readonly materials: DeploymentMaterials;
  readonly db: SqlDatabase;
  readonly bus: MemoryStreamBus;
  readonly cp: ControlPlane;
  close(): Promise<void>;
}

/**
 * The two store pairs: sql.js with the embedded key/value store, and MySQL with real Redis when
 * MYSQL_URL and REDIS_URL are set. `kv` is undefined for the embedded store (makeHarness's default).
 */
export interface StorePair {
  readonly name: string;
  readonly sql: SqlTarget;
  readonly kv?: KvFactory;
}

/** A key/value store under a key prefix; `removeKeys` (Redis) removes what it left under that prefix, called by makeHarness's close(). */
export type KvFactory = ((keyPrefix: string) => KeyValueStore) & { readonly removeKeys?: (keyPrefix: string) => Promise<unknown> };

export function storePairs(): { pairs: StorePair[]; skipped?: string } {
  const embedded: StorePair = { name: 'sql.js + embedded kv', sql: sqlJsTarget };
  const mysqlUrl = process.env['MYSQL_URL'];
  const redisUrl = process.env['REDIS_URL'];
  if (mysqlUrl === undefined || mysqlUrl === '' || redisUrl === undefined || redisUrl === '') {
    return { pairs: [embedded], skipped: 'MYSQL_URL or REDIS_URL is not set; the same suite runs on sql.js + embedded kv' };
  }
  const kv = Object.assign((keyPrefix: string) => createRedisKeyValueStore({ url: redisUrl, keyPrefix }), { removeKeys: (keyPrefix: string) => removeKeysWithPrefix(redisUrl, keyPrefix) });
  return { pairs: [embedded, { name: 'mysql + redis', sql: mysqlTarget(mysqlUrl), kv }] };
}

/**
 * `wrapBus` puts a wrapper (e.g. fault injection) between the control plane and the bus; `bus` stays the raw one.
 * `kv` replaces the embedded key/value store (given a fresh key prefix); `controlPlane` overrides options.
 */
export async function makeHarness(target: SqlTarget, options: {
  wrapBus?: (bus: StreamBus) => StreamBus; kv?: KvFactory; controlPlane?: Partial<ControlPlaneOptions>;
} = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-cp-'));
  const clock = new ManualClock();
  const materials = await initDeployment({ dataDir: dir, clock, random: systemRandom });
  const db = await target.open(dir);
  const bus = new MemoryStreamBus({ clock, scheduler: systemScheduler });
  const keyPrefix = `cp-test-${testStoreTag()}:`;
  const kv = options.kv?.(keyPrefix) ?? createEmbeddedKeyValueStore({ keyPrefix });
  const cp = await createControlPlane({
    materials, stores: { sql: db, bus: options.wrapBus?.(bus) ?? bus, kv }, clock, random: systemRandom, scheduler: systemScheduler,
    gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 }, claimIdleMs: 1_000, ...options.controlPlane,
  });
  return {
    dir, clock, materials, db, bus, cp,
    close: () => closeHarness({ cp, bus, kv, db, dir }, options.kv, keyPrefix),
  };
}

/**
 * Stops a harness's control plane and closes its stores and directory; then removes the keys its
 * kv factory left under `keyPrefix` (Redis), unless SDC_TEST_KEEP_STORES=1. makeHarness's and
 * makeOtaHarness's close().
 */
export async function closeHarness(
  parts: { cp: ControlPlane; bus: StreamBus; kv: KeyValueStore; db: SqlDatabase; dir: string }, kvFactory: KvFactory | undefined, keyPrefix: string,
): Promise<void> {
  // systemScheduler's timers are unref'd: a started control plane's consumers, blocked in a
  // read until its timer fires, would otherwise leave the event loop empty while stop() waits,
  // and the test runner would cancel the hook (device-tags-policy.test.ts did, every run).
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    await parts.cp.stop();
    await parts.bus.close();
    await parts.kv.close();
    await parts.db.close();
    await rm(parts.dir, { recursive: true, force: true });
  } finally {
    // The harness's own cp-test-<hex>: keys on Redis (they were left behind: 126 on the shared server).
    if (!keepStores()) await kvFactory?.removeKeys?.(keyPrefix);
    clearInterval(keepAlive);
  }
}

const provider = createNodeEd25519Provider();

/** A device's key: the seed for signing frames and a CSR with CN = device id. */
/**
 * A test file's after() for a lazily made harness on a store pair: closes the harness, then drops
 * the pair's database. systemScheduler's timers are unref'd: without a ref'd one, stopping the
 * started consumers (blocked in a read) would leave the event loop empty and the runner would
 * cancel the hook.
 */
export async function closeHarnessAndPair(h: Harness | undefined, pair: StorePair): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    await h?.close();
    await pair.sql.cleanup();
  } finally {
    clearInterval(keepAlive);
  }
}

export async function makeDeviceKey(deviceId: string): Promise<{ seed: Uint8Array; csrPem: string }> {
  const seed = new Uint8Array(randomBytes(32));
  const der = Buffer.from(pemFromPrivateSeed(seed).replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const privateKey = await importEd25519PrivateKey(new Uint8Array(der));
  const keys = { privateKey, publicKey: await publicKeyOf(privateKey) };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.3': [deviceId] }], keys, signingAlgorithm: ed25519Algorithm });
  return { seed, csrPem: csr.toString('pem') };
}

let frameCounter = 0;
/** A frame signed by the device, as canonical JSON text (what gateways put on the bus). */
export function deviceFrame(options: { deviceId: string; seed: Uint8Array; type: string; body: JsonObject; ts: number }): string {
  frameCounter += 1;
  const envelope: SignedEnvelope = signEnvelope({
    fields: { v: 1, type: options.type, id: `f${frameCounter}`, device_id: options.deviceId, session_id: 's1', seq: frameCounter, ts: options.ts, body: options.body },
    kid: deviceKid(options.deviceId), seed: options.seed, provider,
  });
  return canonicalize(envelope);
}

/**
 * A command_progress entry as a gateway appends it. `ack` and `start` carry the device's signed
 * COMMAND_ACK (stage received / executing), without which every reader refuses them
 * (COMMAND_ACK_UNSIGNED): give the device's `seed` and the command's `device_seq` for those.
 */
export function progressEntry(options: {
  command: { id: string; device_id: string; device_seq?: number | null }; event: 'deliver' | 'ack' | 'start' | 'dead_letter' | 'requeue'; atMs: number;
  seed?: Uint8Array; gatewayId?: string; attempt?: number; detail?: string; traceparent?: string;
}): Record<string, string> {
  const { command, event, atMs } = options;
  let frame: string | undefined;
  if (event === 'ack' || event === 'start') {
    if (options.seed === undefined || command.device_seq === undefined || command.device_seq === null) throw new Error(`progressEntry: an ${event} needs the device's seed and the command's device_seq`);
    const body = { command_id: command.id, device_seq: command.device_seq, stage: event === 'ack' ? 'received' : 'executing' };
    frame = deviceFrame({ deviceId: command.device_id, seed: options.seed, type: 'COMMAND_ACK', body, ts: atMs });
  }
  return encodeBusEntry('command_progress', {
    command_id: command.id, device_id: command.device_id, gateway_id: options.gatewayId ?? 'gw1', at_ms: atMs, event, attempt: options.attempt ?? 1,
    ...(options.detail === undefined ? {} : { detail: options.detail }), ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }),
    ...(frame === undefined ? {} : { frame }),
  });
}

/** The stable code a promise is refused with, `accepted` when it resolves, `untyped ...` for an error without a code. */
export async function refusalCodeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return SdcError.is(error) ? error.code : `untyped ${String(error)}`;
  }
  return 'accepted';
}

/** A user of an HTTP-API suite; `token` and `kid` are set once the suite's `before` has logged them in and registered a key. */
export interface ApiPerson { readonly name: string; readonly role: PolicyRole; readonly seed: Uint8Array; token: string; kid: string }
export interface ApiResponse { readonly status: number; json(): Record<string, any>; readonly text: string }
export type ApiCall = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string | undefined, body?: unknown) => Promise<ApiResponse>;

/** Declares a person (name suffixed with `tag`, a fresh approval signing seed) into `people`, at describe time. */
export function personMaker(tag: string, people: ApiPerson[]): (name: string, role: PolicyRole) => ApiPerson {
  return (name, role) => {
    const p = { name: `${name}${tag}`, role, seed: new Uint8Array(randomBytes(32)), token: '', kid: '' };
    people.push(p);
    return p;
  };
}

/** Requests to the harness's API (read when called: the harness is made in `before`), as `token`'s bearer when given. */
export function apiCaller(harness: () => Harness): ApiCall {
  return async (method, url, token, body) => {
    const response = await harness().cp.app.inject({ method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: response.statusCode, json: () => response.json() as Record<string, any>, text: response.body };
  };
}

/** Adds each person as a user with `password` and logs them in (sets `token`). */
export async function addAndLogIn(h: Harness, call: ApiCall, people: readonly ApiPerson[], password: string): Promise<void> {
  for (const p of people) {
    await h.cp.auth.users.add({ name: p.name, role: p.role, password, nowMs: h.clock.nowMs() });
    p.token = (await call('POST', '/v1/auth/login', undefined, { name: p.name, password })).json().token as string;
  }
}

/** `by` approves `command` (the API's JSON of a pending command), signing the statement with by.seed under by.kid. */
export async function approveAs(call: ApiCall, by: ApiPerson, command: Record<string, any>): Promise<ApiResponse> {
  const statement = { command_id: command.id as string, command_sha256: command.approval.command_sha256 as string, decision: 'approve' as const, approver: by.name, kid: by.kid, expires_at: command.expires_at_ms as number };
  return call('POST', `/v1/commands/${command.id}/approve`, by.token, {
    command_sha256: statement.command_sha256, kid: statement.kid, expires_at_ms: statement.expires_at, signature: signApproval({ statement, seed: by.seed, provider }),
  });
}

/** A second control plane on a harness's stores (see openSecondControlPlane). */
export interface SecondControlPlane { readonly cp: ControlPlane; close(): Promise<void> }

/**
 * A second control plane sharing `h`'s database, bus and key/value store, so a refusal or a count
 * a test asserts is the stores', not one process's memory. On MySQL it has its own connection pool
 * (`pair.sql.open`), closed by `close` after the control plane stops. `overrides` are options of its own.
 */
export async function openSecondControlPlane(h: Harness, pair: StorePair, overrides: Partial<ControlPlaneOptions> = {}): Promise<SecondControlPlane> {
  const sql = pair.sql.name === 'mysql' ? await pair.sql.open(h.dir) : h.db;
  const closeSql = async () => { if (sql !== h.db) await sql.close(); };
  let cp: ControlPlane;
  try {
    cp = await createControlPlane({
      materials: h.materials, stores: { sql, bus: h.bus, kv: h.cp.context.kv }, clock: h.clock, random: systemRandom, scheduler: systemScheduler,
      gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 }, ...overrides,
    });
  } catch (error) {
    await closeSql();
    throw error;
  }
  return { cp, async close() { await cp.stop(); await closeSql(); } };
}

/**
 * An open Server-Sent Events body (GET /v1/live) and what it has received so far, for the live
 * stream's tests: reads until a needle shows up or the server ends the stream.
 */
export class SseReader {
  text = '';
  ended = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();

  constructor(response: Response) {
    this.#reader = response.body!.getReader();
  }

  /** Reads until `needle` arrived or the stream ended (each read waits for the server). */
  async readUntil(needle: string): Promise<string> {
    while (!this.text.includes(needle) && !this.ended) {
      const { done, value } = await this.#reader.read();
      if (done) this.ended = true;
      else this.text += this.#decoder.decode(value, { stream: true });
    }
    return this.text;
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => undefined);
  }
}

/**
 * A gateway on virtual time and a control plane on one bus and one key/value store, with `deviceIds`
 * enrolled and every live-channel message kept (what LiveHub relays to the viewer's SSE stream):
 * the presence-restored tests' set-up. `beforeGateway` runs before the gateway is created (e.g. to
 * count calls on the control plane's services, which the event handlers hold).
 */
export interface LiveGatewayRig {
  readonly h: Harness;
  readonly core: GatewayCore;
  readonly driver: VirtualDriver;
  /** Every live-channel message so far, parsed, in order. */
  readonly live: JsonObject[];
  /** Everything published so far has reached the subscriber: a marker sent after it on the same client has. */
  liveSettled(): Promise<void>;
  /** Virtual time past `virtualMs`, the store calls it started answered (a socket for Redis), then the control plane's turn. */
  runPast(virtualMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startLiveGatewayRig(pair: StorePair, options: {
  gatewayId: string; heartbeatIntervalMs: number; deviceIds: readonly string[]; beforeGateway?: (h: Harness) => void;
}): Promise<LiveGatewayRig> {
  const driver = new VirtualDriver();
  const live: JsonObject[] = [];
  const h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
  const unsubscribe = await h.cp.context.kv.subscribe(liveChannel, (message) => live.push(JSON.parse(message) as JsonObject));
  for (const id of options.deviceIds) await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [id, h.clock.nowMs()]);
  options.beforeGateway?.(h);
  const core = makeCore({ bus: h.bus, kv: h.cp.context.kv }, { ...onVirtualTime(driver), gatewayId: options.gatewayId, heartbeatIntervalMs: options.heartbeatIntervalMs, ackTimeoutMs: 600_000 });
  await core.start();
  return {
    h, core, driver, live,
    async liveSettled() {
      const marker = `marker-${live.length}-${Date.now()}`;
      await h.cp.context.kv.publish(liveChannel, JSON.stringify({ type: 'test-marker', marker }));
      await eventually(() => (live.some((e) => e['marker'] === marker) ? true : undefined), undefined, 'the marker on the live channel');
    },
    async runPast(virtualMs) {
      await driver.runTo(virtualMs + 1);
      for (let round = 0; round < 3; round += 1) {
        await h.cp.context.kv.get('presence-restored-probe');
        await settle();
      }
      await h.cp.eventsConsumer.drain();
    },
    async close() {
      await core.stop();
      await unsubscribe();
      await h.close();
      await pair.sql.cleanup();
    },
  };
}
