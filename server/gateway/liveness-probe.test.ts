// The active liveness probe (issue 12, TRMM #1348) on virtual time: a session silent for a
// heartbeat interval plus the grace gets a ping; a half-open peer (the ping goes nowhere) is
// closed and reported offline exactly heartbeat + grace + probe timeout after its last frame,
// never a millisecond before; a quiet but healthy peer answers every ping and stays online, its
// presence key kept alive by the pongs. The TLS end (a real ws client with autoPong off) is in
// liveness-probe-tls.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { kvKeys } from '../bus-contract/streams.js';
import { probeUnansweredReason, type GatewayCore } from './gateway-core.js';
import { checkProbeOptions, LivenessProbe, probeStateInitial } from './liveness-probe.js';
import {
  embeddedStores, makeCore, makeGatewayPki, onVirtualTime, settle, StreamReader, TestAgent, VirtualDriver, type GatewayPki, type TestStores,
} from './test-support.js';

const heartbeatIntervalMs = 400;
const probeGraceMs = 50;
const probeTimeoutMs = 100;
/** The stated bound (docs/gateway.md): under the 600 ms silence deadline, so the probe is what decides. */
const boundMs = heartbeatIntervalMs + probeGraceMs + probeTimeoutMs;

describe('liveness probe on virtual time', () => {
  const driver = new VirtualDriver();
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  let events: StreamReader;

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores(driver.time);
    core = makeCore(stores, { ...onVirtualTime(driver), heartbeatIntervalMs, probeGraceMs, probeTimeoutMs, ackTimeoutMs: 60_000 });
    await core.start();
    events = new StreamReader(stores.bus);
  });

  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  /** An in-memory session whose transport can ping; `answering` says whether the peer's pong comes back. */
  async function connect(deviceId: string): Promise<{ agent: TestAgent; lastHeardMs: () => number; pingsAtMs: number[]; peer: { answering: boolean } }> {
    const device = await gpki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time });
    let heardMs = Number.NaN;
    const pingsAtMs: number[] = [];
    const peer = { answering: false };
    const handle = core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
      ping: () => {
        pingsAtMs.push(driver.time.nowMs());
        if (peer.answering) queueMicrotask(() => handle.pong?.());
      },
    });
    agent.attach((bytes) => queueMicrotask(() => { heardMs = driver.time.nowMs(); handle.receive(bytes); }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    return { agent, lastHeardMs: () => heardMs, pingsAtMs, peer };
  }

  const offlineOf = async (deviceId: string) => {
    await settle();
    await events.poll();
    return events.entries.find((e) => e.kind === 'presence' && e.data.device_id === deviceId && !e.data.online);
  };

  const runTo = (atMs: number) => driver.runTo(atMs);

  it('pings a half-open peer at heartbeat + grace and closes it at heartbeat + grace + probe timeout, not before', async () => {
    const { agent, lastHeardMs, pingsAtMs } = await connect('dev-half-open');
    const lastMs = lastHeardMs();
    await runTo(lastMs + heartbeatIntervalMs + probeGraceMs - 1);
    assert.deepEqual(pingsAtMs, [], 'no probe while the heartbeat is not late by the grace');
    await runTo(lastMs + heartbeatIntervalMs + probeGraceMs);
    assert.deepEqual(pingsAtMs, [lastMs + heartbeatIntervalMs + probeGraceMs]);
    await runTo(lastMs + boundMs - 1);
    assert.equal(await offlineOf('dev-half-open'), undefined, 'offline before the probe timed out');
    assert.equal(agent.closed, undefined);
    await runTo(lastMs + boundMs);
    const offline = await offlineOf('dev-half-open');
    assert.ok(offline?.kind === 'presence', 'offline when the probe timed out');
    assert.equal(offline.data.at_ms, lastMs + boundMs);
    assert.equal(offline.data.reason, probeUnansweredReason);
    assert.deepEqual(agent.closed, { code: 4000, reason: probeUnansweredReason });
    assert.equal(await stores.kv.get(kvKeys.presence('dev-half-open')), null);
  });

  it('keeps a quiet peer that answers every ping online (presence key alive) for many intervals; when it stops answering, it goes within the bound', async () => {
    const { agent, lastHeardMs, pingsAtMs, peer } = await connect('dev-quiet');
    peer.answering = true;
    const lastMs = lastHeardMs();
    await runTo(lastMs + 10 * heartbeatIntervalMs);
    assert.equal(await offlineOf('dev-quiet'), undefined, 'a device that answers stays online');
    assert.equal(agent.closed, undefined);
    assert.ok(pingsAtMs.length >= 8, `probed every heartbeat + grace (${pingsAtMs.length} pings)`);
    assert.notEqual(await stores.kv.get(kvKeys.presence('dev-quiet')), null, 'the pongs kept the presence key');
    assert.equal(lastHeardMs(), lastMs, 'no frame was sent: only pongs');
    peer.answering = false;
    const lastPingMs = pingsAtMs.at(-1)!;
    // Its last sign of life is the pong to lastPingMs (answered in the same instant on virtual time).
    await runTo(lastPingMs + boundMs - 1);
    assert.equal(await offlineOf('dev-quiet'), undefined);
    await runTo(lastPingMs + boundMs);
    const offline = await offlineOf('dev-quiet');
    assert.ok(offline?.kind === 'presence');
    assert.equal(offline.data.at_ms, lastPingMs + boundMs);
  });

  it('a frame answers an outstanding probe as well as a pong does', async () => {
    const { agent, lastHeardMs, pingsAtMs } = await connect('dev-late-beat');
    const lastMs = lastHeardMs();
    await runTo(lastMs + heartbeatIntervalMs + probeGraceMs);
    assert.equal(pingsAtMs.length, 1);
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    await settle();
    await runTo(lastMs + boundMs + 10);
    assert.equal(await offlineOf('dev-late-beat'), undefined, 'the late heartbeat answered the probe');
    assert.equal(agent.closed, undefined);
  });
});

describe('liveness probe options', () => {
  it('refuses a grace and timeout that do not fit in half a heartbeat interval, and negative values', () => {
    const refused = (o: { heartbeatIntervalMs: number; probeGraceMs: number; probeTimeoutMs: number }) => {
      assert.throws(() => checkProbeOptions(o), (error: unknown) => SdcError.is(error, 'GATEWAY_INVALID_ARGUMENT'));
    };
    refused({ heartbeatIntervalMs: 400, probeGraceMs: 150, probeTimeoutMs: 51 });
    refused({ heartbeatIntervalMs: 400, probeGraceMs: -1, probeTimeoutMs: 10 });
    refused({ heartbeatIntervalMs: 400, probeGraceMs: 10, probeTimeoutMs: 0 });
    assert.throws(() => makeCore(embeddedStores(), { heartbeatIntervalMs: 400, probeGraceMs: 300 }), (error: unknown) => SdcError.is(error, 'GATEWAY_INVALID_ARGUMENT'));
    checkProbeOptions({ heartbeatIntervalMs: 400, probeGraceMs: 150, probeTimeoutMs: 50 });
    assert.equal(new LivenessProbe({ heartbeatIntervalMs: 10_000, probeGraceMs: 2_500, probeTimeoutMs: 2_500 }).boundMs, 15_000);
  });

  it('an unsolicited pong counts for nothing', () => {
    const probe = new LivenessProbe({ heartbeatIntervalMs: 400, probeGraceMs: 50, probeTimeoutMs: 100 });
    const session = { ...probeStateInitial };
    assert.equal(probe.pong(session, 1_000), false);
    // Last frame at 0 (deadline 600): the probe is due at 450 whatever pongs came unasked.
    assert.equal(probe.deadlineMs(session, 600), 450);
  });

  it('keeps a session\'s probe state in the session itself, not in an entry beside it (memory per session)', () => {
    const probe = new LivenessProbe({ heartbeatIntervalMs: 400, probeGraceMs: 50, probeTimeoutMs: 100 });
    const session = { ...probeStateInitial };
    let pings = 0;
    // Last frame at 0 (deadline 600): the ping is due at 450.
    assert.equal(probe.step(session, 600, 450, () => { pings += 1; }), 'wait');
    assert.equal(pings, 1);
    assert.equal(session.probeSentMs, 450);
    assert.equal(probe.pong(session, 470), true);
    assert.deepEqual(session, { probeLastPongMs: 470, probeSentMs: undefined });
    assert.ok(Object.isFrozen(probeStateInitial));
  });
});
