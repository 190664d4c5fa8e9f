// Warm CPU per statement on the sql.js adapter, variants of the presence's commands read; alternating rounds.
import { mkdtempSync } from 'node:fs';
const root = process.env.ROOT ?? '/work/main'; // a built checkout (h14 ran it on /tmp/h14/base, a worktree of ec669fd)
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h14/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
await db.transaction(async (tx) => { for (let f = 0; f < 10000; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(`dev-${String(i).padStart(5, '0')}`, 1, 'ab', 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
const st = "('queued', 'sent', 'ack_received', 'executing')";
const V = {
  ep: ['SELECT id, device_id, kind FROM alerts WHERE episode_key = ?', (id) => [`device_offline:${id}`]],
  cmds: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ${st} AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`, (id) => [id, 5, 1000]],
  cmdsLim: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ${st} AND expires_at > ? ORDER BY device_seq ASC LIMIT 1000`, (id) => [id, 5]],
  cmdsParamIn: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN (?, ?, ?, ?) AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`, (id) => [id, 'queued', 'sent', 'ack_received', 'executing', 5, 1000]],
  cmdsPlusState: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND +state IN ${st} AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`, (id) => [id, 5, 1000]],
  cmdsNoOrder: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ${st} AND expires_at > ? LIMIT ?`, (id) => [id, 5, 1000]],
  cmdsBare: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ?`, (id) => [id]],
  cExp: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND expires_at > ?`, (id) => [id, 5]],
  cOrd: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? ORDER BY device_seq`, (id) => [id]],
  cLim: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? LIMIT ?`, (id) => [id, 1000]],
  cIn: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing')`, (id) => [id]],
  cEq: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state = 'queued'`, (id) => [id]],
  epOrd: ['SELECT id, device_id, kind FROM alerts WHERE episode_key = ? ORDER BY id', (id) => [`device_offline:${id}`]],
  tLitOrd: [`SELECT tag FROM device_tags WHERE device_id = 'dev-00001' ORDER BY tag`, (id) => []],
  tLit: [`SELECT tag FROM device_tags WHERE device_id = 'dev-00001'`, (id) => []],
  tOrdRev: ['SELECT tag FROM device_tags WHERE device_id = ? ORDER BY device_id, tag', (id) => [id]],
  tOrdNum: ['SELECT tag FROM device_tags WHERE device_id = ? ORDER BY 1', (id) => [id]],
  nA: [`SELECT id, signed_json, traceparent, device_seq FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ?`, (id) => [id, 5]],
  nLitLim: [`SELECT id, signed_json, traceparent, device_seq FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ? LIMIT 1001`, (id) => [id, 5]],
  nOrdLit: [`SELECT id, signed_json, traceparent FROM commands WHERE device_id = ? AND state IN ('queued', 'sent', 'ack_received', 'executing') AND expires_at > ? ORDER BY device_seq ASC LIMIT 1000`, (id) => [id, 5]],
  tagsLitLim: ['SELECT tag FROM device_tags WHERE device_id = ? LIMIT 257', (id) => [id]],
  tags: ['SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag LIMIT 256', (id) => [id]],
  tagsNoLim: ['SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag', (id) => [id]],
  tagsBare: ['SELECT tag FROM device_tags WHERE device_id = ?', (id) => [id]],
};
const only = process.env.ONLY ? process.env.ONLY.split(',') : Object.keys(V);
for (const k of only) { const plan = await db.query(`EXPLAIN QUERY PLAN ${V[k][0]}`, V[k][1]('dev-00001')); console.log(k, '|', plan.map((r) => r.detail).join(' / ')); }
const n = 5000; const out = Object.fromEntries(only.map((k) => [k, []]));
for (let r = 0; r < 8; r++) for (const k of (r % 2 ? [...only].reverse() : only)) {
  const [sql, args] = V[k];
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const id = `dev-${String((i * 7) % 9950).padStart(5, '0')}`; await db.query(sql, args(id)); }
  const d = process.cpuUsage(t0); out[k].push((d.user + d.system) / n);
}
for (const k of only) { const xs = out[k].slice(1).sort((a, b) => a - b); console.log(k.padEnd(14), 'median', xs[Math.floor(xs.length / 2)].toFixed(1), 'us;', out[k].map((x) => x.toFixed(1)).join(' ')); }
