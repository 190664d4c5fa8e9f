// What one frame of a held session costs the gateway in store calls and in Ed25519, counted on
// virtual time (issue 15: the gateway's CPU per frame in steady state). On Redis every key/value
// call is a command on one connection; calls issued in the same turn go out in one pipelined
// write (ioredis autopipelining), calls issued one after the other's reply take a write and a
// round trip each. So the tests record, for every call, which calls were still in flight when it
// was issued.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kvKeys, streamNames } from '../bus-contract/streams.js';
import type { Ed25519Provider } from '../../core/ports/ports.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { closeCodes } from './close-codes.js';
import type { GatewayCore, GatewayCoreOptions } from './gateway-core.js';
import { presenceTtlMs } from './presence.js';
import {
  embeddedStores, makeCore, makeGatewayPki, onVirtualTime, provider, StreamReader, TestAgent, VirtualDriver, type DeviceMaterial, type GatewayPki, type TestStores,
} from './test-support.js';

const heartbeatIntervalMs = 4_000;
const sessionRecheckIntervalMs = 1_000;
const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };

interface KvCall {
  readonly call: string;
  /** Virtual time of the call. */
  readonly atMs: number;
  /** The TTL a write asked for. */
  readonly ttlMs: number | undefined;
  /** The calls issued earlier and not yet answered when this one was issued. */
  readonly inFlightAtIssue: readonly string[];
}

/** The store, with every call recorded (`method key`) and what was in flight when it was issued. */
function recordingKv(kv: KeyValueStore, nowMs: () => number): { kv: KeyValueStore; calls: KvCall[] } {
  const calls: KvCall[] = [];
  const inFlight = new Set<string>();
  const wrapped = new Proxy(kv, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function' || name === 'subscribe' || name === 'close') return value;
      return (...args: unknown[]) => {
        const call = `${String(name)} ${String(args[0])}`;
        const options = args.find((a): a is { ttlMs?: number } => typeof a === 'object' && a !== null);
        calls.push({ call, atMs: nowMs(), ttlMs: options?.ttlMs, inFlightAtIssue: [...inFlight] });
        inFlight.add(call);
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(result instanceof Promise)) {
          inFlight.delete(call);
          return result;
        }
        return result.finally(() => inFlight.delete(call));
      };
    },
  });
  return { kv: wrapped, calls };
}

/** The gateway's Ed25519 provider, with its signs and verifies counted. */
function countingProvider(inner: Ed25519Provider): Ed25519Provider & { counts: { sign: number; verify: number } } {
  const counts = { sign: 0, verify: 0 };
  return {
    name: `counting ${inner.name}`, counts,
    publicKeyFromSeed: (seed) => inner.publicKeyFromSeed(seed),
    sign: (seed, message) => { counts.sign += 1; return inner.sign(seed, message); },
    verify: (publicKey, message, signature) => { counts.verify += 1; return inner.verify(publicKey, message, signature); },
  };
}

/** A started gateway on `driver`'s virtual time whose key/value calls and Ed25519 calls are recorded. */
function useRecordedGateway(driver: VirtualDriver, overrides: Partial<GatewayCoreOptions>) {
  const gateway = {} as {
    gpki: GatewayPki; stores: TestStores; calls: KvCall[]; core: GatewayCore; telemetry: StreamReader; provider: ReturnType<typeof countingProvider>;
  };
  before(async () => {
    gateway.gpki = await makeGatewayPki();
    const raw = embeddedStores(driver.time);
    const recorded = recordingKv(raw.kv, () => driver.time.nowMs());
    gateway.calls = recorded.calls;
    gateway.stores = { bus: raw.bus, kv: recorded.kv };
    gateway.provider = countingProvider(provider);
    gateway.core = makeCore(gateway.stores, { ...onVirtualTime(driver), heartbeatIntervalMs, sessionRecheckIntervalMs, ackTimeoutMs: 60_000, provider: gateway.provider, ...overrides });
    await gateway.core.start();
    gateway.telemetry = new StreamReader(raw.bus, streamNames.telemetry);
  });
  after(async () => {
    await gateway.core.stop();
    await gateway.stores.bus.close();
    await gateway.stores.kv.close();
  });

  /** A ready session that offered the session MAC, as the real agent runtime does. */
  async function connect(deviceId: string): Promise<{ agent: TestAgent; device: DeviceMaterial }> {
    const device = await gateway.gpki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time, sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom } });
    const handle = gateway.core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => queueMicrotask(() => handle.receive(bytes)));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    assert.equal(agent.connection.sessionMacAgreed, true, 'the session MAC is agreed');
    await driver.advance(200);
    return { agent, device };
  }
  /** The key/value calls made while `act` and what it started ran (virtual time moved by `advanceMs`). */
  async function callsDuring(act: () => void, advanceMs = 50): Promise<KvCall[]> {
    const from = gateway.calls.length;
    act();
    await driver.advance(advanceMs);
    return gateway.calls.slice(from);
  }
  return { gateway, connect, callsDuring };
}

const heartbeat = (agent: TestAgent, driver: VirtualDriver) => {
  agent.connection.sendHeartbeat({ uptime_ms: driver.time.nowMs(), queue_depth: 0 }, driver.time.nowMs());
  agent.flush();
};
const sendTelemetry = (agent: TestAgent, driver: VirtualDriver) => {
  agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
  agent.flush();
};

describe('gateway store calls and Ed25519 per frame of a held session', () => {
  const driver = new VirtualDriver();
  const { gateway: gw, connect, callsDuring } = useRecordedGateway(driver, {});
  const heartbeatOf = (agent: TestAgent) => heartbeat(agent, driver);
  const telemetryOf = (agent: TestAgent) => sendTelemetry(agent, driver);

  it('a heartbeat costs one key/value call (its presence refresh) and no Ed25519 at all', async () => {
    const { agent, device } = await connect('dev-steady');
    const echoesBefore = agent.events.filter((e) => e.kind === 'message' && e.message.type === 'HEARTBEAT').length;
    const before = { ...gw.provider.counts };
    const made = await callsDuring(() => heartbeatOf(agent));
    assert.deepEqual(made.map((c) => c.call), [`compareAndSet ${kvKeys.presence(device.deviceId)}`]);
    await callsDuring(() => telemetryOf(agent));
    await callsDuring(() => heartbeatOf(agent));
    // MAC'd both ways: the device's frames are not verified with Ed25519, the echoes not signed.
    assert.deepEqual(gw.provider.counts, before, 'no Ed25519 sign or verify for MAC\'d HEARTBEAT and TELEMETRY');
    assert.equal(agent.events.filter((e) => e.kind === 'message' && e.message.type === 'HEARTBEAT').length, echoesBefore + 2, 'both heartbeats echoed');
    assert.equal(agent.closed, undefined);
  });

  it('a due revocation re-check goes out with the presence refresh, not after its reply', async () => {
    const { agent, device } = await connect('dev-recheck');
    await driver.advance(sessionRecheckIntervalMs);
    const made = await callsDuring(() => heartbeatOf(agent));
    const presence = `compareAndSet ${kvKeys.presence(device.deviceId)}`;
    const recheck = `get ${kvKeys.revoked(normalizeSerialHex(device.serialHex))}`;
    assert.deepEqual(made.map((c) => c.call), [presence, recheck]);
    // Issued while the refresh was still out: one pipelined write on Redis instead of two round trips.
    assert.deepEqual(made[1]!.inFlightAtIssue, [presence]);
    // Done: the next frame within the interval checks nothing.
    assert.deepEqual((await callsDuring(() => heartbeatOf(agent))).map((c) => c.call), [presence]);
    assert.equal(agent.closed, undefined);
  });

  it('a session found revoked by the re-check is closed and its frame not forwarded', async () => {
    const { agent, device } = await connect('dev-revoked-quietly');
    await gw.stores.kv.set(kvKeys.revoked(normalizeSerialHex(device.serialHex)), '1');
    await driver.advance(sessionRecheckIntervalMs);
    await callsDuring(() => telemetryOf(agent));
    assert.deepEqual(agent.closed, { code: closeCodes.revoked, reason: 'TRUST_CERT_REVOKED' });
    await gw.telemetry.poll();
    assert.equal(gw.telemetry.entries.filter((e) => e.kind === 'telemetry' && e.data.device_id === device.deviceId).length, 0, 'nothing forwarded for the revoked session');
  });

  it('a session whose presence key names another session closes as replaced, even with a re-check due, and forwards nothing', async () => {
    const { agent, device } = await connect('dev-replaced');
    await gw.stores.kv.set(kvKeys.presence(device.deviceId), JSON.stringify({ gateway_id: 'gw-other', session_id: 's_newer', since_ms: driver.time.nowMs() }));
    await driver.advance(sessionRecheckIntervalMs);
    await callsDuring(() => telemetryOf(agent));
    assert.deepEqual(agent.closed, { code: closeCodes.replaced, reason: 'GATEWAY_SESSION_REPLACED' });
    await gw.telemetry.poll();
    assert.equal(gw.telemetry.entries.filter((e) => e.kind === 'telemetry' && e.data.device_id === device.deviceId).length, 0);
  });
});

describe('gateway presence refreshes in a window (presenceRefreshWindowMs)', () => {
  const driver = new VirtualDriver();
  const windowMs = 100;
  const { gateway: gw, connect, callsDuring } = useRecordedGateway(driver, { presenceRefreshWindowMs: windowMs, sessionRecheckIntervalMs: 600_000 });

  it('sends the heartbeats\' and telemetry\'s refreshes of several sessions within the window together, each key expiring when it would have', async () => {
    const sessions = [await connect('dev-window-a'), await connect('dev-window-b'), await connect('dev-window-c')];
    // Past heartbeat/4 since their AUTH: a TELEMETRY frame refreshes too.
    await driver.advance(heartbeatIntervalMs / 4);
    const from = gw.calls.length;
    heartbeat(sessions[0]!.agent, driver);
    await driver.advance(30);
    sendTelemetry(sessions[1]!.agent, driver);
    await driver.advance(30);
    heartbeat(sessions[2]!.agent, driver);
    await driver.advance(300);
    const made = gw.calls.slice(from);
    const refreshes = made.filter((c) => c.call.startsWith('compareAndSet '));
    assert.deepEqual(refreshes.map((c) => c.call), sessions.map((s) => `compareAndSet ${kvKeys.presence(s.device.deviceId)}`));
    // All three when the window that the first opened closed, in one synchronous step (one pipelined write on Redis).
    const firstHeardMs = refreshes[0]!.atMs - windowMs;
    assert.deepEqual(refreshes.map((c) => c.atMs - firstHeardMs), [windowMs, windowMs, windowMs]);
    assert.deepEqual(refreshes.map((c) => c.inFlightAtIssue.length), [0, 1, 2]);
    // The TTL written is what is left of 1.5 intervals since each frame was heard: the expiry instant is unchanged.
    const ttlMs = presenceTtlMs(heartbeatIntervalMs);
    assert.deepEqual(refreshes.map((c) => c.ttlMs), [ttlMs - windowMs, ttlMs - windowMs + 30, ttlMs - windowMs + 60]);
    await gw.telemetry.poll();
    assert.equal(gw.telemetry.entries.filter((e) => e.kind === 'telemetry' && e.data.device_id === sessions[1]!.device.deviceId).length, 1, 'the telemetry forwarded after its refresh');
    for (const { agent } of sessions) assert.equal(agent.closed, undefined);
  });

  it('does not hold up a frame on a command\'s path: an ALERT\'s refresh goes out at once', async () => {
    const { agent, device } = await connect('dev-window-alert');
    await driver.advance(heartbeatIntervalMs / 4);
    const startMs = driver.time.nowMs();
    const made = await callsDuring(() => {
      agent.connection.sendAlert({ severity: 'info', kind: 'test', message: 'm' }, driver.time.nowMs());
      agent.flush();
    });
    const refresh = made.find((c) => c.call === `compareAndSet ${kvKeys.presence(device.deviceId)}`);
    // Sent in the step the frame arrived in; a HEARTBEAT's would wait windowMs.
    assert.ok(refresh !== undefined && refresh.atMs - startMs < windowMs, `refresh at +${refresh === undefined ? '?' : refresh.atMs - startMs} ms`);
    assert.equal(refresh?.ttlMs, presenceTtlMs(heartbeatIntervalMs));
  });

  it('refuses a window that is not below a quarter of the heartbeat interval', () => {
    assert.throws(() => makeCore(gw.stores, { heartbeatIntervalMs: 400, presenceRefreshWindowMs: 100 }), { code: 'GATEWAY_INVALID_ARGUMENT' });
    assert.throws(() => makeCore(gw.stores, { presenceRefreshWindowMs: -1 }), { code: 'GATEWAY_INVALID_ARGUMENT' });
  });
});

describe('gateway re-checks with the presence refresh window (presenceRefreshWindowMs)', () => {
  const driver = new VirtualDriver();
  const windowMs = 100;
  const { gateway: gw, connect } = useRecordedGateway(driver, { presenceRefreshWindowMs: windowMs });

  it('a due re-check of a heartbeat goes out when the window closes, in the same step as the refreshes (window-gate.ts)', async () => {
    const a = await connect('dev-window-recheck-a');
    const b = await connect('dev-window-recheck-b');
    await driver.advance(sessionRecheckIntervalMs);
    const from = gw.calls.length;
    heartbeat(a.agent, driver);
    await driver.advance(40);
    heartbeat(b.agent, driver);
    await driver.advance(300);
    const made = gw.calls.slice(from);
    const presence = (d: DeviceMaterial) => `compareAndSet ${kvKeys.presence(d.deviceId)}`;
    const recheck = (d: DeviceMaterial) => `get ${kvKeys.revoked(normalizeSerialHex(d.serialHex))}`;
    // Both re-checks first (released as the window closes), then both refreshes: four calls, one virtual instant, none answered before the last was issued.
    assert.deepEqual(made.map((c) => c.call), [recheck(a.device), recheck(b.device), presence(a.device), presence(b.device)]);
    assert.equal(new Set(made.map((c) => c.atMs)).size, 1, 'all when the window closed');
    assert.deepEqual(made.map((c) => c.inFlightAtIssue.length), [0, 1, 2, 3]);
    assert.equal(a.agent.closed, undefined);
    assert.equal(b.agent.closed, undefined);
  });
});
