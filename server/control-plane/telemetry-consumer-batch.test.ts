import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';
import { makeHarness, sqlJsTarget, type Harness } from './test-support.js';
import { deviceActivityLimits } from './devices.js';
import { telemetryConsumerOptions, telemetryInsertParamsPerRow } from './telemetry-rows.js';

/**
 * Issue 17: the telemetry consumer reads many entries per call and runs many handlers at once, so
 * the writer's INSERTs carry many rows (with the events consumer's 64 handlers at most 64 rows,
 * about 14 on Redis + MariaDB). Every entry is still stored once and acked after its row.
 */
describe('the telemetry consumer: many entries per read, many rows per INSERT', () => {
  const devices = 300;
  const provider = createNodeEd25519Provider();
  const sessionCrypto = createNodeSessionKeyCrypto();
  const macKey = new Uint8Array(32).fill(5);
  const readCounts: number[] = [];
  const rowsPerInsert: number[] = [];
  let lastSeenUpdates = 0;
  let h: Harness;

  /** Counts the rows of each INSERT INTO telemetry (the writer's statements) on the control plane's database. */
  const countingInserts = {
    ...sqlJsTarget,
    open: async (dataDir: string) => {
      const db = await sqlJsTarget.open(dataDir);
      return new Proxy(db, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property !== 'execute') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
          return (sql: string, params?: readonly unknown[]) => {
            if (sql.startsWith('INSERT INTO telemetry')) rowsPerInsert.push((params?.length ?? 0) / telemetryInsertParamsPerRow);
            if (sql.startsWith('UPDATE devices SET last_seen_at')) lastSeenUpdates += 1;
            return (target.execute as SqlDatabase['execute'])(sql, params as never);
          };
        },
      }) as SqlDatabase;
    },
  };
  const countingReads = (bus: StreamBus): StreamBus => new Proxy(bus, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== 'readGroup') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      return (stream: string, ...rest: Parameters<StreamBus['readGroup']> extends [string, ...infer R] ? R : never) => {
        if (stream === streamNames.telemetry) readCounts.push(rest[2].count);
        return target.readGroup(stream, ...rest);
      };
    },
  });

  const deviceId = (i: number) => `dev-batch-${String(i).padStart(3, '0')}`;
  const sampleEntry = (id: string, seq: number, nowMs = h.clock.nowMs()) => {
    const frame = canonicalize(macEnvelope({
      fields: {
        v: 1, type: 'TELEMETRY', id: `t${seq}`, device_id: id, session_id: 's1', seq, ts: nowMs,
        body: { sampled_at: nowMs + seq, metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } },
      },
      key: macKey, crypto: sessionCrypto,
    }));
    return encodeBusEntry('telemetry', { device_id: id, gateway_id: 'gw-1', received_at_ms: nowMs, frame });
  };

  before(async () => {
    h = await makeHarness(countingInserts, { wrapBus: countingReads });
    const publicKey = base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(1)));
    for (let i = 0; i < devices; i += 1) {
      await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
        [deviceId(i), h.clock.nowMs(), (i + 1).toString(16), h.clock.nowMs() + 86_400_000, publicKey]);
    }
  });
  after(async () => {
    await h.close();
  });

  it(`reads ${telemetryConsumerOptions.batchSize} entries per call and stores more rows per INSERT than 64 handlers could, each sample once, none left pending`, async () => {
    // Two samples of each device: a device's second waits behind its first (one partition), the rest run at once.
    for (let round = 0; round < 2; round += 1) {
      for (let i = 0; i < devices; i += 1) await h.bus.append(streamNames.telemetry, sampleEntry(deviceId(i), round * devices + i + 1));
    }
    readCounts.length = 0;
    rowsPerInsert.length = 0;
    assert.equal(await h.cp.telemetryConsumer.drain(), 2 * devices);
    assert.ok(readCounts.length > 0 && readCounts.every((count) => count === telemetryConsumerOptions.batchSize), `read counts ${readCounts.join(', ')}`);
    assert.equal(rowsPerInsert.reduce((sum, rows) => sum + rows, 0), 2 * devices, 'every sample stored, once');
    assert.ok(Math.max(...rowsPerInsert) > 64, `rows per INSERT ${rowsPerInsert.join(', ')}`);
    const counted = await h.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM telemetry WHERE device_id LIKE 'dev-batch-%'");
    assert.equal(Number(counted[0]?.n), 2 * devices);
    assert.deepEqual(await h.bus.pending(streamNames.telemetry, groups.telemetry), []);
  });

  it('after a presence wrote last_seen_at, the samples within the write interval do not each try to write it again', async () => {
    const id = deviceId(0);
    const t0 = h.clock.nowMs() + 60_000;
    await h.bus.append(streamNames.events, encodeBusEntry('presence', { device_id: id, gateway_id: 'gw-1', session_id: 's2', online: true, at_ms: t0, last_command_seq: 0 }));
    await h.cp.eventsConsumer.drain();
    lastSeenUpdates = 0;
    const intervalMs = deviceActivityLimits.lastSeenWriteIntervalMs;
    // Ten samples a tenth of the interval apart, all within it: the row is fresh for each of them.
    for (let i = 1; i < 10; i += 1) await h.bus.append(streamNames.telemetry, sampleEntry(id, 10_000 + i, t0 + (i * intervalMs) / 10));
    for (let i = 1; i < 10; i += 1) await h.cp.telemetryConsumer.drain();
    assert.ok(lastSeenUpdates <= 1, `${lastSeenUpdates} UPDATEs of last_seen_at within one interval of the presence`);
    assert.equal((await h.cp.devices.get(id)).last_seen_at_ms, t0);
    await h.bus.append(streamNames.telemetry, sampleEntry(id, 10_100, t0 + intervalMs));
    await h.cp.telemetryConsumer.drain();
    assert.equal((await h.cp.devices.get(id)).last_seen_at_ms, t0 + intervalMs, 'a sample an interval after the presence is recorded');
  });
});
