// Shared by the server/gateway tests (not used by production code): PKI material, a gateway on
// embedded stores, agents over an in-memory transport or a real TLS WebSocket, and store readers.
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { decodeBusEntry, encodeBusEntry, type BusEntryData, type BusEntryKind, type DecodedBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamNames } from '../bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import type { Clock } from '../../core/ports/ports.js';
import { AgentConnection, type AgentEvent } from '../../core/protocol/session/agent-connection.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import type { SessionMacOptions } from '../../core/protocol/session/session-mac.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createEmbeddedKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { exportPkcs8Der, generateEd25519KeyPair } from '../../trust/ed25519-keys.js';
import { toPem } from '../../trust/pem.js';
import { issueServerCertificate } from '../../trust/server-certificate.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { ed25519Algorithm, x509 } from '../../trust/x509-provider.js';
import { createGatewayCore, type AcceptConnectionInput, type ConnectionHandle, type GatewayCore, type GatewayCoreOptions } from './gateway-core.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { SdcError } from '../../core/errors/index.js';
import type { PresenceRecord } from './presence.js';
import { startGatewayServer, type GatewayServer, type GatewayServerOptions } from './gateway-server.js';
import pino from 'pino';
import { cutPolicyBundle, signPolicyBundle, type SignedPolicyBundle } from '../../core/protocol/policy-bundle.js';
import { defaultPolicy } from '../../core/protocol/policy.js';
import { policyBundleChannels } from '../bus-contract/policy-bundle-keys.js';
import type { GatewayContext } from './gateway-context.js';
import { PolicyBundlePush } from './policy-bundle-push.js';

export const provider = createNodeEd25519Provider();
export const gatewaySeed = new Uint8Array(randomBytes(32));
export const gatewaySigner = { kid: 'gateway:test', seed: gatewaySeed };
export const gatewayPublicKey = provider.publicKeyFromSeed(gatewaySeed);
const cpSeed = new Uint8Array(randomBytes(32));
export const commandKeys = new Map([['cp:test', provider.publicKeyFromSeed(cpSeed)]]);

export interface DeviceMaterial {
  deviceId: string;
  certPem: string;
  keyPem: string;
  seed: Uint8Array;
  publicKey: Uint8Array;
  serialHex: string;
}

export interface GatewayPki {
  pki: TestPki;
  serverTls: { certPem: string; keyPem: string; caPem: string };
  issueDevice(deviceId: string): Promise<DeviceMaterial>;
}

export async function makeGatewayPki(): Promise<GatewayPki> {
  const now = new Date();
  const pki = await makeTestPki(new Date(now.getTime() - 60_000));
  const caPem = `${pki.intermediate.certificate.toString('pem')}\n${pki.root.certificate.toString('pem')}\n`;
  const server = await issueServerCertificate({
    intermediateCertPem: pki.intermediate.certificate.toString('pem'), intermediateKey: pki.intermediate.privateKey,
    hostnames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], now, validityMs: 24 * 3600 * 1000, random: systemRandom,
  });
  return {
    pki,
    serverTls: { certPem: server.certPem, keyPem: server.keyPem, caPem },
    issueDevice: (deviceId) => issueDevice(pki, deviceId),
  };
}

async function issueDevice(pki: TestPki, deviceId: string): Promise<DeviceMaterial> {
  const keys = await generateEd25519KeyPair(systemRandom);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.3': [deviceId] }], keys, signingAlgorithm: ed25519Algorithm });
  const issued = await pki.issuer.issueDeviceCertificate({ csrPem: csr.toString('pem'), deviceId, now: new Date() });
  const pkcs8 = await exportPkcs8Der(keys.privateKey);
  const seed = pkcs8.slice(pkcs8.length - 32);
  return { deviceId, certPem: issued.certificatePem, keyPem: toPem('PRIVATE KEY', pkcs8), seed, publicKey: provider.publicKeyFromSeed(seed), serialHex: issued.serialHex };
}

/** `nowMs`: issue time on the gateway's clock (default the system clock's now). */
export function makeCommand(deviceId: string, options: { id?: string; deviceSeq?: number; ttlMs?: number; seed?: Uint8Array; nowMs?: number } = {}): SignedCommand {
  const issuedAt = options.nowMs ?? Date.now();
  return signCommand({
    command: {
      id: options.id ?? `c_${randomBytes(6).toString('hex')}`, device_id: deviceId, opcode: 'EXEC_PING_KERNEL', args: {},
      issued_at: issuedAt, expires_at: issuedAt + (options.ttlMs ?? 60_000), device_seq: options.deviceSeq ?? 1, issuer: 'cp:test',
    },
    kid: 'cp:test', seed: options.seed ?? cpSeed, provider,
  });
}

export async function appendDeliver(bus: StreamBus, gatewayId: string, command: SignedCommand): Promise<string> {
  return bus.append(gatewayCommandStream(gatewayId), encodeBusEntry('deliver', { command }));
}

/** Reads a stream from the start through its own consumer group and keeps every decoded entry. */
export class StreamReader {
  readonly entries: DecodedBusEntry[] = [];
  readonly #group = `test-${randomBytes(4).toString('hex')}`;
  #ready = false;

  constructor(private readonly bus: StreamBus, private readonly stream: string = streamNames.events) {}

  async poll(): Promise<DecodedBusEntry[]> {
    if (!this.#ready) {
      await this.bus.ensureGroup(this.stream, this.#group, '0');
      this.#ready = true;
    }
    for (let round = 0; round < 100; round++) {
      const batch = await this.bus.readGroup(this.stream, this.#group, 'reader', { count: 500 });
      for (const entry of batch) this.entries.push(decodeBusEntry(entry.fields));
      if (batch.length < 500) break;
    }
    return this.entries;
  }

  /** Polls until `predicate` holds; fails after max(timeoutMs, realTimeWaitMsMin) of real time. */
  async waitFor(predicate: (entries: DecodedBusEntry[]) => boolean, timeoutMs = realTimeWaitMsMin): Promise<DecodedBusEntry[]> {
    const deadline = Date.now() + Math.max(timeoutMs, realTimeWaitMsMin);
    for (;;) {
      if (predicate(await this.poll())) return this.entries;
      if (Date.now() > deadline) throw new Error(`timed out waiting on ${this.stream}: ${JSON.stringify(this.entries.map((e) => [e.kind, (e.data as { event?: string }).event]))}`);
      await delay(20);
    }
  }

  progress(commandId: string): Array<{ event: string; attempt: number }> {
    return this.entries.flatMap((e) => (e.kind === 'command_progress' && e.data.command_id === commandId ? [{ event: e.data.event, attempt: e.data.attempt }] : []));
  }
}

/**
 * How long a real-time wait may last before the test fails. Generous, because a condition that
 * holds ends the wait at once and the machine may be busy with other work: a wait never proves
 * anything about timing (the tests on VirtualDriver do that).
 */
export const realTimeWaitMsMin = 30_000;

/** Polls `check` until it returns a value; fails after max(timeoutMs, realTimeWaitMsMin) of real time. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = realTimeWaitMsMin, what = 'condition'): Promise<T> {
  const limitMs = Math.max(timeoutMs, realTimeWaitMsMin);
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await delay(20);
  }
}

/** Lets promise continuations and the embedded stores' next-tick answers run; no time passes. */
export async function settle(turns = 5): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Drives a gateway on virtual time: time moves only when the test says so, every timer that falls
 * due fires in order with the continuations it starts settled before the next one. What a test
 * proves about timing (a deadline, a bounded number of retries) holds however busy the machine is.
 */
export class VirtualDriver {
  readonly time: VirtualTime;

  constructor(startMs = 1_800_000_000_000, readonly stepMs = 10) {
    this.time = new VirtualTime(startMs);
  }

  /** Runs virtual time to exactly `atMs`, firing what falls due and settling after each timer and at the end. */
  async runTo(atMs: number): Promise<void> {
    await this.time.runUntil(atMs, () => settle());
    await settle();
  }

  /** Moves virtual time forward by `ms`, in steps of `stepMs`, settling after every timer and step. */
  async advance(ms: number): Promise<void> {
    const untilMs = this.time.nowMs() + ms;
    while (this.time.nowMs() < untilMs) {
      await this.time.runUntil(Math.min(untilMs, this.time.nowMs() + this.stepMs), () => settle());
      await settle();
    }
  }

  /** Advances virtual time until `check` returns a value; fails once `virtualMsMax` of virtual time passed. */
  async until<T>(check: () => Promise<T | undefined> | T | undefined, virtualMsMax: number, what: string): Promise<T> {
    const deadlineMs = this.time.nowMs() + virtualMsMax;
    for (;;) {
      await settle();
      const value = await check();
      if (value !== undefined) return value;
      if (this.time.nowMs() >= deadlineMs) throw new Error(`${what}: not within ${virtualMsMax} ms of virtual time`);
      await this.advance(this.stepMs);
    }
  }
}

export interface TestStores { bus: StreamBus; kv: KeyValueStore }

/** Embedded stores; the bus on `time` (default the system clock and timers). */
export function embeddedStores(time?: VirtualTime): TestStores {
  const bus = new MemoryStreamBus({ clock: time ?? systemClock, scheduler: time ?? systemScheduler });
  return { bus, kv: createEmbeddedKeyValueStore({ keyPrefix: `gw-test-${randomBytes(4).toString('hex')}:` }) };
}

/** makeCore's overrides for a gateway on the driver's virtual time. */
export function onVirtualTime(driver: VirtualDriver): Pick<GatewayCoreOptions, 'clock' | 'scheduler'> {
  return { clock: driver.time, scheduler: driver.time };
}

/** A test gateway's options, with every admission check at its default (kv keys). */
export function coreOptions(stores: TestStores): GatewayCoreOptions {
  return {
    gatewayId: 'gw-a', signer: gatewaySigner, provider, stores, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
    commandKeys, heartbeatIntervalMs: 5_000, authTimeoutMs: 2_000, ackTimeoutMs: 1_000, commandReadBlockMs: 50,
  };
}

/**
 * A test gateway that admits every device it has not been told is revoked: these tests issue
 * certificates from a test CA, with no control plane to enroll them. enrollment-check.test.ts
 * covers the default enrollment check (coreOptions).
 */
export function makeCore(stores: TestStores, overrides: Partial<GatewayCoreOptions> = {}): GatewayCore {
  return createGatewayCore({ ...coreOptions(stores), checkEnrollment: () => undefined, ...overrides });
}

/** A started test gateway on virtual time, its stores, a test CA and a reader of its events stream. */
export interface VirtualGateway {
  readonly driver: VirtualDriver;
  readonly gpki: GatewayPki;
  readonly stores: TestStores;
  readonly core: GatewayCore;
  readonly events: StreamReader;
}

/**
 * Registers, in the calling describe, a `before` that starts a gateway on `driver`'s virtual time
 * (makeCore with `overrides`, which may replace the scheduler; its bus wrapped by `wrapBus` when
 * given) and an `after` that stops it and
 * closes its stores. The fields are set once `before` has run.
 */
export function useVirtualGateway(driver: VirtualDriver, overrides: Partial<GatewayCoreOptions>, wrapBus?: (bus: StreamBus) => StreamBus): VirtualGateway {
  const gateway = { driver } as { -readonly [K in keyof VirtualGateway]: VirtualGateway[K] };
  before(async () => {
    gateway.gpki = await makeGatewayPki();
    const raw = embeddedStores(driver.time);
    // The gateway writes through `wrapBus` (a test's failing or recording bus); the events are read from the store itself.
    gateway.stores = wrapBus === undefined ? raw : { kv: raw.kv, bus: wrapBus(raw.bus) };
    gateway.core = makeCore(gateway.stores, { ...onVirtualTime(driver), ...overrides });
    await gateway.core.start();
    gateway.events = new StreamReader(raw.bus);
  });
  after(async () => {
    await gateway.core.stop();
    await gateway.stores.bus.close();
    await gateway.stores.kv.close();
  });
  return gateway;
}

/** A gateway on the system clock behind real TLS listeners (useTlsGatewayServers). */
export interface TlsGatewayServers {
  readonly gpki: GatewayPki;
  readonly core: GatewayCore;
  /** The gateway's embedded stores (its events stream on `bus`). */
  readonly stores: TestStores;
  /** Sockets and WebSockets a test opened: destroyed after the suite, before the servers close. */
  readonly sockets: Array<{ destroy(): void }>;
  /** A server for `core` on a free port of 127.0.0.1 trusting the test CA, with `options` on top; closed after the suite. */
  start(options: Partial<GatewayServerOptions>): Promise<GatewayServer>;
}

/**
 * Registers, in the calling describe, a `before` that starts a gateway (makeCore on embedded
 * stores, a test CA) and an `after` that destroys the sockets the tests kept, closes the servers
 * they started, stops the gateway and closes its stores. The fields are set once `before` has run.
 */
export function useTlsGatewayServers(): TlsGatewayServers {
  const servers: GatewayServer[] = [];
  const fixture = {
    sockets: [] as Array<{ destroy(): void }>,
    async start(options: Partial<GatewayServerOptions>): Promise<GatewayServer> {
      const { gpki, core } = fixture;
      const started = await startGatewayServer({
        core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate], ...options,
      });
      servers.push(started);
      return started;
    },
  } as { -readonly [K in keyof TlsGatewayServers]: TlsGatewayServers[K] };
  before(async () => {
    fixture.gpki = await makeGatewayPki();
    fixture.stores = embeddedStores();
    fixture.core = makeCore(fixture.stores);
    await fixture.core.start();
  });
  after(async () => {
    for (const socket of fixture.sockets) socket.destroy();
    for (const server of servers) await server.close();
    await fixture.core.stop();
    await fixture.stores.bus.close();
    await fixture.stores.kv.close();
  });
  return fixture;
}

/** How a test agent answers COMMAND_DELIVERY: ack+result, nothing, or ack only. */
export type AgentBehaviour = 'complete' | 'silent' | 'ack-only';

/** AgentConnection driven by a test: frames in and out through `transmit`, events recorded. */
export class TestAgent {
  readonly events: AgentEvent[] = [];
  readonly deliveries: Array<{ commandId: string; attempt: number }> = [];
  closed: { code: number; reason: string } | undefined;
  behaviour: AgentBehaviour = 'complete';
  readonly connection: AgentConnection;
  readonly #clock: Clock;
  #transmit: (bytes: Uint8Array) => void = () => undefined;

  /**
   * `gatewayKey`: the key the gateway signs with (default the test gateway's), e.g. a deployment's materials.gatewaySigner.
   * `clock`: the device's clock (default the system clock; a VirtualDriver's time for a gateway on virtual time).
   */
  constructor(
    readonly device: Pick<DeviceMaterial, 'deviceId' | 'seed'>,
    options: { signSeed?: Uint8Array; gatewayKey?: { kid: string; publicKey: Uint8Array }; clock?: Clock; sessionMac?: SessionMacOptions; telemetryBatch?: boolean; telemetryAck?: boolean } = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    const gateway = options.gatewayKey ?? { kid: gatewaySigner.kid, publicKey: gatewayPublicKey };
    this.connection = new AgentConnection({
      deviceId: device.deviceId, signer: { kid: deviceKid(device.deviceId), seed: options.signSeed ?? device.seed, provider },
      resolveGatewayKey: (kid) => (kid === gateway.kid ? gateway.publicKey : undefined), agentVersion: 'test', lastCommandSeq: 0,
      // Offered, as the real agent runtime does: HEARTBEAT and TELEMETRY then carry the session MAC. Absent: every frame is signed.
      ...(options.sessionMac === undefined ? {} : { sessionMac: options.sessionMac }),
      // Asks for TELEMETRY_BATCH (decision 0004, "Batches"); absent: AUTH as before.
      ...(options.telemetryBatch === true ? { telemetryBatch: true } : {}),
      // Offers to take TELEMETRY_ACK (decision 0004, "Acknowledgements"); absent: AUTH as before.
      ...(options.telemetryAck === true ? { telemetryAck: true } : {}),
    });
  }

  attach(transmit: (bytes: Uint8Array) => void): void {
    this.#transmit = transmit;
  }

  onFrame(bytes: Uint8Array): void {
    const events = this.connection.receive(bytes, this.#clock.nowMs());
    this.events.push(...events);
    for (const event of events) {
      if (event.kind !== 'message' || event.message.type !== 'COMMAND_DELIVERY') continue;
      const body = event.message.body as { command: SignedCommand; attempt: number };
      this.deliveries.push({ commandId: body.command.id, attempt: body.attempt });
      if (this.behaviour === 'silent') continue;
      this.connection.sendCommandAck({ command_id: body.command.id, device_seq: body.command.device_seq, stage: 'received' }, this.#clock.nowMs());
      if (this.behaviour === 'complete') {
        const nowMs = this.#clock.nowMs();
        this.connection.sendCommandAck({ command_id: body.command.id, device_seq: body.command.device_seq, stage: 'executing' }, nowMs);
        this.connection.sendCommandResult({ command_id: body.command.id, device_seq: body.command.device_seq, status: 'succeeded', output: { pong: true }, finished_at: nowMs }, nowMs);
      }
    }
    this.flush();
  }

  flush(): void {
    for (const frame of this.connection.takeOutgoing()) this.#transmit(frame);
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.#transmit(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes);
  }

  get ready(): boolean {
    return this.events.some((e) => e.kind === 'ready');
  }

  authError(): string | undefined {
    const event = this.events.find((e) => e.kind === 'auth_error');
    return event?.kind === 'auth_error' ? event.code : undefined;
  }

  errorCodes(): string[] {
    return this.events.flatMap((e) => (e.kind === 'message' && e.message.type === 'ERROR' ? [(e.message.body as { code: string }).code] : []));
  }
}

/** Connects a TestAgent to a core through an in-memory transport (what the simulator does); `extra` adds e.g. certNotAfterMs. */
export function connectInMemory(core: GatewayCore, device: DeviceMaterial, agent = new TestAgent(device), extra: Pick<AcceptConnectionInput, 'certNotAfterMs'> = {}): TestAgent {
  let open = true;
  const input: AcceptConnectionInput = {
    ...extra, deviceId: device.deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
    send: (bytes) => { if (open) queueMicrotask(() => agent.onFrame(bytes)); },
    close: (code, reason) => { open = false; agent.closed = { code, reason }; },
  };
  const handle = core.acceptConnection(input);
  agent.attach((bytes) => { if (open) queueMicrotask(() => handle.receive(bytes)); });
  return agent;
}

/** Connects a TestAgent over a real TLS 1.3 WebSocket with the device's client certificate. */
/** `autoPong: false` makes a half-open peer: it never answers the gateway's liveness probe. */
export async function connectTls(url: string, device: DeviceMaterial, caPem: string, agent = new TestAgent(device), wsOptions: { autoPong?: boolean } = {}): Promise<{ agent: TestAgent; ws: WebSocket }> {
  const ws = new WebSocket(url, { cert: device.certPem, key: device.keyPem, ca: caPem, ...wsOptions });
  agent.attach((bytes) => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes); });
  ws.on('message', (data: Buffer) => agent.onFrame(new Uint8Array(data)));
  ws.on('close', (code, reason) => { agent.closed = { code, reason: reason.toString() }; });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => undefined);
  return { agent, ws };
}

/** The key/value store as a gateway sees Redis: every call refused with STORE_UNAVAILABLE while `down`. */
export function outageKv(kv: KeyValueStore): { kv: KeyValueStore; setDown(down: boolean): void } {
  let down = false;
  const wrapped = new Proxy(kv, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (down && property !== 'close') return Promise.reject(new SdcError('STORE_UNAVAILABLE', 'redis is unreachable (test)'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { kv: wrapped, setDown: (next) => { down = next; } };
}

/**
 * A gateway core on virtual time whose key/value store can be cut (outageKv), over a memory store the
 * test reads directly (never cut) and a memory bus; the calling describe's before/after start and
 * stop it. `core` and `gpki` are set once its before hook has run.
 */
export function outageGatewayFixture(driver: VirtualDriver, options: { keyPrefix: string; gateway?: Partial<GatewayCoreOptions> }): {
  readonly kv: MemoryKeyValueStore; readonly bus: MemoryStreamBus; readonly outage: ReturnType<typeof outageKv>; core: GatewayCore; gpki: GatewayPki;
} {
  const kv = new MemoryKeyValueStore({ clock: driver.time, keyPrefix: `${options.keyPrefix}-${randomBytes(4).toString('hex')}:` });
  const bus = new MemoryStreamBus({ clock: driver.time, scheduler: driver.time });
  const outage = outageKv(kv);
  const fixture = { kv, bus, outage, core: undefined as unknown as GatewayCore, gpki: undefined as unknown as GatewayPki };
  before(async () => {
    fixture.gpki = await makeGatewayPki();
    fixture.core = makeCore({ bus, kv: outage.kv }, { ...onVirtualTime(driver), ackTimeoutMs: 60_000, ...options.gateway });
    await fixture.core.start();
  });
  after(async () => {
    outage.setDown(false);
    await fixture.core.stop();
    await bus.close();
    await kv.close();
  });
  return fixture;
}

/** The reasons of the device's presence offline entries on the events stream, oldest first. */
export async function offlineReasonsOf(bus: StreamBus, deviceId: string): Promise<Array<string | undefined>> {
  const entries = (await bus.range(streamNames.events, { count: 10_000 })).map((entry) => decodeBusEntry(entry.fields));
  return entries.flatMap((e) => (e.kind === 'presence' && e.data.device_id === deviceId && !e.data.online ? [e.data.reason] : []));
}

/** The session id the device's presence key names, or null when there is no key. */
export async function presenceSessionOf(kv: KeyValueStore, deviceId: string): Promise<string | null> {
  const text = await kv.get(kvKeys.presence(deviceId));
  return text === null ? null : (JSON.parse(text) as PresenceRecord).session_id;
}

/**
 * A device that heartbeats on virtual time, as an agent does: first `firstBeatMs` after AUTH_ACK
 * (default one interval), then every `heartbeatIntervalMs`, until the gateway closes it.
 * `onAuthSent` runs when its AUTH goes out (after admission, which reads the store): the moment a
 * test cuts the store to fail the session's `online` write.
 */
export async function connectHeartbeating(input: {
  core: GatewayCore; gpki: GatewayPki; driver: VirtualDriver; deviceId: string; heartbeatIntervalMs: number;
  onAuthSent?: () => void; firstBeatMs?: number;
}): Promise<{ agent: TestAgent; handle: ConnectionHandle; sessionId: string; readyMs: number }> {
  const { core, driver, heartbeatIntervalMs } = input;
  const device = await input.gpki.issueDevice(input.deviceId);
  const agent = new TestAgent(device, { clock: driver.time });
  const handle = core.acceptConnection({
    deviceId: input.deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
    send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
    close: (code, reason) => { agent.closed = { code, reason }; },
  });
  let sent = 0;
  agent.attach((bytes) => {
    if (sent++ === 0) input.onAuthSent?.();
    queueMicrotask(() => handle.receive(bytes));
  });
  await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
  const ready = agent.events.find((e) => e.kind === 'ready');
  if (ready?.kind !== 'ready') throw new Error('AUTH_ACK without a ready event');
  let uptimeMs = 0;
  const beat = () => {
    if (agent.closed !== undefined) return;
    uptimeMs += heartbeatIntervalMs;
    agent.connection.sendHeartbeat({ uptime_ms: uptimeMs, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    driver.time.schedule(heartbeatIntervalMs, beat);
  };
  driver.time.schedule(input.firstBeatMs ?? heartbeatIntervalMs, beat);
  return { agent, handle, sessionId: ready.sessionId, readyMs: driver.time.nowMs() };
}

/** The virtual start of policyBundlePushWorld's clock. */
export const policyWorldNowMs = 1_800_000_000_000;
const policyBundleSeed = new Uint8Array(32).fill(5);

/** A policy bundle for `deviceId` at `version` (the default policy at that revision), issued at `issuedAtMs`, valid 100 s, signed as kid cp-1. */
export function testPolicyBundle(deviceId: string, version: number, issuedAtMs = policyWorldNowMs): SignedPolicyBundle {
  return signPolicyBundle({
    bundle: cutPolicyBundle({ policy: { ...defaultPolicy, revision: version }, version, device: { id: deviceId }, issuedAtMs, validityMs: 100_000 }),
    kid: 'cp-1', seed: policyBundleSeed, provider,
  });
}

/**
 * The parts of a gateway a PolicyBundlePush uses (the key/value store, a clock the test moves,
 * the logger, the events writer) and the push itself: `connected` is the devices held here,
 * `sent` the bundles pushed to them, `requests` the bundle requests published, `reports` the
 * events written. `start` subscribes to the requests and starts the push.
 */
export function policyBundlePushWorld() {
  let clockMs = policyWorldNowMs;
  const kv = new MemoryKeyValueStore({ clock: { nowMs: () => clockMs } });
  const reports: Array<{ kind: BusEntryKind; data: unknown }> = [];
  const context = {
    options: { stores: { kv }, logger: pino({ level: 'silent' }), gatewayId: 'gw-1', scheduler: { cancel: () => undefined } },
    nowMs: () => clockMs,
    // The refresh sweep never fires here (policy-bundle-push.test.ts runs it on virtual time).
    schedule: () => ({ id: 0 }),
    report: async <K extends BusEntryKind>(kind: K, data: BusEntryData<K>) => { reports.push({ kind, data }); },
    traceId: () => 't',
  } as unknown as GatewayContext;
  const sent: Array<{ deviceId: string; version: number }> = [];
  const connected = new Set<string>();
  const push = new PolicyBundlePush({
    context, connectedDevices: () => connected,
    targetOf: (deviceId) => (connected.has(deviceId) ? (signed) => { sent.push({ deviceId, version: signed.bundle.version }); return true; } : undefined),
  });
  const requests: string[] = [];
  return {
    kv, push, sent, connected, requests, reports, context,
    advance(ms: number) { clockMs += ms; },
    async start() {
      await kv.subscribe(policyBundleChannels.requests, (deviceId) => requests.push(deviceId));
      await push.start();
    },
  };
}

/**
 * A bus whose appends to one stream wait, while `held`, until released: a store that answers late
 * on that stream only. `wrap` goes to useVirtualGateway's bus wrapper.
 */
export function holdingAppends(heldStream: string): { wrap: (bus: StreamBus) => StreamBus; hold(): void; release(): void; waiting(): number } {
  let held = false;
  let waiters: Array<() => void> = [];
  const wrap = (bus: StreamBus): StreamBus => new Proxy(bus, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (name !== 'append' && name !== 'appendBatch') return value.bind(target);
      return async (stream: string, ...rest: unknown[]) => {
        if (held && stream === heldStream) await new Promise<void>((resolve) => { waiters.push(resolve); });
        return (value as (...args: unknown[]) => Promise<unknown>).call(target, stream, ...rest);
      };
    },
  });
  return {
    wrap,
    hold: () => { held = true; },
    release: () => {
      held = false;
      const released = waiters;
      waiters = [];
      for (const resolve of released) resolve();
    },
    waiting: () => waiters.length,
  };
}
