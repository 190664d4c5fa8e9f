// Warm CPU per AUTH of the presence's reads on the sql.js adapter (10,000 devices): as now (3-part UNION + commands read) and the commands as a 4th part; MAX(revision) + tags as two and as one UNION ALL. Alternating rounds.
import { mkdtempSync } from 'node:fs';
const root = process.env.ROOT ?? '/tmp/h3/base';
const sched = { schedule: (ms, fn) => { const t = setTimeout(fn, ms); t.unref(); return { cancel: () => clearTimeout(t) }; } };
const { openSqlJsDatabase } = await import(`${root}/dist/server/stores/sql/sqljs-database.js`);
const { migrateControlPlane } = await import(`${root}/dist/server/control-plane/database.js`);
const db = await openSqlJsDatabase({ dataDir: mkdtempSync('/tmp/h3/mb/'), durability: { mode: 'interval', intervalMs: 1e9 }, refuseNestedCalls: false, scheduler: sched });
await migrateControlPlane(db, { nowMs: () => 1 });
const N = 10000; const id = (i) => `dev-${String(i).padStart(5, '0')}`;
await db.transaction(async (tx) => { for (let f = 0; f < N; f += 500) { const p = []; for (let i = f; i < f + 500; i++) p.push(id(i), 1, 'ab' + i, 2, 'x'.repeat(43)); await tx.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${Array.from({ length: 500 }, () => "(?, 'enrolled', ?, ?, ?, ?)").join(',')}`, p); } });
const u3 = `SELECT 'd' AS part, cert_not_after AS n1, public_key AS t1, status AS t2, NULL AS t3, NULL AS t4, NULL AS n2 FROM devices WHERE id = ?
  UNION ALL SELECT 'c', reported_at, state, reasons_json, facts_json, device_id, evaluated_at FROM device_compliance WHERE device_id = ?
  UNION ALL SELECT 'a', NULL, id, device_id, kind, NULL, NULL FROM alerts WHERE episode_key = ?`;
const st = "('queued', 'sent', 'ack_received', 'executing')";
const cmds = `SELECT id, signed_json, traceparent, device_seq FROM commands WHERE device_id = ? AND state IN ${st} AND expires_at > ? LIMIT 1001`;
const u4 = `${u3}
  UNION ALL SELECT 'q', device_seq, id, signed_json, traceparent, NULL, NULL FROM commands WHERE device_id = ? AND state IN ${st} AND expires_at > ? LIMIT 1004`;
const maxRev = 'SELECT MAX(revision) AS revision FROM policy_revisions';
const tags = 'SELECT tag FROM device_tags WHERE device_id = ? LIMIT 257';
const revTags = `SELECT 'r' AS part, MAX(revision) AS revision, NULL AS tag FROM policy_revisions UNION ALL SELECT 't', NULL, tag FROM device_tags WHERE device_id = ? LIMIT 258`;
const revTags2 = `SELECT (SELECT MAX(revision) FROM policy_revisions) AS revision, NULL AS tag UNION ALL SELECT NULL, tag FROM device_tags WHERE device_id = ? LIMIT 258`;
const V = {
  now: async (d) => { await db.query(u3, [d, d, `device_offline:${d}`]); await db.query(cmds, [d, 5]); },
  u4: async (d) => { await db.query(u4, [d, d, `device_offline:${d}`, d, 5]); },
  revTagsTwo: async (d) => { await db.query(maxRev); await db.query(tags, [d]); },
  revTagsOne: async (d) => { await db.query(revTags, [d]); },
  revTagsOneB: async (d) => { await db.query(revTags2, [d]); },
};
const only = process.env.ONLY ? process.env.ONLY.split(',') : Object.keys(V);
const n = 5000; const out = Object.fromEntries(only.map((k) => [k, []]));
for (let r = 0; r < 12; r++) for (const k of (r % 2 ? [...only].reverse() : only)) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await V[k](id((i * 7) % N));
  const d = process.cpuUsage(t0); out[k].push((d.user + d.system) / n);
}
for (const k of only) { const xs = out[k].slice(1).sort((a, b) => a - b); console.log(k.padEnd(14), 'median', xs[Math.floor(xs.length / 2)].toFixed(1), 'us;', out[k].map((x) => x.toFixed(1)).join(' ')); }
for (const q of [u4, revTags]) console.log((await db.query(`EXPLAIN QUERY PLAN ${q}`, q === u4 ? ['dev-00001', 'dev-00001', 'x', 'dev-00001', 5] : ['dev-00001'])).map((r) => r.detail).join(' / '));
