// The presence deadline on virtual time: a silent device is reported offline exactly 1.5
// heartbeat intervals after the last frame the gateway heard, never a millisecond before. The
// TLS test in gateway-server.test.ts checks the same path end to end by outcome and order only.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kvKeys } from '../bus-contract/streams.js';
import { settle, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const heartbeatIntervalMs = 400;
/** What the gateway promises: presence lasts 1.5 heartbeat intervals past the last frame heard. */
const silenceMsMax = Math.ceil(heartbeatIntervalMs * 1.5);

describe('gateway presence on virtual time', () => {
  const driver = new VirtualDriver();
  const gw = useVirtualGateway(driver, { heartbeatIntervalMs, ackTimeoutMs: 60_000 });

  /** An in-memory session that records the virtual time of every frame the gateway receives. */
  async function connect(deviceId: string): Promise<{ agent: TestAgent; lastHeardMs: () => number }> {
    const device = await gw.gpki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time });
    let heardMs = Number.NaN;
    const handle = gw.core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => queueMicrotask(() => { heardMs = driver.time.nowMs(); handle.receive(bytes); }));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    return { agent, lastHeardMs: () => heardMs };
  }

  const offlineOf = async (deviceId: string) => {
    await settle();
    await gw.events.poll();
    return gw.events.entries.find((e) => e.kind === 'presence' && e.data.device_id === deviceId && !e.data.online);
  };

  const runTo = (atMs: number) => driver.runTo(atMs);

  it('reports a silent device offline at 1.5 heartbeat intervals after its last frame, not before', async () => {
    const { agent, lastHeardMs } = await connect('dev-silent');
    const deadlineMs = lastHeardMs() + silenceMsMax;
    await runTo(deadlineMs - 1);
    assert.equal(await offlineOf('dev-silent'), undefined, 'offline before the deadline');
    const closeCode = () => agent.closed?.code;
    assert.equal(closeCode(), undefined, 'closed before the deadline');
    await runTo(deadlineMs);
    const offline = await offlineOf('dev-silent');
    assert.ok(offline?.kind === 'presence', 'offline at the deadline');
    assert.equal(offline.data.at_ms, deadlineMs);
    assert.equal(closeCode(), 4000);
    assert.equal(await gw.stores.kv.get(kvKeys.presence('dev-silent')), null);
  });

  it('moves the deadline with every frame heard', async () => {
    const { agent, lastHeardMs } = await connect('dev-beating');
    const firstDeadlineMs = lastHeardMs() + silenceMsMax;
    await runTo(firstDeadlineMs - 100);
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    await settle();
    const deadlineMs = lastHeardMs() + silenceMsMax;
    assert.equal(deadlineMs, firstDeadlineMs - 100 + silenceMsMax, 'the heartbeat was heard when sent');
    await runTo(deadlineMs - 1);
    assert.equal(await offlineOf('dev-beating'), undefined, 'offline before the moved deadline');
    await runTo(deadlineMs);
    const offline = await offlineOf('dev-beating');
    assert.ok(offline?.kind === 'presence');
    assert.equal(offline.data.at_ms, deadlineMs);
  });
});
