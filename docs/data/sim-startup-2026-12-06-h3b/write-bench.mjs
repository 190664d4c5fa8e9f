// Warm CPU per device of the AUTH's writes on the sql.js adapter (10,000 devices), alone and gathered; alternating rounds.
import { mkdtempSync } from 'node:fs';
const root = process.env.ROOT ?? '/tmp/h3/base';
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h3/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
const N = 10000; const id = (i) => `dev-${String(i).padStart(5, '0')}`;
await db.transaction(async (tx) => { for (let f = 0; f < N; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(id(i), 1, 'ab' + i, 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
const presenceSql = `UPDATE devices SET
         last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < ? THEN ? ELSE last_seen_at END,
         gateway_id = CASE WHEN ? = 1 THEN ? WHEN gateway_id = ? THEN NULL ELSE gateway_id END,
         last_command_seq = COALESCE(?, last_command_seq),
         clock_offset_ms = COALESCE(?, clock_offset_ms),
         agent_version = COALESCE(?, agent_version)
       WHERE id = ?`;
const presenceArgs = (d, t) => [t, t, 1, 'gw-1', 'gw-1', null, 0, '1.2.3', d];
const compSql = 'INSERT INTO device_compliance (state, reasons_json, facts_json, reported_at, evaluated_at, device_id) VALUES (?, ?, ?, ?, ?, ?)';
const compArgs = (d, t) => ['compliant', '[]', '{"agent_version":"1.2.3","os_version":"linux-6.1","binary_sha256":"' + 'a'.repeat(64) + '"}', t, t, d];
const repSql = 'INSERT INTO policy_bundle_reports (device_id, version, outcome, code, gateway_id, reported_at) VALUES (?, ?, ?, ?, ?, ?)';
const repArgs = (d, t) => [d, 1, 'accepted', null, 'gw-1', t];
const outSql = 'INSERT INTO audit_outbox (ts, kind, actor, subject, payload_json) VALUES (?, ?, ?, ?, ?)';
const outArgs = (d, t) => [t, 'device.compliance', 'system', `device:${d}`, '{"from":"unknown","reasons":[],"to":"compliant"}'];
let round = 0;
const clear = async () => { await db.transaction(async (tx) => { await tx.execute('DELETE FROM device_compliance'); await tx.execute('DELETE FROM policy_bundle_reports'); await tx.execute('DELETE FROM audit_outbox'); }); };
const G = Number(process.env.G ?? 64);
const V = {
  presence: async (ds, t) => { for (const d of ds) await db.execute(presenceSql, presenceArgs(d, t)); },
  presenceTx: async (ds, t) => { for (let i = 0; i < ds.length; i += G) await db.transaction(async (tx) => { for (const d of ds.slice(i, i + G)) await tx.execute(presenceSql, presenceArgs(d, t)); }); },
  compliance: async (ds, t) => { for (const d of ds) await db.transaction(async (tx) => { await tx.execute(compSql, compArgs(d, t)); await tx.execute(outSql, outArgs(d, t)); }); },
  complianceTx: async (ds, t) => { for (let i = 0; i < ds.length; i += G) await db.transaction(async (tx) => { for (const d of ds.slice(i, i + G)) { await tx.execute(compSql, compArgs(d, t)); await tx.execute(outSql, outArgs(d, t)); } }); },
  report: async (ds, t) => { for (const d of ds) await db.transaction(async (tx) => { await tx.execute(repSql, repArgs(d, t)); await tx.execute(outSql, outArgs(d, t)); }); },
  reportTx: async (ds, t) => { for (let i = 0; i < ds.length; i += G) await db.transaction(async (tx) => { for (const d of ds.slice(i, i + G)) { await tx.execute(repSql, repArgs(d, t)); await tx.execute(outSql, outArgs(d, t)); } }); },
  emptyTx: async (ds, t) => { for (const d of ds) await db.transaction(async () => undefined); },
};
const only = process.env.ONLY ? process.env.ONLY.split(',') : Object.keys(V);
const n = Number(process.env.N_PER ?? 2000); const out = Object.fromEntries(only.map((k) => [k, []]));
for (let r = 0; r < 8; r++) for (const k of (r % 2 ? [...only].reverse() : only)) {
  await clear();
  const ds = []; for (let i = 0; i < n; i++) ds.push(id((i * 7 + r * 131) % N));
  const t0 = process.cpuUsage();
  await V[k](ds, 1000 + r);
  const dd = process.cpuUsage(t0); out[k].push((dd.user + dd.system) / n);
}
for (const k of only) { const xs = out[k].slice(1).sort((a, b) => a - b); console.log(k.padEnd(14), 'median', xs[Math.floor(xs.length / 2)].toFixed(1), 'us;', out[k].map((x) => x.toFixed(1)).join(' ')); }
