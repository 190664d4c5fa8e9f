const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (const rate of [10, 640, 10, 640]) {
  const n = Math.round(rate * 6); const t0 = performance.now(); const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const w = t0 + (i * 1000) / rate - performance.now(); if (w > 0) await sleep(w); }
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ rate, wakeups: n, user_us_per_wakeup: +(cpu.user / n).toFixed(1), system_us_per_wakeup: +(cpu.system / n).toFixed(1) }));
}
