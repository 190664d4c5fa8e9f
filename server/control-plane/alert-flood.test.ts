import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { alertRateLimits } from './alert-rate-limit.js';
import { makeHarness, storePairs, type Harness, type StorePair } from './test-support.js';

/**
 * Issue 16, "also noted" (b): a device raised about 100 alerts a second, each stored, published
 * and audited. Per device and window, alertsPerDeviceMax are raised, then one summary; the rest
 * are counted and dropped.
 */
function suite(pair: StorePair): void {
  describe(`device alert rate limit on ${pair.name}`, () => {
    let h: Harness;
    const device = 'dev-noisy';

    before(async () => {
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }) });
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [device, h.clock.nowMs()]);
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", ['dev-quiet', h.clock.nowMs()]);
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const sendAlerts = async (deviceId: string, count: number) => {
      for (let i = 0; i < count; i += 1) {
        await h.bus.append(streamNames.events, encodeBusEntry('alert', {
          device_id: deviceId, gateway_id: 'gw1', at_ms: h.clock.nowMs(), severity: 'warning', kind: 'kernel_fault', message: `alert ${i}`,
        }));
      }
      await h.cp.eventsConsumer.drain();
    };
    const alertsOf = async (deviceId: string) => h.db.query<{ kind: string }>('SELECT kind FROM alerts WHERE device_id = ? ORDER BY created_at, kind', [deviceId]);
    const auditedFor = async (deviceId: string) => (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'alert.raised' && e.subject === `device:${deviceId}`).length;

    it('100 alerts in one window: alertsPerDeviceMax stored and audited, one summary, the rest counted and dropped', async () => {
      const max = alertRateLimits.alertsPerDeviceMax;
      await sendAlerts(device, 100);
      const kinds = (await alertsOf(device)).map((a) => a.kind);
      assert.equal(kinds.filter((k) => k === 'kernel_fault').length, max);
      assert.equal(kinds.filter((k) => k === 'alert_rate_limited').length, 1);
      assert.equal(kinds.length, max + 1);
      assert.equal(await auditedFor(device), max + 1);
      assert.equal(h.cp.events.alertRateLimiter.droppedTotal, 100 - max);
      // Nothing was dead-lettered or left pending: dropping is not a failure.
      assert.equal((await h.bus.pending(streamNames.events, 'control-plane')).length, 0);
      // Another device is not affected.
      await sendAlerts('dev-quiet', 1);
      assert.deepEqual((await alertsOf('dev-quiet')).map((a) => a.kind), ['kernel_fault']);
    });

    it('the next window admits the device\'s alerts again', async () => {
      h.clock.advance(alertRateLimits.windowMs);
      await sendAlerts(device, 1);
      assert.equal((await alertsOf(device)).filter((a) => a.kind === 'kernel_fault').length, alertRateLimits.alertsPerDeviceMax + 1);
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('device alert rate limit on mysql + redis', { skip: skipped }, () => {});
