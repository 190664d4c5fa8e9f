// Frames across a key/value store outage, on virtual time (docs/chaos.md, 2026-12-05 afternoon: in
// redis-cut, the samples not stored were lost at the presence refresh, not at the bus). A frame
// whose presence refresh is due while the store is cut must still reach the bus: the session
// authenticated it, and the refresh could not say whether another session holds the key. A frame
// whose refresh answers that another session holds the key is still dropped (its session closed
// as replaced). The bus is never cut here: only the key/value store is.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { kvKeys, streamNames } from '../bus-contract/streams.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import type { GatewayCore } from './gateway-core.js';
import type { PresenceRecord } from './presence.js';
import { connectHeartbeating, makeCore, makeGatewayPki, onVirtualTime, outageKv, presenceSessionOf, settle, VirtualDriver, type GatewayPki } from './test-support.js';

const heartbeatIntervalMs = 400;
/** A refresh is due a quarter interval after the last one (gateway-core #refreshDue). */
const refreshDueMs = heartbeatIntervalMs / 4;
const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };

describe('frames whose presence refresh is due during a key/value store outage (virtual time)', () => {
  const driver = new VirtualDriver();
  /** The store itself, read and written by the test (never cut). */
  const kv = new MemoryKeyValueStore({ clock: driver.time, keyPrefix: `outage-forward-${randomBytes(4).toString('hex')}:` });
  const bus = new MemoryStreamBus({ clock: driver.time, scheduler: driver.time });
  const outage = outageKv(kv);
  let gpki: GatewayPki;
  let core: GatewayCore;

  before(async () => {
    gpki = await makeGatewayPki();
    core = makeCore({ bus, kv: outage.kv }, { ...onVirtualTime(driver), heartbeatIntervalMs, ackTimeoutMs: 60_000 });
    await core.start();
  });
  after(async () => {
    outage.setDown(false);
    await core.stop();
    await bus.close();
    await kv.close();
  });

  const connect = (deviceId: string) => connectHeartbeating({ core, gpki, driver, deviceId, heartbeatIntervalMs });

  /** The device ids of the entries on `stream`, in order. */
  async function devicesOn(stream: string): Promise<string[]> {
    const entries = await bus.range(stream, { count: 1_000 });
    return entries.map((e) => (JSON.parse(e.fields['data'] ?? '{}') as { device_id?: string }).device_id ?? '?');
  }

  async function runTo(atMs: number): Promise<void> {
    await driver.runTo(atMs);
    await settle();
  }

  it('a TELEMETRY and an ALERT whose refreshes fail are forwarded, and the session is kept', async () => {
    const { agent, sessionId, readyMs } = await connect('dev-cut-forward');
    // Before the first heartbeat (readyMs + interval), after the refresh is due.
    await runTo(readyMs + 2 * refreshDueMs);
    outage.setDown(true);
    agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
    agent.flush();
    await runTo(driver.time.nowMs() + 10);
    assert.deepEqual(await devicesOn(streamNames.telemetry), ['dev-cut-forward'], 'the sample was not forwarded');
    // The telemetry's refresh (failed) was the last: the alert's is due again a quarter interval on.
    await runTo(driver.time.nowMs() + refreshDueMs);
    agent.connection.sendAlert({ severity: 'warning', kind: 'test', message: 'during the cut' }, driver.time.nowMs());
    agent.flush();
    await runTo(driver.time.nowMs() + 10);
    assert.ok((await devicesOn(streamNames.events)).includes('dev-cut-forward'), 'the alert was not forwarded');
    assert.equal(agent.closed, undefined, 'the session lives through the cut');
    // Once the store answers, the session's key is written again by its next refresh.
    outage.setDown(false);
    await runTo(driver.time.nowMs() + heartbeatIntervalMs);
    assert.equal(await presenceSessionOf(kv, 'dev-cut-forward'), sessionId);
    assert.equal(agent.closed, undefined);
  });

  it('a frame whose refresh answers that another session holds the key is still not forwarded', async () => {
    outage.setDown(false);
    const { agent, readyMs } = await connect('dev-key-taken');
    await runTo(readyMs + 2 * refreshDueMs);
    const other: PresenceRecord = { gateway_id: 'gw-other', session_id: 'session-elsewhere', since_ms: driver.time.nowMs() };
    await kv.set(kvKeys.presence('dev-key-taken'), JSON.stringify(other), { ttlMs: 60_000 });
    agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
    agent.flush();
    await runTo(driver.time.nowMs() + 10);
    assert.equal(agent.closed?.reason, 'GATEWAY_SESSION_REPLACED');
    assert.ok(!(await devicesOn(streamNames.telemetry)).includes('dev-key-taken'), 'a replaced session\'s frame was forwarded');
  });
});
