import { createRequire } from 'node:module';
const require = createRequire('/work/main/package.json');
const mysql = require('mysql2');
const c = mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'sdc_h16' });
const q = () => new Promise((res, rej) => c.query('SELECT 1', (e, r) => (e ? rej(e) : res(r))));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < 2000; i++) await q(); // warm
for (const rate of [10, 80, 640, 10, 80, 640]) {
  const n = Math.round(rate * 8); const t0 = performance.now(); const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const due = t0 + (i * 1000) / rate; const w = due - performance.now(); if (w > 0) await sleep(w); await q(); }
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ rate, n, user_us_per_query: +(cpu.user / n).toFixed(1), system_us_per_query: +(cpu.system / n).toFixed(1), wall_s: +((performance.now() - t0) / 1000).toFixed(1) }));
}
c.end();
