// Frames across a key/value store outage, on virtual time (docs/chaos.md, 2026-12-05 afternoon: in
// redis-cut, the samples not stored were lost at the presence refresh, not at the bus). A frame
// whose presence refresh is due while the store is cut must still reach the bus: the session
// authenticated it, and the refresh could not say whether another session holds the key. A frame
// whose refresh answers that another session holds the key is still dropped (its session closed
// as replaced). The bus is never cut here: only the key/value store is.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { kvKeys, streamNames } from '../bus-contract/streams.js';
import { refreshFailedLogIntervalMs } from './gateway-core.js';
import type { PresenceRecord } from './presence.js';
import { connectHeartbeating, outageGatewayFixture, presenceSessionOf, settle, VirtualDriver } from './test-support.js';

const heartbeatIntervalMs = 400;
/** A refresh is due a quarter interval after the last one (gateway-core #refreshDue). */
const refreshDueMs = heartbeatIntervalMs / 4;
const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };

describe('frames whose presence refresh is due during a key/value store outage (virtual time)', () => {
  const driver = new VirtualDriver();
  /** The store itself, read and written by the test (never cut). */
  const gateway = outageGatewayFixture(driver, { keyPrefix: 'outage-forward', gateway: { heartbeatIntervalMs } });
  const { kv, bus, outage } = gateway;

  const connect = (deviceId: string) => connectHeartbeating({ core: gateway.core, gpki: gateway.gpki, driver, deviceId, heartbeatIntervalMs });

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

describe('the log of frames forwarded after a failed refresh (virtual time): one line per interval, with the count', () => {
  // A long interval: no heartbeat (each one a refresh) comes in the test, so the frames counted are the test's.
  const longIntervalMs = 40_000;
  const dueMs = longIntervalMs / 4;
  const driver = new VirtualDriver();
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, new Writable({ write(chunk: Buffer, _encoding, done) { logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } }));
  const gateway = outageGatewayFixture(driver, {
    keyPrefix: 'outage-log', gateway: { heartbeatIntervalMs: longIntervalMs, sessionRecheckIntervalMs: 600_000, ackTimeoutMs: 600_000, logger },
  });
  const { kv, bus, outage } = gateway;

  it('five sessions\' frames in one interval log one line; the next line, an interval on, counts the frames since', async () => {
    assert.ok(dueMs >= refreshFailedLogIntervalMs, 'each round of frames below is in an interval of its own');
    const agents: Array<Awaited<ReturnType<typeof connect>>['agent']> = [];
    for (let i = 0; i < 5; i++) agents.push((await connect(i)).agent);
    /** Every session sends a frame whose refresh is due (a TELEMETRY, then an ALERT: a second TELEMETRY would need the chain's prev_hash). */
    async function round(kind: 'telemetry' | 'alert'): Promise<void> {
      await driver.runTo(driver.time.nowMs() + dueMs);
      await settle();
      for (const agent of agents) {
        if (kind === 'telemetry') agent.connection.sendTelemetry({ sampled_at: driver.time.nowMs(), metrics }, driver.time.nowMs());
        else agent.connection.sendAlert({ severity: 'warning', kind: 'test', message: 'during the cut' }, driver.time.nowMs());
        agent.flush();
      }
      // Past the presence refresh window and the telemetry batch's (two windows).
      await driver.runTo(driver.time.nowMs() + 1_000);
      await settle();
    }
    outage.setDown(true);
    await round('telemetry');
    await round('alert');
    const lines = logs.filter((l) => String(l['msg']).startsWith('presence refresh failed'));
    assert.deepEqual(lines.map((l) => l['frames']), [1, 5], 'one line at the first failure, the next an interval on with the 4 since and its own');
    assert.ok(agents.every((agent) => agent.closed === undefined));
    assert.equal((await bus.range(streamNames.telemetry, { count: 100 })).length, 5, 'every sample forwarded');
    const alerts = (await bus.range(streamNames.events, { count: 1_000 })).filter((e) => (e.fields['data'] ?? '').includes('during the cut'));
    assert.equal(alerts.length, 5, 'every alert forwarded');
  });

  const connect = (i: number) => connectHeartbeating({ core: gateway.core, gpki: gateway.gpki, driver, deviceId: `dev-log-${i}`, heartbeatIntervalMs: longIntervalMs });
});
