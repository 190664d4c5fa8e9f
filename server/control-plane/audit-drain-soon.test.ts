// Issue 17: the event handlers' audit inputs (a device's compliance at AUTH, its policy bundle
// report) are chained by one outbox drain per instant, not by a drain transaction per input.
// The unit: requests before the timer fires share one drain; stop runs a pending one. The control
// plane: N AUTH presences with posture leave N inputs recorded and none chained until the
// instant's drain, which chains all N in one store call, in the order they were recorded.
// Both store pairs (sql.js + embedded kv; MySQL + Redis with MYSQL_URL and REDIS_URL).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { streamNames } from '../bus-contract/streams.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import type { DevicePosture } from '../../core/protocol/messages/posture.js';
import { AuditDrainSoon } from './audit-drain-soon.js';
import { makeHarness, storePairs, watchAuditDrains, type Harness, type StorePair } from './test-support.js';

describe('AuditDrainSoon', () => {
  it('requests made before the timer fires share one drain, at the same virtual instant', async () => {
    const time = new VirtualTime(1_000);
    const drainedAt: number[] = [];
    const soon = new AuditDrainSoon({ scheduler: time, drain: async () => { drainedAt.push(time.nowMs()); } });
    soon.request();
    soon.request();
    soon.request();
    assert.deepEqual(drainedAt, [], 'nothing drains before the timer');
    time.advance(0);
    await soon.settled();
    assert.deepEqual(drainedAt, [1_000]);
    soon.request();
    time.advance(5);
    await soon.settled();
    assert.deepEqual(drainedAt, [1_000, 1_000], 'a later request gets its own drain, still at the instant it was asked in');
  });

  it('stop runs a drain that was asked for and not yet run, and no timer after it; start takes requests again', async () => {
    const time = new VirtualTime(0);
    let drains = 0;
    const soon = new AuditDrainSoon({ scheduler: time, drain: async () => { drains += 1; } });
    await soon.stop();
    assert.equal(drains, 0, 'nothing asked for, nothing drained');
    soon.start();
    soon.request();
    await soon.stop();
    assert.equal(drains, 1);
    soon.request();
    assert.equal(time.advance(10), 0, 'a stopped drainer arms no timer');
    soon.start();
    soon.request();
    assert.equal(time.advance(0), 1);
    await soon.settled();
    assert.equal(drains, 2);
  });

  it('refuses a delay that is not a non-negative integer', () => {
    assert.throws(() => new AuditDrainSoon({ scheduler: new VirtualTime(0), drain: async () => undefined, delayMs: -1 }), RangeError);
  });
});

const posture: DevicePosture = { os_version: 'Linux 6.8.0', binary_sha256: 'a'.repeat(64), config_sha256: 'c'.repeat(64), kernel_attestation: 'unattested' };

function suite(pair: StorePair): void {
  describe(`the events handlers' audit inputs in one drain per instant on ${pair.name}`, () => {
    let h: Harness;
    const time = new VirtualTime(0);
    const devices = Array.from({ length: 6 }, (_, i) => `ads-${randomBytes(3).toString('hex')}-${i}`);
    /** Per store call that chains outbox inputs: how many it chained. */
    const drainCalls: number[] = [];

    before(async () => {
      // The control plane's timers on virtual time: its drain per instant fires only when the test moves it.
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { scheduler: time } });
      watchAuditDrains(h.cp.auditStore, (entries) => drainCalls.push(entries.length));
      for (const id of devices) {
        await h.db.execute("INSERT INTO devices (id, status, created_at, cert_not_after) VALUES (?, 'enrolled', ?, ?)", [id, h.clock.nowMs(), h.clock.nowMs() + 30 * 24 * 3_600_000]);
      }
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    it('N AUTH presences: N inputs recorded with their rows, none chained until the instant ends, then all N in one drain, in record order', async () => {
      drainCalls.length = 0;
      for (const id of devices) {
        await h.bus.append(streamNames.events, encodeBusEntry('presence', {
          device_id: id, gateway_id: 'gw1', session_id: `s-${id}`, online: true, at_ms: h.clock.nowMs(), last_command_seq: 0, agent_version: '1.0.0', posture,
        }));
      }
      await h.cp.eventsConsumer.drain();
      const ours = (subject: string): boolean => devices.some((id) => subject === `device:${id}`);
      const recorded = (await h.db.query<{ subject: string; kind: string }>('SELECT subject, kind FROM audit_outbox ORDER BY id ASC')).filter((row) => ours(row.subject));
      assert.equal(recorded.length, devices.length, 'every handler committed its input with its compliance row');
      assert.ok(recorded.every((row) => row.kind === 'device.compliance'));
      const [rows] = await h.db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM device_compliance WHERE device_id IN (${devices.map(() => '?').join(', ')})`, devices);
      assert.equal(Number(rows!.n), devices.length);
      assert.deepEqual(drainCalls, [], 'no drain ran inside the handlers');
      assert.equal((await h.cp.auditStore.scan(1, 10_000)).filter((entry) => ours(entry.subject)).length, 0, 'nothing chained yet');

      time.advance(0);
      await h.cp.sweepsSettled();
      assert.deepEqual(drainCalls, [devices.length], 'one drain chained all of them');
      const chained = (await h.cp.auditStore.scan(1, 10_000)).filter((entry) => ours(entry.subject));
      assert.deepEqual(chained.map((entry) => entry.subject), recorded.map((row) => row.subject), 'chained in the order recorded');
      assert.equal(await h.cp.auditStore.recordedCount(), 0, 'the outbox is empty');
      assert.equal((await h.cp.context.audit.verify()).ok, true);
    });
  });
}

const { pairs, skipped } = storePairs();
if (skipped !== undefined) describe('the events handlers\' audit drain on mysql + redis', { skip: skipped }, () => undefined);
for (const pair of pairs) suite(pair);
