// Usage: node parse-signed-envelope-stage.mjs TREE (a built checkout): CPU ns per parseSignedEnvelope of a telemetry frame value.
const { parseSignedEnvelope } = await import(`${process.argv[2]}/dist/core/protocol/envelope.js`);
const text = '{"body":{"metrics":{"cpu_pct":12.5,"disk_pct":61,"mem_pct":40.25,"net_rx_bytes_per_sec":18000,"net_tx_bytes_per_sec":4200,"process_count":212},"prev_hash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","sampled_at":1764900000000},"device_id":"ingest-abcd-00001","id":"a123","seq":123,"session_id":"s_abcdefghijklmnopqrstuv","sig":{"alg":"HMAC-SHA256","kid":"session","value":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"},"ts":1764900000000,"type":"TELEMETRY","v":1}';
const N = 300000; const vals = Array.from({ length: 1000 }, () => JSON.parse(text));
for (let i = 0; i < 20000; i++) parseSignedEnvelope(vals[i % 1000]);
const s = process.cpuUsage(); for (let i = 0; i < N; i++) parseSignedEnvelope(vals[i % 1000]); const c = process.cpuUsage(s);
console.log(((c.user + c.system) / N * 1000).toFixed(0));
