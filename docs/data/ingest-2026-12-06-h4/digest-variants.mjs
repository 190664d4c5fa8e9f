import { hash } from 'node:crypto';
const json = '{"cpu_pct":12.5,"disk_pct":61,"mem_pct":40.25,"net_rx_bytes_per_sec":18001,"net_tx_bytes_per_sec":4200,"process_count":212}';
const A = (s) => { const hex = hash('sha256', s, 'hex'); return Number.parseInt(hex.slice(0, 13), 16) * 2 + (Number.parseInt(hex[13], 16) >>> 3); };
const B = (s) => { const d = hash('sha256', s, 'buffer'); return (d[0] * 2 ** 45) + (d[1] * 2 ** 37) + (d[2] * 2 ** 29) + (d[3] * 2 ** 21) + (d[4] * 2 ** 13) + (d[5] * 2 ** 5) + (d[6] >>> 3); };
for (let i = 0; i < 1000; i++) { const s = json + i; if (A(s) !== B(s)) throw new Error('mismatch ' + i); }
for (let r = 0; r < 3; r++) for (const [n, f] of [['hex', A], ['buffer', B]]) { const c0 = process.cpuUsage(); const N = 200000; let x = 0; for (let i = 0; i < N; i++) x += f(json); const c = process.cpuUsage(c0); console.log(n, ((c.user + c.system) / N).toFixed(3)); }
