import { mkdtempSync } from 'node:fs';
const root = '/tmp/h5/base';
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h5/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
for (const [q, p] of [["SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ? ORDER BY device_seq ASC LIMIT ?", ['a', 1, 5]], ['SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag LIMIT 256', ['a']], ['SELECT d.cert_not_after, c.state FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?', ['a']]]) {
  console.log(q.slice(0, 80)); for (const r of await db.query('EXPLAIN QUERY PLAN ' + q, p)) console.log('   ', r.detail);
}
for (const r of await db.query("SELECT name, sql FROM sqlite_master WHERE tbl_name IN ('commands','device_tags') AND type = 'index'")) console.log(r.name, r.sql);
console.log((await db.query('SELECT sqlite_version() AS v'))[0]);
