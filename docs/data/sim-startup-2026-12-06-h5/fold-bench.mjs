// Warm cost on the sql.js adapter: the episode read + the compliance read (two statements) against one statement with both.
import { mkdtempSync } from 'node:fs';
const root = process.argv[2] ?? '/tmp/h5/base';
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h5/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
await db.transaction(async (tx) => { for (let f = 0; f < 10000; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(`dev-${String(i).padStart(5, '0')}`, 1, 'ab', 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
const comp = 'SELECT d.cert_not_after, d.public_key, d.status, c.device_id, c.state, c.reasons_json, c.facts_json, c.reported_at, c.evaluated_at FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?';
const ep = 'SELECT id, device_id, kind FROM alerts WHERE episode_key = ?';
const both = 'SELECT d.cert_not_after, d.public_key, d.status, c.device_id, c.state, c.reasons_json, c.facts_json, c.reported_at, c.evaluated_at, a.id AS episode_id, a.device_id AS episode_device_id, a.kind AS episode_kind FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id LEFT JOIN alerts a ON a.episode_key = ? WHERE d.id = ?';
for (const q of [comp, ep, both]) console.log(JSON.stringify(await db.query('EXPLAIN QUERY PLAN ' + q, q === comp ? ['x'] : q === ep ? ['x'] : ['x', 'y'])));
const n = 5000; const out = { two: [], one: [] };
for (let r = 0; r < 10; r++) for (const k of (r % 2 ? ['one', 'two'] : ['two', 'one'])) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const id = `dev-${String((i * 7) % 9950).padStart(5, '0')}`; if (k === 'two') { await db.query(ep, [`device_offline:device:${id}`]); await db.query(comp, [id]); } else await db.query(both, [`device_offline:device:${id}`, id]); }
  const d = process.cpuUsage(t0); out[k].push((d.user + d.system) / n);
}
for (const k of ['two', 'one']) console.log(k, out[k].map((x) => x.toFixed(1)).join(' '));
