// A deployed gateway (presenceRefreshWindowMs > 0, telemetry batched as startDeployment sets it) writes the telemetry it forwards when the
// presence refresh window closes, with the refreshes, not one write per sample at once
// (append-batcher.ts; docs/benchmarks.md, 2026-12-04 morning). On virtual time: the samples of
// two sessions sent 30 ms apart reach the stream in one append, when the next window closes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StreamBus } from '../stores/bus/bus-port.js';
import { streamNames } from '../bus-contract/streams.js';
import { settle, TestAgent, useVirtualGateway, VirtualDriver, type VirtualGateway } from './test-support.js';

const heartbeatIntervalMs = 1_000;
const windowMs = 100;
const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };

/** The bus as the gateway sees it, telling `onTelemetry` the entries of every telemetry append as it is called. */
const recordingTelemetry = (onTelemetry: (entries: ReadonlyArray<Record<string, string>>) => void) => (bus: StreamBus): StreamBus => new Proxy(bus, {
  get(target, name, receiver) {
    const value: unknown = Reflect.get(target, name, receiver);
    if (typeof value !== 'function') return value;
    return (...args: unknown[]) => {
      if ((name === 'append' || name === 'appendBatch') && args[0] === streamNames.telemetry) {
        onTelemetry(name === 'append' ? [args[1] as Record<string, string>] : args[1] as Array<Record<string, string>>);
      }
      return (value as (...a: unknown[]) => unknown).apply(target, args);
    };
  },
});

/** A test agent of a new device, authenticated on the virtual gateway. */
async function connect(gw: VirtualGateway, driver: VirtualDriver, deviceId: string): Promise<TestAgent> {
  const device = await gw.gpki.issueDevice(deviceId);
  const agent = new TestAgent(device, { clock: driver.time });
  const handle = gw.core.acceptConnection({
    deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
    send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
    close: (code, reason) => { agent.closed = { code, reason }; },
  });
  agent.attach((bytes) => queueMicrotask(() => handle.receive(bytes)));
  await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
  return agent;
}

describe('telemetry written with the presence refresh window', () => {
  const driver = new VirtualDriver();
  /** Telemetry appends as the bus saw them: virtual time and entries per call. */
  const writes: Array<{ atMs: number; entries: number }> = [];
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs, presenceRefreshWindowMs: windowMs, telemetryBatchEntriesMax: 64, ackTimeoutMs: 60_000 },
    recordingTelemetry((entries) => writes.push({ atMs: driver.time.nowMs(), entries: entries.length })));

  const sample = async (agent: TestAgent) => {
    agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
    agent.flush();
    await settle();
  };

  const beat = async (agent: TestAgent) => {
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    await settle();
  };

  it('joins two sessions\' samples into one append, written when the next presence window closes', async () => {
    const a = await connect(gw, driver, 'dev-tw-a');
    const b = await connect(gw, driver, 'dev-tw-b');
    const c = await connect(gw, driver, 'dev-tw-c');
    // Past every AUTH write's window, so the next window opens with a's heartbeat.
    await driver.runTo(driver.time.nowMs() + 500);
    writes.length = 0;
    const t0 = driver.time.nowMs();
    // Window 1 (t0 to t0 + 100): a's heartbeat and b's sample refresh presence; a's sample waits behind a's heartbeat.
    await beat(a);
    await sample(a);
    await driver.runTo(t0 + 30);
    await sample(b);
    // Window 2 (t0 + 120 to t0 + 220): c's heartbeat. The samples are forwarded once window 1's
    // refreshes are answered (t0 + 100), then wait for the next window to close.
    await driver.runTo(t0 + 120);
    await beat(c);
    await driver.runTo(t0 + 219);
    assert.deepEqual(writes, [], 'no telemetry written before the next window closes');
    await driver.runTo(t0 + 220);
    await settle();
    assert.deepEqual(writes, [{ atMs: t0 + 220, entries: 2 }], 'one append of both, with window 2\'s refreshes');
    const stored = await gw.stores.bus.range(streamNames.telemetry, { count: 10 });
    // Each session's frames stay in order (its tasks run one after another); across sessions no order is promised.
    assert.deepEqual(stored.map((e) => (JSON.parse(e.fields['data'] ?? '{}') as { device_id?: string }).device_id).sort(), ['dev-tw-a', 'dev-tw-b']);
  });

  it('with no window closing, waits at most two windows after the first sample was forwarded', async () => {
    const a = await connect(gw, driver, 'dev-tw-d');
    await driver.runTo(driver.time.nowMs() + 500);
    writes.length = 0;
    const t0 = driver.time.nowMs();
    await beat(a);
    await sample(a);
    // Forwarded when window 1's refresh is answered (t0 + 100); nothing else opens a window.
    await driver.runTo(t0 + 299);
    assert.deepEqual(writes, []);
    await driver.runTo(t0 + 300);
    await settle();
    assert.deepEqual(writes, [{ atMs: t0 + 300, entries: 1 }]);
  });
});

// A stop must not wait for a window's timer: on real time the timers are unref'd, so a stop that
// nothing else keeps alive ended the process with the close work pending (the e2e suites' teardown
// failed "Promise resolution is still pending but the event loop has already resolved").
describe('a stop with telemetry waiting for the presence window', () => {
  const driver = new VirtualDriver();
  const written: string[] = [];
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs, presenceRefreshWindowMs: windowMs, telemetryBatchEntriesMax: 64, ackTimeoutMs: 60_000 },
    recordingTelemetry((entries) => written.push(...entries.map((fields) => fields['data'] ?? ''))));

  it('writes what waits and ends without virtual time moving on', async () => {
    const agent = await connect(gw, driver, 'dev-tw-stop');
    await driver.runTo(driver.time.nowMs() + 500);
    written.length = 0;
    // A heartbeat and a sample: the sample waits behind the heartbeat's refresh, which waits for the window.
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
    agent.flush();
    await settle();
    let stopped = false;
    const stopping = gw.core.stop().then(() => { stopped = true; });
    await settle(40);
    assert.equal(stopped, true, 'stop ended without a window timer firing');
    await stopping;
    assert.equal(written.length, 1, 'the waiting sample was written at the stop');
    assert.match(written[0] ?? '', /dev-tw-stop/);
  });
});
