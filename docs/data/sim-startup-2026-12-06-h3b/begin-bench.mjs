// Raw sql.js: BEGIN IMMEDIATE + one INSERT + COMMIT, with BEGIN/COMMIT through Database.run (sqlite3_exec: parsed every time) or prepared once.
import initSqlJs from '/work/main/node_modules/sql.js/dist/sql-wasm.js';
const SQL = await initSqlJs();
const db = new SQL.Database();
db.run('PRAGMA journal_mode = MEMORY'); db.run('PRAGMA locking_mode = EXCLUSIVE');
db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
const b = db.prepare('BEGIN IMMEDIATE'), c = db.prepare('COMMIT');
const V = {
  run: () => { db.run('BEGIN IMMEDIATE'); ins.bind(['x']); ins.step(); ins.reset(); db.run('COMMIT'); },
  prepared: () => { b.step(); b.reset(); ins.bind(['x']); ins.step(); ins.reset(); c.step(); c.reset(); },
  autocommit: () => { ins.bind(['x']); ins.step(); ins.reset(); },
};
const n = 20000; const out = {};
for (let r = 0; r < 16; r++) for (const k of (r % 2 ? Object.keys(V).reverse() : Object.keys(V))) {
  const t0 = process.cpuUsage(); for (let i = 0; i < n; i++) V[k](); const d = process.cpuUsage(t0); (out[k] ??= []).push((d.user + d.system) / n);
}
for (const k of Object.keys(V)) { const xs = out[k].slice(1).sort((a, b) => a - b); console.log(k.padEnd(11), 'median', xs[7].toFixed(2), 'us;', out[k].map((x) => x.toFixed(2)).join(' ')); }
