// Decision 0004, "Acknowledgements": the gateway sends TELEMETRY_ACK to an agent that offered it,
// only once the frames' bus append succeeded, never past a frame whose append failed, and
// coalesced (at most one per telemetryAckIntervalMs after appends, plus one at a HEARTBEAT's turn).
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { streamNames } from '../bus-contract/streams.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { GatewayCore } from './gateway-core.js';
import { connectInMemory, embeddedStores, makeCore, makeGatewayPki, onVirtualTime, TestAgent, useVirtualGateway, VirtualDriver, type GatewayPki, type TestStores } from './test-support.js';

const metrics = (i: number) => ({ cpu_pct: i % 100, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: i, net_tx_bytes_per_sec: 0 });

/** The telemetry stream's appends, held or refused as the test says; every other append goes through. */
interface Gate { hold: boolean; failNext: number; held: Array<() => void>; appended: number }

function gatedBus(bus: StreamBus, gate: Gate): StreamBus {
  return new Proxy(bus, {
    get(target, name, receiver) {
      if (name === 'append') {
        return (...args: Parameters<StreamBus['append']>) => {
          if (args[0] !== streamNames.telemetry) return target.append(...args);
          if (gate.failNext > 0) {
            gate.failNext -= 1;
            return Promise.reject(new SdcError('STORE_LIMIT', 'telemetry append refused (test)'));
          }
          const write = () => target.append(...args).then((id) => { gate.appended += 1; return id; });
          if (!gate.hold) return write();
          return new Promise<string>((resolve, reject) => { gate.held.push(() => { write().then(resolve, reject); }); });
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('TELEMETRY_ACK from the gateway', () => {
  const driver = new VirtualDriver(1_800_000_000_000);
  const gate: Gate = { hold: false, failNext: 0, held: [], appended: 0 };
  const telemetryAckIntervalMs = 5_000;
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs: 600_000, sessionRecheckIntervalMs: 3_600_000, ackTimeoutMs: 60_000, telemetryAckIntervalMs },
    (bus) => gatedBus(bus, gate));

  /** A ready agent on the gateway; `telemetryAck` offers acks at AUTH. */
  async function connect(deviceId: string, telemetryAck = true) {
    const device = await gw.gpki.issueDevice(deviceId);
    const agent = connectInMemory(gw.core, device, new TestAgent(device, {
      clock: driver.time, sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom }, telemetryAck,
    }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    let prevHash: string | undefined;
    let sampled = 0;
    /** Sends one TELEMETRY (chained); returns its seq. */
    const sample = (): number => {
      const body: MessageBody<'TELEMETRY'> = { sampled_at: driver.time.nowMs(), metrics: metrics(sampled++), ...(prevHash === undefined ? {} : { prev_hash: prevHash }) };
      const seq = agent.connection.sendTelemetry(body, driver.time.nowMs());
      const frames = agent.connection.takeOutgoing();
      prevHash = createHash('sha256').update(frames[frames.length - 1]!).digest('hex');
      for (const frame of frames) agent.sendRaw(frame);
      return seq;
    };
    const heartbeat = (): void => {
      agent.connection.sendHeartbeat({ uptime_ms: driver.time.nowMs() - 1_800_000_000_000, queue_depth: 0 }, driver.time.nowMs());
      agent.flush();
    };
    const acks = (): number[] => agent.events.flatMap((e) => (e.kind === 'telemetry_ack' ? [e.throughSeq] : []));
    return { agent, sample, heartbeat, acks };
  }

  it('is announced to an agent that offers it, and sent only once the append succeeded', async () => {
    const { agent, sample, acks } = await connect('dev-ack-after-append');
    const ready = agent.events.find((e) => e.kind === 'ready');
    assert.equal(ready?.kind === 'ready' ? ready.telemetryAck : undefined, true);
    gate.hold = true;
    const seq = sample();
    await driver.advance(2_000);
    assert.equal(gate.held.length, 1, 'the append is in flight');
    assert.deepEqual(acks(), [], 'nothing acknowledged while the append is not done');
    gate.hold = false;
    for (const release of gate.held.splice(0)) release();
    await driver.advance(100);
    assert.deepEqual(acks(), [seq], 'acknowledged once the bus took it');
    assert.deepEqual(agent.errorCodes(), []);
  });

  it('coalesces: one ack at once, the rest within the interval at the next HEARTBEAT turn, cumulative', async () => {
    const { agent, sample, heartbeat, acks } = await connect('dev-ack-coalesced');
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) {
      seqs.push(sample());
      await driver.advance(100);
    }
    assert.deepEqual(acks(), [seqs[0]], 'the first at once; four more appended within the interval wait');
    heartbeat();
    await driver.advance(100);
    assert.deepEqual(acks(), [seqs[0], seqs[4]], 'the HEARTBEAT turn acknowledges all four with one frame');
    heartbeat();
    await driver.advance(100);
    assert.deepEqual(acks(), [seqs[0], seqs[4]], 'nothing new: no ack');
    await driver.advance(telemetryAckIntervalMs);
    const later = sample();
    await driver.advance(100);
    assert.deepEqual(acks(), [seqs[0], seqs[4], later], 'the interval passed: the next append is acknowledged at once');
    assert.deepEqual(agent.errorCodes(), []);
    const ackFrames = agent.events.filter((e) => e.kind === 'telemetry_ack').length;
    assert.equal(ackFrames, 3, '3 acks for 6 telemetry frames');
  });

  it('never acknowledges a frame whose append failed, nor any after it: the session is closed GATEWAY_OVERLOADED', async () => {
    const { agent, sample, heartbeat, acks } = await connect('dev-ack-append-failed');
    const first = sample();
    await driver.advance(100);
    assert.deepEqual(acks(), [first]);
    gate.failNext = 1;
    sample();
    sample();
    await driver.advance(100);
    heartbeat();
    await driver.advance(6_000);
    assert.deepEqual(acks(), [first], 'the failed frame and the one after it are not acknowledged');
    assert.equal(agent.closed?.reason, 'GATEWAY_OVERLOADED');
  });

  it('sends nothing to an agent that did not offer acks: AUTH_ACK as before, no TELEMETRY_ACK', async () => {
    const { agent, sample, heartbeat } = await connect('dev-ack-not-offered', false);
    const ready = agent.events.find((e) => e.kind === 'ready');
    assert.equal(ready?.kind === 'ready' ? ready.telemetryAck : undefined, undefined);
    const before = gate.appended;
    sample();
    await driver.advance(100);
    heartbeat();
    await driver.advance(100);
    assert.equal(gate.appended, before + 1, 'appended as before');
    const types = agent.events.flatMap((e) => (e.kind === 'message' ? [e.message.type] : []));
    assert.ok(!types.includes('TELEMETRY_ACK'));
    assert.equal(agent.events.filter((e) => e.kind === 'telemetry_ack').length, 0);
  });
});

describe('TELEMETRY_ACK after a telemetry frame lost before its append', () => {
  const driver = new VirtualDriver(1_800_000_000_000);
  let stores: TestStores;
  let core: GatewayCore;
  let pki: GatewayPki;
  /** While set, presence writes are refused as the refresh window refuses when full (not a store error: the frame's task fails). */
  let refuseRefresh = false;
  before(async () => {
    const raw = embeddedStores(driver.time);
    const kv = new Proxy(raw.kv, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (refuseRefresh && name === 'compareAndSet') return Promise.reject(new SdcError('GATEWAY_OVERLOADED', 'presence refreshes already wait (test)'));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as KeyValueStore;
    stores = { bus: raw.bus, kv };
    // A refresh due with telemetry every 2 s (a quarter of the heartbeat interval).
    core = makeCore(stores, { ...onVirtualTime(driver), heartbeatIntervalMs: 8_000, sessionRecheckIntervalMs: 3_600_000, ackTimeoutMs: 60_000, telemetryAckIntervalMs: 1 });
    await core.start();
    pki = await makeGatewayPki();
  });
  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('never acknowledges past a frame whose task failed before the append: the session is closed GATEWAY_OVERLOADED', async () => {
    const device = await pki.issueDevice('dev-ack-refresh-refused');
    const agent = connectInMemory(core, device, new TestAgent(device, { clock: driver.time, sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom }, telemetryAck: true }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    let prevHash: string | undefined;
    const sample = (): number => {
      const body: MessageBody<'TELEMETRY'> = { sampled_at: driver.time.nowMs(), metrics: metrics(1), ...(prevHash === undefined ? {} : { prev_hash: prevHash }) };
      const seq = agent.connection.sendTelemetry(body, driver.time.nowMs());
      const frames = agent.connection.takeOutgoing();
      prevHash = createHash('sha256').update(frames[frames.length - 1]!).digest('hex');
      for (const frame of frames) agent.sendRaw(frame);
      return seq;
    };
    const acks = (): number[] => agent.events.flatMap((e) => (e.kind === 'telemetry_ack' ? [e.throughSeq] : []));
    const first = sample();
    await driver.advance(100);
    assert.deepEqual(acks(), [first]);
    // A refresh is due with the next frame: refused, so that frame is never appended.
    await driver.advance(2_500);
    refuseRefresh = true;
    sample();
    await driver.advance(50);
    refuseRefresh = false;
    // The next frame has no refresh due and would be appended; no ack may cover the lost one.
    sample();
    await driver.advance(2_000);
    assert.deepEqual(acks(), [first]);
    assert.equal(agent.closed?.reason, 'GATEWAY_OVERLOADED');
  });
});
