import { hash } from 'node:crypto';
// Usage: node session-end-stage.mjs TREE (a built checkout): CPU us per MAC-d TELEMETRY frame in GatewayConnection.receive (60,000 frames, the first 10,000 a warm-up).
const root = process.argv[2];
const { AgentConnection } = await import(`${root}/dist/core/protocol/session/agent-connection.js`);
const { GatewayConnection, deviceKid } = await import(`${root}/dist/core/protocol/session/gateway-connection.js`);
const { createNodeEd25519Provider } = await import(`${root}/dist/runtime/ed25519-node.js`);
const { createNodeSessionKeyCrypto } = await import(`${root}/dist/runtime/session-crypto-node.js`);
const { systemRandom } = await import(`${root}/dist/runtime/system.js`);
const provider = createNodeEd25519Provider();
const crypto = createNodeSessionKeyCrypto();
const dseed = systemRandom.bytes(32), gseed = systemRandom.bytes(32);
const deviceId = 'ingest-abcd-00001';
const gw = new GatewayConnection({ gatewayId: 'gw', sessionId: 's_abcdefghijklmnopqrstuv', deviceId, devicePublicKey: provider.publicKeyFromSeed(dseed), signer: { kid: 'gateway:gw', seed: gseed, provider }, random: systemRandom, heartbeatIntervalMs: 3_600_000, authTimeoutMs: 10_000, sessionToken: 'tok', telemetrySha256Hex: (b) => hash('sha256', b, 'hex'), sessionMac: { crypto, random: systemRandom } });
const agent = new AgentConnection({ deviceId, signer: { kid: deviceKid(deviceId), seed: dseed, provider }, resolveGatewayKey: (kid) => (kid === 'gateway:gw' ? provider.publicKeyFromSeed(gseed) : undefined), agentVersion: 'b/1', lastCommandSeq: 0, sessionMac: { crypto, random: systemRandom } });
let now = Date.now();
gw.start(now);
for (let round = 0; round < 5; round++) { for (const f of gw.takeOutgoing()) agent.receive(f, now); for (const f of agent.takeOutgoing()) gw.receive(f, now); }
const metrics = { cpu_pct: 12.5, mem_pct: 40.25, disk_pct: 61, net_rx_bytes_per_sec: 18_000, net_tx_bytes_per_sec: 4_200, process_count: 212 };
const N = 60000; const frames = []; let prev;
for (let i = 0; i < N; i++) { agent.sendTelemetry({ sampled_at: now, metrics, ...(prev ? { prev_hash: prev } : {}) }, now); const [f] = agent.takeOutgoing(); prev = hash('sha256', f, 'hex'); frames.push(f); }
// warm-up on the first 10,000, measure the rest
for (let i = 0; i < 10000; i++) gw.receive(frames[i], now);
const s = process.cpuUsage();
for (let i = 10000; i < N; i++) { const ev = gw.receive(frames[i], now); if (ev[0].kind !== 'message') throw new Error('refused'); }
const c = process.cpuUsage(s); console.log(((c.user + c.system) / (N - 10000)).toFixed(2));
