import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import { deviceFrame, makeHarness, sqlJsTarget, type Harness, refusalCodeOf } from './test-support.js';

/**
 * Decision 0004, "Batches": the telemetry handler takes a TELEMETRY_BATCH frame's entry once and
 * stores each sample as its own row; a batch exists only under the session MAC, so a signed one
 * (which no gateway forwards) is refused, nothing stored.
 */
describe('the telemetry handler: TELEMETRY_BATCH entries', () => {
  const provider = createNodeEd25519Provider();
  const sessionCrypto = createNodeSessionKeyCrypto();
  const deviceSeed = new Uint8Array(32).fill(3);
  const deviceId = 'dev-batch-handler';
  let h: Harness;
  let seq = 0;

  const metrics = (i: number) => ({ cpu_pct: i, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 });
  const entryOf = (frame: string, receivedAtMs: number): BusEntry => ({
    id: `${++seq}-0`, fields: encodeBusEntry('telemetry', { device_id: deviceId, gateway_id: 'gw-1', received_at_ms: receivedAtMs, frame }), deliveryCount: 1,
  });
  const codeOf = refusalCodeOf;
  const stored = async () => (await h.db.query<{ ts: number; metrics_json: string }>('SELECT ts, metrics_json FROM telemetry WHERE device_id = ? ORDER BY ts, id', [deviceId]))
    .map((row) => [Number(row.ts), (JSON.parse(row.metrics_json) as { cpu_pct: number }).cpu_pct]);

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
      [deviceId, h.clock.nowMs(), 'c1', h.clock.nowMs() + 86_400_000, base64urlFromBytes(provider.publicKeyFromSeed(deviceSeed))]);
  });
  after(async () => {
    await h.close();
  });

  it('stores every sample of a MACd batch as its own row, with its own sampled_at and metrics (a sample repeated in the frame, same time and metrics, once)', async () => {
    const nowMs = h.clock.nowMs();
    const body = { samples: [0, 5, 5, 9].map((d) => ({ sampled_at: nowMs + d, metrics: metrics(d) })) } as unknown as JsonObject;
    const frame = canonicalize(macEnvelope({
      fields: { v: 1, type: 'TELEMETRY_BATCH', id: 'b1', device_id: deviceId, session_id: 's1', seq: 1, ts: nowMs, body },
      key: new Uint8Array(32).fill(9), crypto: sessionCrypto,
    }));
    await h.cp.events.handleTelemetry(entryOf(frame, nowMs));
    // Two samples with the same time and metrics carry nothing apart: one row (docs/decisions/0012-telemetry-sample-identity.md).
    assert.deepEqual(await stored(), [[nowMs, 0], [nowMs + 5, 5], [nowMs + 9, 9]]);
  });


  it('a last-seen write that fails after the rows are stored does not fail the entry', async () => {
    const devices = h.cp.devices as unknown as { recordSeen: (deviceId: string, atMs: number) => Promise<void> | undefined };
    const recordSeen = devices.recordSeen;
    devices.recordSeen = () => Promise.reject(new SdcError('STORE_UNAVAILABLE', 'the database is down for this write'));
    try {
      const nowMs = h.clock.nowMs() + 60_000;
      const before = (await stored()).length;
      const body = { samples: [0, 1, 2].map((d) => ({ sampled_at: nowMs + d, metrics: metrics(d) })) } as unknown as JsonObject;
      const frame = canonicalize(macEnvelope({
        fields: { v: 1, type: 'TELEMETRY_BATCH', id: 'b-seen', device_id: deviceId, session_id: 's1', seq: 50, ts: nowMs, body },
        key: new Uint8Array(32).fill(9), crypto: sessionCrypto,
      }));
      assert.equal(await codeOf(h.cp.events.handleTelemetry(entryOf(frame, nowMs))), 'accepted');
      assert.equal((await stored()).length, before + 3);
    } finally {
      devices.recordSeen = recordSeen;
    }
  });
  it('refuses a signed TELEMETRY_BATCH (PROTO_TELEMETRY_BATCH_WITHOUT_MAC) and stores none of it', async () => {
    const before = (await stored()).length;
    const nowMs = h.clock.nowMs() + 1_000;
    const frame = deviceFrame({ deviceId, seed: deviceSeed, type: 'TELEMETRY_BATCH', body: { samples: [{ sampled_at: nowMs, metrics: metrics(1) }] } as unknown as JsonObject, ts: nowMs });
    assert.equal(await codeOf(h.cp.events.handleTelemetry(entryOf(frame, nowMs))), 'PROTO_TELEMETRY_BATCH_WITHOUT_MAC');
    assert.equal((await stored()).length, before);
  });
});
