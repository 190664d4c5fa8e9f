// Presence across a key/value store outage, on virtual time (docs/chaos.md, the redis-cut finding
// "an agent's presence was not back within 30 s of the heal"). The store is cut for many presence
// TTLs, so every presence key expires (as a Redis restart without persistence loses them); a session
// that lives through the cut must have its key again at its first heartbeat after the store answers,
// named for itself, and keep it. Also when the session authenticated during the cut, so that its
// first write (online) failed. These pin what the finding's reading relies on: a refresh re-creates
// a missing key (compare-and-set, then set-if-absent; an EXPIRE would not), and a failed write
// neither closes the session nor stops later refreshes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { presenceTtlMs } from './presence.js';
import { connectHeartbeating, outageGatewayFixture, presenceSessionOf, VirtualDriver } from './test-support.js';

const heartbeatIntervalMs = 400;
const outageMs = 10 * presenceTtlMs(heartbeatIntervalMs);

describe('presence across a key/value store outage (virtual time)', () => {
  const driver = new VirtualDriver();
  /** The store itself, read by the test (never cut). */
  const gateway = outageGatewayFixture(driver, { keyPrefix: 'presence-outage', gateway: { heartbeatIntervalMs } });
  const { kv, bus, outage } = gateway;

  const runTo = (atMs: number) => driver.runTo(atMs);

  const keyNames = (deviceId: string) => presenceSessionOf(kv, deviceId);

  const connect = (deviceId: string, onAuthSent?: () => void) =>
    connectHeartbeating({ core: gateway.core, gpki: gateway.gpki, driver, deviceId, heartbeatIntervalMs, ...(onAuthSent === undefined ? {} : { onAuthSent }) });

  /** From `fromMs` to `toMs`, in steps of a tenth of an interval: the key names `sessionId` at every step. */
  async function heldThroughout(deviceId: string, sessionId: string, fromMs: number, toMs: number): Promise<void> {
    for (let atMs = fromMs; atMs <= toMs; atMs += heartbeatIntervalMs / 10) {
      await runTo(atMs);
      assert.equal(await keyNames(deviceId), sessionId, `presence key at ${atMs - fromMs} ms`);
    }
  }

  it('a session that lives through the cut has its key again at its first heartbeat after the store answers', async () => {
    const { agent, sessionId } = await connect('dev-through-cut');
    const startMs = driver.time.nowMs();
    await heldThroughout('dev-through-cut', sessionId, startMs, startMs + 2 * heartbeatIntervalMs);
    outage.setDown(true);
    const cutMs = driver.time.nowMs();
    await runTo(cutMs + outageMs);
    assert.equal(await keyNames('dev-through-cut'), null, 'the key expired during the cut');
    assert.equal(agent.closed, undefined, 'the session lives through the cut (its refreshes failed)');
    outage.setDown(false);
    const healMs = driver.time.nowMs();
    await runTo(healMs + heartbeatIntervalMs);
    assert.equal(await keyNames('dev-through-cut'), sessionId, 'not back within one heartbeat of the heal');
    await heldThroughout('dev-through-cut', sessionId, healMs + heartbeatIntervalMs, healMs + 6 * heartbeatIntervalMs);
    assert.equal(agent.closed, undefined);
  });

  it('a session that authenticated during the cut (its online write failed) has its key within one heartbeat of the heal', async () => {
    const { agent, sessionId } = await connect('dev-auth-in-cut', () => outage.setDown(true));
    const authMs = driver.time.nowMs();
    await runTo(authMs + 4 * heartbeatIntervalMs);
    assert.equal(await keyNames('dev-auth-in-cut'), null, 'written although the store was cut');
    assert.equal(agent.closed, undefined);
    outage.setDown(false);
    const healMs = driver.time.nowMs();
    await runTo(healMs + heartbeatIntervalMs);
    assert.equal(await keyNames('dev-auth-in-cut'), sessionId, 'not back within one heartbeat of the heal');
    await heldThroughout('dev-auth-in-cut', sessionId, healMs + heartbeatIntervalMs, healMs + 6 * heartbeatIntervalMs);
    assert.equal(agent.closed, undefined);
  });
});
