// The session timer is lazy (gateway-core.ts #armTimer): a frame that moves the session's deadline
// later leaves the timer as it is, and a timer that fires before the deadline waits for the rest.
// What must not change: the session is judged at exactly its deadline, 1.5 heartbeat intervals
// after the last frame heard (presence-timeout.test.ts), however many frames moved it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { settle, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const heartbeatIntervalMs = 400;
const silenceMsMax = Math.ceil(heartbeatIntervalMs * 1.5);

/** The virtual scheduler, counting the timers armed and cancelled. */
class CountingScheduler implements Scheduler {
  scheduled = 0;
  cancelled = 0;
  constructor(private readonly inner: Scheduler) {}
  schedule(delayMs: number, callback: () => void): TimerHandle {
    this.scheduled += 1;
    return this.inner.schedule(delayMs, callback);
  }
  cancel(handle: TimerHandle): void {
    this.cancelled += 1;
    this.inner.cancel(handle);
  }
}

describe('lazy session deadline on virtual time', () => {
  const driver = new VirtualDriver();
  const scheduler = new CountingScheduler(driver.time);
  const gw = useVirtualGateway(driver, { scheduler, heartbeatIntervalMs, ackTimeoutMs: 60_000 });

  async function connect(deviceId: string) {
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
    const beat = async () => {
      agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
      agent.flush();
      await settle();
    };
    return { agent, beat, lastHeardMs: () => heardMs };
  }

  const offlineOf = async (deviceId: string) => {
    await settle();
    await gw.events.poll();
    return gw.events.entries.find((e) => e.kind === 'presence' && e.data.device_id === deviceId && !e.data.online);
  };

  it('a frame that moves the deadline later arms and cancels no timer', async () => {
    const { beat, lastHeardMs } = await connect('dev-lazy-count');
    const before = { scheduled: scheduler.scheduled, cancelled: scheduler.cancelled };
    const authDeadlineMs = lastHeardMs() + silenceMsMax;
    // Three heartbeats well before the deadline set at AUTH, each moving it later.
    for (let i = 0; i < 3; i++) {
      await driver.runTo(driver.time.nowMs() + 50);
      await beat();
    }
    assert.ok(driver.time.nowMs() < authDeadlineMs);
    assert.deepEqual({ scheduled: scheduler.scheduled, cancelled: scheduler.cancelled }, before, 'no timer armed or cancelled per frame');
  });

  it('is judged at exactly 1.5 intervals after the last of many frames, though the timer fired early on the way', async () => {
    const { agent, beat, lastHeardMs } = await connect('dev-lazy-deadline');
    // Heartbeats every 350 ms for a while: each lands before the previous deadline (600 ms), so the
    // kept timer fires early again and again, and each time waits for the rest.
    for (let i = 0; i < 6; i++) {
      await driver.runTo(driver.time.nowMs() + 350);
      await beat();
    }
    const deadlineMs = lastHeardMs() + silenceMsMax;
    await driver.runTo(deadlineMs - 1);
    const closeCode = () => agent.closed?.code;
    assert.equal(closeCode(), undefined, 'closed before the deadline');
    assert.equal(await offlineOf('dev-lazy-deadline'), undefined, 'offline before the deadline');
    await driver.runTo(deadlineMs);
    const offline = await offlineOf('dev-lazy-deadline');
    assert.ok(offline?.kind === 'presence', 'offline at the deadline');
    assert.equal(offline.data.at_ms, deadlineMs);
    assert.equal(closeCode(), 4000);
  });
});
