// Decision 0004, "Batches": a TELEMETRY_BATCH frame goes gateway -> bus as ONE telemetry entry,
// and the control plane's writer stores each of its samples as its own row with its own
// sampled_at (one INSERT per frame's rows at most), on sql.js and, when set, MariaDB + Redis.
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { telemetryBatchLimits } from '../../core/protocol/limits.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { decodeBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import { makeHarness, storePairs, type Harness } from '../control-plane/test-support.js';
import { telemetryInsertParamsPerRow } from '../control-plane/telemetry-rows.js';
import type { GatewayCore } from './gateway-core.js';
import { embeddedStores, makeCore, makeGatewayPki, onVirtualTime, provider, TestAgent, VirtualDriver, type TestStores } from './test-support.js';

/** `index`: the sample's place in its frame, so two samples with equal times differ (the store keeps one row per (device, time, metrics), decision 0012). */
const metrics = (i: number, index = 0) => ({ cpu_pct: i % 100, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: i, net_tx_bytes_per_sec: index });
const t0 = 1_765_000_000_000;
const { pairs } = storePairs();

describe('TELEMETRY_BATCH through gateway, bus and writer', () => {
  const driver = new VirtualDriver();
  let stores: TestStores;
  let core: GatewayCore;

  before(async () => {
    stores = embeddedStores(driver.time);
    core = makeCore(stores, { ...onVirtualTime(driver), heartbeatIntervalMs: 3_600_000, sessionRecheckIntervalMs: 3_600_000 });
    await core.start();
  });
  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  /** The gateway's telemetry entries (raw fields) after a session that sends `frames` (each a batch or one sample). */
  async function throughGateway(deviceId: string, frames: readonly (readonly number[])[]): Promise<Array<Record<string, string>>> {
    const pki = await makeGatewayPki();
    const device = await pki.issueDevice(deviceId);
    const agent = new TestAgent(device, { clock: driver.time, sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom }, telemetryBatch: true });
    const handle = core.acceptConnection({
      deviceId: device.deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => agent.onFrame(bytes), close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => handle.receive(bytes));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    const ready = agent.events.find((e) => e.kind === 'ready');
    assert.equal(ready?.kind === 'ready' ? ready.telemetrySamplesMax : undefined, telemetryBatchLimits.samplesPerFrameMax, 'the gateway announces its bound');
    let prevHash: string | undefined;
    for (const times of frames) {
      const link = prevHash === undefined ? {} : { prev_hash: prevHash };
      if (times.length === 1) {
        agent.connection.sendTelemetry({ sampled_at: times[0]!, metrics: metrics(times[0]! - t0), ...link }, driver.time.nowMs());
      } else {
        const body: MessageBody<'TELEMETRY_BATCH'> = { samples: times.map((at, index) => ({ sampled_at: at, metrics: metrics(at - t0, index) })), ...link };
        agent.connection.sendTelemetryBatch(body, driver.time.nowMs());
      }
      const [frame] = agent.connection.takeOutgoing();
      prevHash = createHash('sha256').update(frame!).digest('hex');
      handle.receive(frame!);
    }
    await driver.advance(100);
    assert.deepEqual(agent.errorCodes(), []);
    const group = `test-${deviceId}`;
    await stores.bus.ensureGroup(streamNames.telemetry, group, '0');
    const entries = await stores.bus.readGroup(streamNames.telemetry, group, 'reader', { count: 500 });
    return entries.map((entry) => ({ ...entry.fields })).filter((fields) => {
      const decoded = decodeBusEntry(fields);
      return decoded.kind === 'telemetry' && decoded.data.device_id === deviceId;
    });
  }

  for (const pair of pairs) {
    describe(pair.name, () => {
      let h: Harness;
      const rowsPerInsert: number[] = [];
      before(async () => {
        h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      });
      after(async () => {
        await h.close();
      });

      it('one entry per frame; every sample stored once with its own sampled_at, the device seen once per entry', async () => {
        const deviceId = `dev-tb-${pair.sql === pairs[0]!.sql ? 'e' : 'm'}-${Math.floor(Math.random() * 1e6)}`;
        // A batch of 5, a single sample, a full batch (the protocol's bound), a batch of 2 with equal times.
        const frames = [
          [0, 10, 20, 30, 40].map((d) => t0 + d),
          [t0 + 50],
          Array.from({ length: telemetryBatchLimits.samplesPerFrameMax }, (_, i) => t0 + 100 + i),
          [t0 + 500, t0 + 500],
        ];
        const entries = await throughGateway(deviceId, frames);
        assert.equal(entries.length, frames.length, 'one bus entry per frame');
        await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
          [deviceId, h.clock.nowMs(), deviceId, h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(7)))]);
        const watched = h.db.execute.bind(h.db);
        h.db.execute = (async (sql: string, params?: readonly unknown[]) => {
          if (sql.startsWith('INSERT INTO telemetry')) rowsPerInsert.push((params?.length ?? 0) / telemetryInsertParamsPerRow);
          return watched(sql, params as never);
        }) as typeof h.db.execute;
        for (const fields of entries) await h.bus.append(streamNames.telemetry, fields);
        assert.equal(await h.cp.telemetryConsumer.drain(), frames.length);
        const rows = await h.db.query<{ ts: number; metrics_json: string }>('SELECT ts, metrics_json FROM telemetry WHERE device_id = ? ORDER BY ts, metrics_json', [deviceId]);
        const expected = frames.flat();
        assert.deepEqual(rows.map((r) => Number(r.ts)), expected, 'every sample, once, with its own sampled_at');
        assert.deepEqual(rows.map((r) => (JSON.parse(r.metrics_json) as { net_rx_bytes_per_sec: number }).net_rx_bytes_per_sec), expected.map((at) => at - t0), 'each with its own metrics');
        assert.equal(rowsPerInsert.reduce((sum, n) => sum + n, 0), expected.length);
        assert.ok(rowsPerInsert.length <= frames.length, `INSERTs: ${rowsPerInsert.join(', ')}`);
        assert.deepEqual(await h.bus.pending(streamNames.telemetry, groups.telemetry), []);
      });
    });
  }

  it('refuses a telemetrySamplesPerFrameMax outside 0..the protocol bound (GATEWAY_INVALID_ARGUMENT)', () => {
    for (const bad of [-1, 1.5, telemetryBatchLimits.samplesPerFrameMax + 1]) {
      assert.throws(() => makeCore(stores, { telemetrySamplesPerFrameMax: bad }), { code: 'GATEWAY_INVALID_ARGUMENT' }, String(bad));
    }
  });
});
