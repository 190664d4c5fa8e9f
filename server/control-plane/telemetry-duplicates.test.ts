// A telemetry sample is stored once however often it is delivered (migration 020,
// docs/decisions/0012-telemetry-sample-identity.md): its identity is (device, sampled_at, digest
// of its canonical metrics). On both store pairs: the same bus entry twice (a retried append, a
// redelivery) and the same samples in another frame (an agent's resend: other session, seq, id)
// store one row per sample; samples differing only in time or only in metrics are all kept; a
// statement mixing new and stored samples (several entries in one INSERT) stores the new ones and
// counts the others; and a risk alert is not raised again for a sample stored before, but still
// raised on the retry of an entry whose rows were stored before its alert failed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import { telemetryInsertParamsPerRow } from './telemetry-rows.js';
import { makeHarness, refusalCodeOf, storePairs, type Harness, type StorePair } from './test-support.js';

const provider = createNodeEd25519Provider();
const sessionCrypto = createNodeSessionKeyCrypto();

interface Metrics { cpu_pct: number; mem_pct: number; disk_pct: number; net_rx_bytes_per_sec: number; net_tx_bytes_per_sec: number; process_count?: number }
const calm = (cpu: number): Metrics => ({ cpu_pct: cpu, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 });
/** Scores 100 (every factor at its worst): over the default threshold (80). */
const hot: Metrics = { cpu_pct: 100, mem_pct: 100, disk_pct: 100, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 50 * 2 ** 20, process_count: 2_000 };

function suite(pair: StorePair): void {
  describe(`telemetry samples stored once on ${pair.name}`, () => {
    let h: Harness;
    let entrySeq = 0;
    let frameSeq = 0;

    before(async () => {
      h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
    });
    after(async () => {
      await h.close();
      await pair.sql.cleanup();
    });

    const enroll = async (deviceId: string): Promise<void> => {
      await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
        [deviceId, h.clock.nowMs(), `c-${deviceId}`, h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(3)))]);
    };
    /** A MACd TELEMETRY_BATCH frame of the samples: a new frame id and seq each time, in the given session. */
    const batchFrame = (deviceId: string, samples: ReadonlyArray<{ at: number; metrics: Metrics }>, session = 's1'): string => {
      frameSeq += 1;
      const body = { samples: samples.map((s) => ({ sampled_at: s.at, metrics: s.metrics })) } as unknown as JsonObject;
      return canonicalize(macEnvelope({
        fields: { v: 1, type: 'TELEMETRY_BATCH', id: `f${frameSeq}`, device_id: deviceId, session_id: session, seq: frameSeq, ts: h.clock.nowMs(), body },
        key: new Uint8Array(32).fill(9), crypto: sessionCrypto,
      }));
    };
    const fieldsOf = (deviceId: string, frame: string) => encodeBusEntry('telemetry', { device_id: deviceId, gateway_id: 'gw-1', received_at_ms: h.clock.nowMs(), frame });
    const entryOf = (deviceId: string, frame: string, deliveryCount = 1): BusEntry => ({ id: `${++entrySeq}-0`, fields: fieldsOf(deviceId, frame), deliveryCount });
    const rowsOf = async (deviceId: string) => (await h.db.query<{ ts: number; metrics_json: string; sample_digest: number | null }>(
      'SELECT ts, metrics_json, sample_digest FROM telemetry WHERE device_id = ? ORDER BY ts, metrics_json', [deviceId]))
      .map((row) => [Number(row.ts), (JSON.parse(row.metrics_json) as Metrics).cpu_pct]);
    const duplicatesCounted = async (): Promise<number> => Number(/^sdc_telemetry_duplicates_total (\d+)$/m.exec(await h.cp.metrics.text())?.[1] ?? 0);
    const riskAlerts = async (deviceId: string): Promise<number> =>
      Number((await h.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM alerts WHERE device_id = ? AND kind = 'risk_score'", [deviceId]))[0]?.n ?? 0);

    it('the same bus entry appended twice (a retried append) stores one row per sample, through the consumer', async () => {
      const deviceId = 'dev-dup-append';
      await enroll(deviceId);
      const t0 = h.clock.nowMs();
      const fields = fieldsOf(deviceId, batchFrame(deviceId, [0, 1, 2].map((d) => ({ at: t0 + d, metrics: calm(d) }))));
      const counted = await duplicatesCounted();
      await h.bus.append(streamNames.telemetry, fields);
      await h.bus.append(streamNames.telemetry, fields);
      assert.equal(await h.cp.telemetryConsumer.drain(), 2);
      assert.deepEqual(await rowsOf(deviceId), [[t0, 0], [t0 + 1, 1], [t0 + 2, 2]]);
      assert.equal(await duplicatesCounted(), counted + 3, 'the second entry\'s three samples counted as duplicates');
      assert.deepEqual(await h.bus.pending(streamNames.telemetry, groups.telemetry), [], 'both entries acked');
    });

    it('an entry handled again after its rows were stored (a redelivery) stores nothing more and succeeds', async () => {
      const deviceId = 'dev-dup-redelivery';
      await enroll(deviceId);
      const t0 = h.clock.nowMs() + 10_000;
      const entry = entryOf(deviceId, batchFrame(deviceId, [0, 1].map((d) => ({ at: t0 + d, metrics: calm(10 + d) }))));
      await h.cp.events.handleTelemetry(entry);
      await h.cp.events.handleTelemetry({ ...entry, deliveryCount: 2 });
      assert.deepEqual(await rowsOf(deviceId), [[t0, 10], [t0 + 1, 11]]);
      const [{ digests }] = await h.db.query<{ digests: number }>('SELECT COUNT(DISTINCT sample_digest) AS digests FROM telemetry WHERE device_id = ?', [deviceId]) as [{ digests: number }];
      assert.equal(Number(digests), 2, 'every new row carries its digest');
    });

    it('a resent sample (another session, seq and frame id; its metrics ordered otherwise) is stored once; the new samples beside it are stored', async () => {
      const deviceId = 'dev-dup-resend';
      await enroll(deviceId);
      const t0 = h.clock.nowMs() + 20_000;
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [{ at: t0, metrics: calm(20) }, { at: t0 + 1, metrics: calm(21) }], 's1')));
      const m = calm(21);
      // The same metrics, members in another order: the same canonical JSON, so the same sample.
      const reordered = { net_tx_bytes_per_sec: m.net_tx_bytes_per_sec, net_rx_bytes_per_sec: m.net_rx_bytes_per_sec, disk_pct: m.disk_pct, mem_pct: m.mem_pct, cpu_pct: m.cpu_pct };
      const counted = await duplicatesCounted();
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [{ at: t0 + 1, metrics: reordered }, { at: t0 + 2, metrics: calm(22) }], 's2')));
      assert.deepEqual(await rowsOf(deviceId), [[t0, 20], [t0 + 1, 21], [t0 + 2, 22]]);
      assert.equal(await duplicatesCounted(), counted + 1);
    });

    it('samples that differ only in metrics, or only in time, are all kept; an identical one in the same frame is stored once', async () => {
      const deviceId = 'dev-dup-distinct';
      await enroll(deviceId);
      const t0 = h.clock.nowMs() + 30_000;
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [
        { at: t0, metrics: calm(30) }, { at: t0, metrics: calm(31) }, { at: t0 + 1, metrics: calm(30) }, { at: t0 + 1, metrics: calm(30) },
      ])));
      assert.deepEqual(await rowsOf(deviceId), [[t0, 30], [t0, 31], [t0 + 1, 30]]);
    });

    it('one INSERT holding several entries, some stored before, stores the new rows and counts the others', async () => {
      const ids = ['dev-dup-mixed-a', 'dev-dup-mixed-b', 'dev-dup-mixed-c'];
      for (const id of ids) await enroll(id);
      const t0 = h.clock.nowMs() + 40_000;
      const firstOf = (id: string) => entryOf(id, batchFrame(id, [{ at: t0, metrics: calm(40) }, { at: t0 + 1, metrics: calm(41) }]));
      // Each device's row cached by an earlier sample, so the three handlers reach the writer in one turn.
      for (const id of ids) await h.cp.events.handleTelemetry(entryOf(id, batchFrame(id, [{ at: t0 - 1_000, metrics: calm(39) }])));
      await h.cp.events.handleTelemetry(firstOf(ids[0]!));
      const counted = await duplicatesCounted();
      // Handled at once: the writer's group commit puts the three entries' rows in one statement.
      const rowsPerInsert: number[] = [];
      const execute = h.db.execute.bind(h.db);
      h.db.execute = (async (sql: string, params?: readonly unknown[]) => {
        if (sql.startsWith('INSERT INTO telemetry')) rowsPerInsert.push((params?.length ?? 0) / telemetryInsertParamsPerRow);
        return execute(sql, params as never);
      }) as typeof h.db.execute;
      try {
        await Promise.all(ids.map((id) => h.cp.events.handleTelemetry(firstOf(id))));
      } finally {
        h.db.execute = execute;
      }
      assert.deepEqual(rowsPerInsert, [6], 'one INSERT of the three entries\' rows');
      for (const id of ids) assert.deepEqual(await rowsOf(id), [[t0 - 1_000, 39], [t0, 40], [t0 + 1, 41]], id);
      assert.equal(await duplicatesCounted(), counted + 2);
    });

    it('a risk alert is raised once for a sample: not again for its resend after the episode ended', async () => {
      const deviceId = 'dev-dup-alert';
      await enroll(deviceId);
      const t0 = h.clock.nowMs() + 50_000;
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [{ at: t0, metrics: hot }])));
      assert.equal(await riskAlerts(deviceId), 1);
      // The episode is over (as the sampling pass ends it after a calm sample): a new hot sample would raise a new alert.
      await h.db.execute("UPDATE alerts SET episode_key = NULL WHERE device_id = ? AND kind = 'risk_score'", [deviceId]);
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [{ at: t0, metrics: hot }], 's2')));
      assert.equal(await riskAlerts(deviceId), 1, 'the resent sample raised nothing');
      assert.deepEqual(await rowsOf(deviceId), [[t0, 100]]);
      await h.cp.events.handleTelemetry(entryOf(deviceId, batchFrame(deviceId, [{ at: t0 + 1, metrics: hot }], 's2')));
      assert.equal(await riskAlerts(deviceId), 2, 'a new hot sample does');
    });

    it('an entry whose alert could not be raised after its rows were stored raises it on its retry (rows not stored again)', async () => {
      const deviceId = 'dev-dup-alert-retry';
      await enroll(deviceId);
      const t0 = h.clock.nowMs() + 60_000;
      const entry = entryOf(deviceId, batchFrame(deviceId, [{ at: t0, metrics: calm(60) }, { at: t0 + 1, metrics: hot }]));
      const monitor = h.cp.events.alertMonitor;
      const onRiskScore = monitor.onRiskScore;
      monitor.onRiskScore = () => Promise.reject(new SdcError('STORE_UNAVAILABLE', 'the database is down for this alert'));
      try {
        assert.equal(await refusalCodeOf(h.cp.events.handleTelemetry(entry)), 'STORE_UNAVAILABLE');
      } finally {
        monitor.onRiskScore = onRiskScore;
      }
      assert.equal(await riskAlerts(deviceId), 0);
      await h.cp.events.handleTelemetry(entry);
      assert.equal(await riskAlerts(deviceId), 1, 'raised on the retry');
      assert.deepEqual(await rowsOf(deviceId), [[t0, 60], [t0 + 1, 100]]);
      await h.cp.events.handleTelemetry({ ...entry, deliveryCount: 2 });
      assert.equal(await riskAlerts(deviceId), 1, 'a later redelivery finds the episode open');
    });
  });
}

const { pairs, skipped } = storePairs();
for (const pair of pairs) suite(pair);
if (skipped !== undefined) describe('telemetry samples stored once on mysql + redis', { skip: skipped }, () => {});
