// Deadlines after a stall (core/time/late-timer.ts) at the gateway, on virtual time. A stalled gateway is modelled as
// Node runs one: the timers that fell due during the stall fire when it ends, with the clock at
// the stall's end, and only then are the frames that arrived meanwhile read. A live device whose
// heartbeat waited in the buffer must stay online; a silent one must still be closed, at most one
// deferral (its lateness, capped at a heartbeat interval) later.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StallingScheduler } from '../../core/time/stalling-scheduler.js';
import { kvKeys } from '../bus-contract/streams.js';
import { settle, TestAgent, useVirtualGateway, VirtualDriver } from './test-support.js';

const heartbeatIntervalMs = 400;
const silenceMsMax = Math.ceil(heartbeatIntervalMs * 1.5);

describe('late session timers (a stalled gateway)', () => {
  const driver = new VirtualDriver();
  const scheduler = new StallingScheduler(driver.time);
  const gw = useVirtualGateway(driver, { scheduler, heartbeatIntervalMs, ackTimeoutMs: 60_000 });

  /** A session whose frames to the gateway can be held back (in the socket's buffer) while the gateway stalls. */
  async function connect(deviceId: string) {
    const device = await gw.gpki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time });
    let heardMs = Number.NaN;
    const buffered: Uint8Array[] = [];
    const wire = { holding: false };
    const handle = gw.core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => queueMicrotask(() => agent.onFrame(bytes)),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    const deliver = (bytes: Uint8Array) => { heardMs = driver.time.nowMs(); handle.receive(bytes); };
    agent.attach((bytes) => {
      if (wire.holding) buffered.push(bytes);
      else queueMicrotask(() => deliver(bytes));
    });
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    /** The stall ends: late timers first, then the frames that waited. */
    const endStall = async () => {
      scheduler.resume();
      wire.holding = false;
      for (const bytes of buffered.splice(0)) deliver(bytes);
      await settle();
    };
    return { agent, wire, endStall, lastHeardMs: () => heardMs };
  }

  /** Read through a call, so the compiler does not keep an earlier assertion's narrowing. */
  const closeCodeOf = (agent: TestAgent) => agent.closed?.code;

  const runTo = (atMs: number) => driver.runTo(atMs);

  const offlineOf = async (deviceId: string) => {
    await settle();
    await gw.events.poll();
    return gw.events.entries.find((e) => e.kind === 'presence' && e.data.device_id === deviceId && !e.data.online);
  };

  it('keeps a device online whose heartbeat arrived during the stall, though its deadline passed', async () => {
    const { agent, wire, endStall, lastHeardMs } = await connect('dev-stalled');
    const deadlineMs = lastHeardMs() + silenceMsMax;
    scheduler.stall();
    wire.holding = true;
    // The heartbeat is sent on time, a little before the deadline, and waits unread.
    await runTo(deadlineMs - 100);
    agent.connection.sendHeartbeat({ uptime_ms: 1, queue_depth: 0 }, driver.time.nowMs());
    agent.flush();
    // The gateway runs again a half interval past the deadline.
    await runTo(deadlineMs + heartbeatIntervalMs / 2);
    await endStall();
    assert.equal(agent.closed, undefined, 'closed by a timer that fired before the buffered heartbeat was read');
    await runTo(deadlineMs + heartbeatIntervalMs);
    assert.equal(await offlineOf('dev-stalled'), undefined, 'reported offline');
    assert.notEqual(await gw.stores.kv.get(kvKeys.presence('dev-stalled')), null, 'presence key gone');
    // Its presence is judged from the heartbeat read after the stall: silent from then on, closed at that deadline.
    const nextDeadlineMs = lastHeardMs() + silenceMsMax;
    await runTo(nextDeadlineMs - 1);
    assert.equal(agent.closed, undefined);
    await runTo(nextDeadlineMs);
    assert.equal(closeCodeOf(agent), 4000);
  });

  it('still closes a device that sent nothing, one deferral after the stall', async () => {
    const { agent, endStall, lastHeardMs } = await connect('dev-dead');
    const deadlineMs = lastHeardMs() + silenceMsMax;
    scheduler.stall();
    const stallEndMs = deadlineMs + heartbeatIntervalMs / 2;
    await runTo(stallEndMs);
    await endStall();
    assert.equal(agent.closed, undefined, 'judged before the frames of the stall could be read');
    const lateMs = stallEndMs - deadlineMs;
    await runTo(stallEndMs + lateMs - 1);
    assert.equal(agent.closed, undefined);
    await runTo(stallEndMs + lateMs);
    assert.equal(closeCodeOf(agent), 4000);
    const offline = await offlineOf('dev-dead');
    assert.ok(offline?.kind === 'presence', 'offline reported');
    assert.equal(offline.data.at_ms, stallEndMs + lateMs);
  });
});
