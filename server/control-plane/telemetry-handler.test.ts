import { createHook } from 'node:async_hooks';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { base64urlFromBytes } from '../../core/crypto/bytes.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { macEnvelope } from '../../core/protocol/envelope.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import { makeHarness, sqlJsTarget, type Harness, refusalCodeOf } from './test-support.js';

/**
 * Issue 17: the telemetry handler answers a MAC'd sample of a device whose row is cached without
 * an async call, a promise from the key cache or an await for a skipped last_seen_at write
 * (DeviceService.telemetryFrame, recordSeen), with the same refusals as before.
 */
describe('the telemetry handler: a sample of a cached device', () => {
  const provider = createNodeEd25519Provider();
  const sessionCrypto = createNodeSessionKeyCrypto();
  const macKey = new Uint8Array(32).fill(9);
  let h: Harness;
  let seq = 0;

  const entryOf = (fields: Record<string, string>): BusEntry => ({ id: `${++seq}-0`, fields, deliveryCount: 1 });
  const sample = (deviceId: string, options: { frameDeviceId?: string; type?: string } = {}): BusEntry => {
    const nowMs = h.clock.nowMs();
    seq += 1;
    const frame = canonicalize(macEnvelope({
      fields: {
        v: 1, type: options.type ?? 'TELEMETRY', id: `t${seq}`, device_id: options.frameDeviceId ?? deviceId, session_id: 's1', seq, ts: nowMs,
        body: { sampled_at: nowMs + seq, metrics: { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 4, net_tx_bytes_per_sec: 5 } },
      },
      key: macKey, crypto: sessionCrypto,
    }));
    return entryOf(encodeBusEntry('telemetry', { device_id: deviceId, gateway_id: 'gw-1', received_at_ms: nowMs, frame }));
  };
  const codeOf = refusalCodeOf;

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    const publicKey = base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(1)));
    for (const id of ['dev-handler-a', 'dev-handler-b']) {
      await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)",
        [id, h.clock.nowMs(), id === 'dev-handler-a' ? 'a1' : 'b1', h.clock.nowMs() + 86_400_000, publicKey]);
    }
  });
  after(async () => {
    await h.close();
  });

  it('makes at most 3 promises per sample once the row is cached, last_seen_at is fresh and the score is below the alert threshold (12.6 before issue 17\'s first pass, 3.6 while the handler was an async function), and stores every sample', async () => {
    const id = 'dev-handler-a';
    // The first sample reads the row and writes last_seen_at; the ones after it find both done.
    await h.cp.events.handleTelemetry(sample(id));
    const samples = Array.from({ length: 100 }, () => sample(id));
    let promises = 0;
    const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises += 1; } }).enable();
    try {
      // At once, as the consumer runs them: one INSERT for all, whose own promises are shared.
      await Promise.all(samples.map((entry) => h.cp.events.handleTelemetry(entry)));
    } finally {
      hook.disable();
    }
    const perSample = promises / samples.length;
    assert.ok(perSample <= 3, `${perSample.toFixed(2)} promises per sample`);
    const [row] = await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM telemetry WHERE device_id = ?', [id]);
    assert.equal(Number(row?.n), 101);
  });

  it('refuses what it refused before, cached row or not: another device\'s frame, another type, a revoked device', async () => {
    const id = 'dev-handler-b';
    await h.cp.events.handleTelemetry(sample(id));
    assert.equal(await codeOf(h.cp.events.handleTelemetry(sample(id, { frameDeviceId: 'dev-handler-a' }))), 'COMMAND_DEVICE_MISMATCH');
    assert.equal(await codeOf(h.cp.events.handleTelemetry(sample(id, { type: 'HEARTBEAT' }))), 'PROTO_SCHEMA_INVALID');
    await h.cp.devices.revoke({ deviceId: id, actor: 'admin', reason: 'keyCompromise' });
    assert.equal(await codeOf(h.cp.events.handleTelemetry(sample(id))), 'API_DEVICE_REVOKED');
    // Cached again (the revoked row), the next sample is refused the same way without a read.
    assert.equal(await codeOf(h.cp.events.handleTelemetry(sample(id))), 'API_DEVICE_REVOKED');
  });
});
