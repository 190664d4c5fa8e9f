// Warm CPU per AUTH's reads on the sql.js adapter: variants, alternating rounds.
import { mkdtempSync } from 'node:fs';
const root = '/tmp/h5/base';
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h5/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
await db.transaction(async (tx) => { for (let f = 0; f < 10000; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(`dev-${String(i).padStart(5, '0')}`, 1, 'ab', 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
const cols = 'd.cert_not_after, d.public_key, d.status, c.device_id, c.state, c.reasons_json, c.facts_json, c.reported_at, c.evaluated_at';
const comp = `SELECT ${cols} FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?`;
const ep = 'SELECT id, device_id, kind FROM alerts WHERE episode_key = ?';
const join = `SELECT ${cols}, a.id AS episode_id, a.device_id AS episode_device_id, a.kind AS episode_kind FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id LEFT JOIN alerts a ON a.episode_key = ? WHERE d.id = ?`;
const sub = `SELECT ${cols}, (SELECT id FROM alerts WHERE episode_key = ?1) AS episode_id, (SELECT device_id FROM alerts WHERE episode_key = ?1) AS episode_device_id, (SELECT kind FROM alerts WHERE episode_key = ?1) AS episode_kind FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?2`;
const cmds = "SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ? ORDER BY device_seq ASC LIMIT ?";
const cmdsOr = "SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND (state = 'queued' OR state = 'sent' OR state = 'ack_received' OR state = 'executing') AND expires_at > ? ORDER BY device_seq ASC LIMIT ?";
const cmdsNoState = "SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND expires_at > ? ORDER BY device_seq ASC LIMIT ?";
const cmdsNoOrder = "SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ? LIMIT ?";
const variants = {
  cmds: async (id) => { await db.query(cmds, [id, 5, 1000]); },
  cmdsOr: async (id) => { await db.query(cmdsOr, [id, 5, 1000]); },
  cmdsNoState: async (id) => { await db.query(cmdsNoState, [id, 5, 1000]); },
  cmdsNoOrder: async (id) => { await db.query(cmdsNoOrder, [id, 5, 1000]); },
  comp: async (id) => { await db.query(comp, [id]); },
};
const n = 5000; const out = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < 8; r++) for (const k of (r % 2 ? Object.keys(variants).reverse() : Object.keys(variants))) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const id = `dev-${String((i * 7) % 9950).padStart(5, '0')}`; await variants[k](id, `device_offline:${id}`); }
  const d = process.cpuUsage(t0); out[k].push((d.user + d.system) / n);
}
for (const k of Object.keys(variants)) { const xs = out[k].slice(1).sort((a, b) => a - b); console.log(k.padEnd(9), 'median', xs[Math.floor(xs.length / 2)].toFixed(1), 'us;', out[k].map((x) => x.toFixed(1)).join(' ')); }
