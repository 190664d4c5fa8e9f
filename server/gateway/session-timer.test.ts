// The session's one timer (gateway-core.ts #armTimer) is moved, not made again, by every frame of a
// held session when the scheduler can move it (Scheduler.reschedule; the real one can, with the
// same delay): a new timer per frame was three objects that outlived a scavenge (issue 15, the
// gateway's CPU per frame). The moved timer must still end a session that falls silent.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeCodes } from './close-codes.js';
import type { GatewayCore } from './gateway-core.js';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { embeddedStores, makeCore, makeGatewayPki, TestAgent, VirtualDriver, type GatewayPki, type TestStores } from './test-support.js';

const heartbeatIntervalMs = 4_000;

/** Virtual time's scheduler, counting what the gateway asks of it, with a move for a timer of the same delay (as the system scheduler's refresh()). */
function movingScheduler(inner: Scheduler) {
  const counts = { schedule: 0, cancel: 0, moved: 0 };
  /** The delay of every timer made, in order. */
  const delays: number[] = [];
  interface Moving extends TimerHandle { inner: TimerHandle; readonly delayMs: number; readonly callback: () => void }
  const scheduler: Scheduler = {
    schedule(delayMs, callback) {
      counts.schedule += 1;
      delays.push(delayMs);
      return { id: counts.schedule, inner: inner.schedule(delayMs, callback), delayMs, callback } satisfies Moving;
    },
    cancel(handle) {
      counts.cancel += 1;
      inner.cancel((handle as Moving).inner);
    },
    reschedule(handle, delayMs) {
      const moving = handle as Moving;
      if (moving.delayMs !== delayMs) return false;
      counts.moved += 1;
      inner.cancel(moving.inner);
      moving.inner = inner.schedule(delayMs, moving.callback);
      return true;
    },
  };
  return { scheduler, counts, delays };
}

describe('gateway session timer moved per frame', () => {
  const driver = new VirtualDriver();
  const { scheduler, counts, delays } = movingScheduler(driver.time);
  // A clock that reads 1 ms later every other time, as a real one ticks while a frame is handled:
  // the timer's delay must come from the instant the frame was heard, or it differs frame to frame.
  let reads = 0;
  const clock = { nowMs: () => driver.time.nowMs() + (reads++ % 2) };
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores(driver.time);
    core = makeCore(stores, { clock, scheduler, heartbeatIntervalMs, ackTimeoutMs: 60_000, sessionRecheckIntervalMs: 600_000 });
    await core.start();
  });
  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('makes no new timer for the heartbeats of a held session, and still closes it once it falls silent', async () => {
    const device = await gpki.issueDevice('dev-timer-moved');
    const agent = new TestAgent(device, { clock: driver.time });
    const handle = core.acceptConnection({
      deviceId: device.deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => queueMicrotask(() => handle.receive(bytes)));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    await driver.advance(200);
    const scheduledBefore = delays.length;
    const movedBefore = counts.moved;
    for (let beat = 0; beat < 5; beat++) {
      agent.connection.sendHeartbeat({ uptime_ms: driver.time.nowMs(), queue_depth: 0 }, driver.time.nowMs());
      agent.flush();
      await driver.advance(heartbeatIntervalMs);
    }
    assert.equal(agent.closed, undefined, 'held while it sends');
    assert.ok(counts.moved - movedBefore >= 5, `the session timer moved per frame (${counts.moved - movedBefore})`);
    // Timers of the gateway's own (the command loop's reads) are made meanwhile; none at the session's silence delay.
    const silenceMs = Math.ceil(1.5 * heartbeatIntervalMs);
    assert.deepEqual(delays.slice(scheduledBefore).filter((delayMs) => delayMs >= silenceMs - 50), [], 'no new session timer');
    // Silent from here: the moved timer ends the session 1.5 intervals after the last frame.
    await driver.until(() => agent.closed, 3 * heartbeatIntervalMs, 'the silent session closed');
    assert.equal((agent.closed as { code: number } | undefined)?.code, closeCodes.timeout);
  });
});
