// Usage: node cp-stage.mjs TREE [rounds] : CPU us per K=1 telemetry entry through the control plane's side of ingest:
// StreamConsumer (telemetry options, partition per device) -> EventHandlers.handleTelemetry -> TelemetryRowWriter -> sql.js,
// memory bus read and ack included. 200 devices round-robin, 20,000 entries per round (made before the clock starts).
const root = process.argv[2]; const rounds = Number(process.argv[3] ?? 4);
const { makeHarness, sqlJsTarget } = await import(`${root}/dist/server/control-plane/test-support.js`);
const { StreamConsumer } = await import(`${root}/dist/server/control-plane/stream-consumer.js`);
const { deviceIdOfEntry } = await import(`${root}/dist/server/control-plane/events.js`);
const { telemetryConsumerOptions } = await import(`${root}/dist/server/control-plane/telemetry-rows.js`);
const { encodeBusEntry } = await import(`${root}/dist/server/bus-contract/entries.js`);
const PACK = Number(process.env.PACK ?? 1); const pack = PACK > 1 ? (await import(`${root}/dist/server/gateway/forward-message.js`)).packTelemetryFrames : undefined;
const { canonicalize } = await import(`${root}/dist/core/protocol/canonical-json.js`);
const { macEnvelope } = await import(`${root}/dist/core/protocol/envelope.js`);
const { createNodeSessionKeyCrypto } = await import(`${root}/dist/runtime/session-crypto-node.js`);
const { base64urlFromBytes } = await import(`${root}/dist/core/crypto/bytes.js`);
const { createNodeEd25519Provider } = await import(`${root}/dist/runtime/ed25519-node.js`);
const pino = (await import('pino')).default;
const h = await makeHarness(sqlJsTarget);
const provider = createNodeEd25519Provider(); const crypto = createNodeSessionKeyCrypto(); const key = new Uint8Array(32).fill(9);
const devices = Array.from({ length: 200 }, (_, i) => `ingest-stage-${String(i).padStart(5, '0')}`);
const pk = base64urlFromBytes(provider.publicKeyFromSeed(new Uint8Array(32).fill(1)));
for (const id of devices) await h.db.execute("INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES (?, 'enrolled', ?, ?, ?, ?)", [id, h.clock.nowMs(), '0a', h.clock.nowMs() + 86_400_000, pk]);
let n = 0;
const entryFields = (deviceId) => { n += 1; const now = h.clock.nowMs();
  const frame = canonicalize(macEnvelope({ fields: { v: 1, type: 'TELEMETRY', id: `t${n}`, device_id: deviceId, session_id: 's_abcdefghijklmnopqrstuv', seq: n, ts: now,
    body: { sampled_at: now + n, metrics: { cpu_pct: 12.5, mem_pct: 40.25, disk_pct: 61, net_rx_bytes_per_sec: n, net_tx_bytes_per_sec: 4200, process_count: 212 }, prev_hash: 'a'.repeat(64) } }, key, crypto }));
  return { device_id: deviceId, gateway_id: "gw-bench-1", received_at_ms: now, frame }; };
const toEntries = (items) => pack ? pack(items, PACK) : items.map((it) => encodeBusEntry("telemetry", it));
const stream = 'stage:telemetry';
const consumer = new StreamConsumer({ bus: h.bus, stream, group: 'g', consumer: 'c', logger: pino({ level: 'silent' }), scheduler: { schedule: (ms, cb) => setTimeout(cb, ms), cancel: clearTimeout },
  handle: (entry) => h.cp.events.handleTelemetry(entry), partitionKey: deviceIdOfEntry, ...telemetryConsumerOptions });
await consumer.ensureGroup();
const per = 20_000; const out = [];
for (let r = 0; r <= rounds; r++) {
  const fields = toEntries(Array.from({ length: per }, (_, i) => entryFields(devices[i % devices.length])));
  for (let i = 0; i < fields.length; i += 1000) await h.bus.appendBatch(stream, fields.slice(i, i + 1000), { maxLen: 1_000_000 });
  // prime: make sure the device key cache is warm in round 0
  const c0 = process.cpuUsage();
  let done = 0; while (done < fields.length) done += await consumer.pollOnce(0);
  const c = process.cpuUsage(c0);
  if (r > 0) out.push(((c.user + c.system) / per).toFixed(2));
}
const [row] = await h.db.query('SELECT COUNT(*) AS n FROM telemetry', []);
console.log(out.join(' '), 'rows', row.n);
await h.close(); process.exit(0);
