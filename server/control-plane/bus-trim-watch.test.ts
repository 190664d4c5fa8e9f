// Entries the bus trims (maxLen) before the control plane's group read them are lost; the control
// plane now says so (bus-trim-watch.ts, decision 0004, Limits): a metric, an error log with
// STORE_ENTRIES_TRIMMED_UNREAD, an audit entry and a degraded /readyz, once per loss, also across
// a restart (the high-water mark is in the key/value store), and a loss while no control plane
// ran is found at the next start. On the in-memory bus and virtual time, both store pairs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { groups, streamNames } from '../bus-contract/streams.js';
import { Readiness } from '../deployment/readiness.js';
import { systemScheduler } from '../../runtime/system.js';
import { makeHarness, openSecondControlPlane, storePairs, type Harness, type StorePair } from './test-support.js';

const stream = streamNames.telemetry;
const group = groups.telemetry;

function suite(pair: StorePair): void {
  describe(`trimmed unread bus entries on ${pair.name}`, () => {
    let h: Harness;
    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const append = async (count: number, maxLen?: number): Promise<void> => {
      for (let i = 0; i < count; i += 1) await h.bus.append(stream, { n: String(i) }, maxLen === undefined ? {} : { maxLen });
    };
    const counted = async (metricsText: string): Promise<number> =>
      Number(new RegExp(`^sdc_bus_entries_trimmed_unread_total\\{stream="${stream}",group="${group}"\\} (\\d+)$`, 'm').exec(metricsText)?.[1] ?? 0);
    const audited = async () => (await h.cp.auditStore.scan(1, 10_000)).filter((e) => e.kind === 'bus.entries_trimmed_unread');

    it('reports a trim past the group once (metric, audit, degraded), not again, and not again after a restart', async () => {
      await h.cp.telemetryConsumer.ensureGroup();
      await append(5);
      const read = await h.bus.readGroup(stream, group, 'cp-test', { count: 2 });
      await h.bus.ack(stream, group, read.map((e) => e.id));
      assert.deepEqual(await h.cp.busTrimWatch.check(), [], 'nothing trimmed yet');
      h.clock.advance(1_000);
      await append(300, 20);
      const firstKept = (await h.bus.range(stream, { count: 1 }))[0]!.id;

      const [loss, ...more] = await h.cp.busTrimWatch.check();
      assert.deepEqual(more, []);
      assert.deepEqual(loss, {
        stream, group, entriesLost: 305 - 20 - 2, entriesLostTotal: 283, exact: true, afterId: read[1]!.id, beforeId: firstKept, detectedAtMs: h.clock.nowMs(),
      });
      assert.equal(await counted(await h.cp.metrics.text()), 283);
      const [entry, ...otherEntries] = await audited();
      assert.deepEqual(otherEntries, []);
      assert.equal(entry?.actor, 'system');
      assert.equal(entry?.subject, `stream:${stream}`);
      assert.deepEqual(entry?.payload, {
        code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream, group, entries_lost: 283, entries_lost_total: 283, exact: true,
        after_id: read[1]!.id, before_id: firstKept, appended_after_ms: Number(read[1]!.id.split('-')[0]), appended_before_ms: Number(firstKept.split('-')[0]),
      });
      const readiness = new Readiness({ dependencies: [], clock: h.clock, scheduler: systemScheduler });
      readiness.running(new Map());
      readiness.degradedBy(() => h.cp.busTrimWatch.degraded());
      const report = await readiness.report();
      assert.equal(report.ready, true, 'still serving: the loss is past, not a store down');
      assert.equal(report.status, 'degraded');
      assert.deepEqual(report.degraded, [{ code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream, group, entries_lost: 283, detected_at_ms: h.clock.nowMs() }]);

      // Counted once: the next checks find nothing new, even after the group read past the gap.
      assert.deepEqual(await h.cp.busTrimWatch.check(), []);
      await h.bus.readGroup(stream, group, 'cp-test', { count: 100 });
      assert.deepEqual(await h.cp.busTrimWatch.check(), []);
      assert.equal(await counted(await h.cp.metrics.text()), 283);
      assert.equal((await audited()).length, 1);

      // A restarted control plane (same stores, a metrics registry of its own) does not report it again, and is still degraded within the window.
      const second = await openSecondControlPlane(h, pair);
      try {
        assert.deepEqual(await second.cp.busTrimWatch.check(), []);
        assert.equal(await counted(await second.cp.metrics.text()), 0);
        assert.deepEqual(second.cp.busTrimWatch.degraded().map((r) => [r.stream, r.entries_lost]), [[stream, 283]]);
        // A loss while it is down: the next start finds it, before its consumers read, and counts only the new entries.
        const position = (await h.bus.range(stream, { count: 1_000 })).at(-1)!.id;
        h.clock.advance(60_000);
        await append(50, 20);
        const third = await openSecondControlPlane(h, pair);
        // systemScheduler's timers are unref'd: stop() waits out the started consumers' blocking reads (as Harness.close does).
        const keepAlive = setInterval(() => undefined, 1_000);
        try {
          await third.cp.start();
          // The group had read everything; of the 50 appended since, the trim kept the newest 20.
          assert.equal(await counted(await third.cp.metrics.text()), 30);
          const entries = await audited();
          assert.equal(entries.length, 2);
          assert.equal(entries[1]!.payload['entries_lost'], 30);
          assert.equal(entries[1]!.payload['entries_lost_total'], 283 + 30);
          assert.equal(entries[1]!.payload['after_id'], position);
          assert.deepEqual(third.cp.busTrimWatch.degraded().map((r) => [r.stream, r.entries_lost]), [[stream, 313]]);
          // Degraded for the window only (1 h by default), then ready again.
          h.clock.advance(60 * 60 * 1000);
          assert.deepEqual(third.cp.busTrimWatch.degraded(), []);
        } finally {
          await third.close();
          clearInterval(keepAlive);
        }
      } finally {
        await second.close();
      }
    });
  });
}

const { pairs } = storePairs();
for (const pair of pairs) suite(pair);
