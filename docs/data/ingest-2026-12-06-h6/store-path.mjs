// Store path alone: TelemetryRowWriter on the real MySQL adapter; node CPU, mariadbd CPU and wall per row.
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
const root = process.argv[2] ?? '.';
const { createMysqlDatabase } = await import(`${root}/dist/server/stores/sql/mysql-database.js`);
const { controlPlaneAllMigrations: controlPlaneMigrations } = await import(`${root}/dist/server/control-plane/database.js`);
const { migrate } = await import(`${root}/dist/server/stores/sql/migrate.js`);
const { TelemetryRowWriter, canonicalMetricsJson } = await import(`${root}/dist/server/control-plane/telemetry-rows.js`);
execSync('mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS h6_ingest; CREATE DATABASE h6_ingest"');
const db = await createMysqlDatabase({ url: 'mysql://root@127.0.0.1:3306/h6_ingest' });
await migrate(db, controlPlaneMigrations);
if (process.env.NOID === '1') await db.execute('ALTER TABLE telemetry DROP INDEX telemetry_id, DROP COLUMN id');
const mdPid = execSync('pgrep -x mariadbd').toString().trim();
const mdTicks = () => { const f = readFileSync(`/proc/${mdPid}/stat`, 'utf8').split(') ')[1].split(' '); return +f[11] + +f[12]; };
const errs = new Map(); let stmts = 0;
const counted = { dialect: db.dialect, query: (t, p) => db.query(t, p), execute: async (t, p) => { stmts++; if (process.env.NOID === '1') t = t.replace('UPDATE id = id', 'UPDATE ts = ts'); try { return await db.execute(t, p); } catch (e) { const k = (e.code ?? '') + ' ' + String(e.message).slice(0, 300); errs.set(k, (errs.get(k) ?? 0) + 1); throw e; } } };
const writer = new TelemetryRowWriter(counted);
let counter = 0;
const devices = Array.from({ length: 200 }, (_, i) => `ingest-h6-${String(i).padStart(5, '0')}`);
async function block(frames) {
  const now = Date.now(); const waits = [];
  for (let f = 0; f < frames; f++) {
    const dev = devices[f % devices.length];
    const rows = Array.from({ length: 32 }, () => ({ deviceId: dev, sampledAtMs: now, metricsJson: canonicalMetricsJson({ cpu_pct: 12.5, disk_pct: 61, mem_pct: 40.25, net_rx_bytes_per_sec: (counter += 1), net_tx_bytes_per_sec: 4200, process_count: 212 }), riskScore: 0.1 }));
    waits.push(writer.addFrame(rows).failures);
  }
  await Promise.all(waits);
}
await block(126);
const res = [];
for (let b = 0; b < 12; b++) {
  const c0 = process.cpuUsage(); const m0 = mdTicks(); const t0 = performance.now();
  await block(126 * 2); // 8064 rows
  const c = process.cpuUsage(c0); const m = mdTicks() - m0; const w = performance.now() - t0;
  res.push([w * 1000 / 8064, (c.user + c.system) / 8064, m * 10000 / 8064]);
}
const med = (i) => res.map((r) => r[i]).sort((a, b) => a - b)[res.length >> 1];
console.log(`wall ${med(0).toFixed(1)} node ${med(1).toFixed(1)} mariadbd ${med(2).toFixed(1)} us/row (medians of 12 blocks of 8064 rows)`);
console.log('statements', stmts, 'errors', [...errs]);
await db.close();
execSync('mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS h6_ingest"');
