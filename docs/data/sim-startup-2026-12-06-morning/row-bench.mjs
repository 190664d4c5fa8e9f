// db.query on the sql.js adapter of one tree (node row-bench.mjs base|after; run alternately): 10,000 devices, the AUTH compliance read (9 columns, one row) and the audit drain's kind of read (many rows), alternating rounds.
import { mkdtempSync } from 'node:fs';
const which = process.argv[2]; const trees = { [which]: `/tmp/h2/${which}` };
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const dbs = {};
for (const [k, root] of Object.entries(trees)) {
  const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
  const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
  const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h2/rowb-'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
  await migrateControlPlane(db, { nowMs: () => 1 });
  await db.transaction(async (tx) => { for (let f = 0; f < 10000; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(`dev-${String(i).padStart(5, '0')}`, 1, 'ab', 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
  dbs[k] = db;
}
const one = 'SELECT d.cert_not_after, d.public_key, d.status, c.device_id, c.state, c.reasons_json, c.facts_json, c.reported_at, c.evaluated_at FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?';
const many = 'SELECT id, status, created_at, last_seen_at, cert_serial, cert_not_after, public_key FROM devices WHERE id >= ? ORDER BY id LIMIT 50';
const out = [];
for (let r = 0; r < 4; r++) for (const k of [which]) for (const [name, q, n] of [['one row x 9 columns', one, 5000], ['50 rows x 7 columns', many, 500]]) {
  const db = dbs[k]; const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await db.query(q, [`dev-${String((i * 7) % 9950).padStart(5, '0')}`]);
  const d = process.cpuUsage(t0); out.push({ r, k, name, us: (d.user + d.system) / n });
}
for (const name of ['one row x 9 columns', '50 rows x 7 columns']) for (const k of [which]) { const xs = out.filter((o) => o.k === k && o.name === name && o.r > 0).map((o) => o.us).sort((a, b) => a - b); console.log(name, k, 'median us per query', xs[1].toFixed(1), 'all', xs.map((x) => x.toFixed(1)).join(' ')); }
