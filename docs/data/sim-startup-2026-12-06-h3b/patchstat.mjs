// Adds per-statement-text CPU (process.cpuUsage) to globalThis.__sqlStats in a dist copy's sqljs-database.js
import { readFileSync, writeFileSync } from 'node:fs';
const f = `${process.argv[2]}/dist/server/stores/sql/sqljs-database.js`;
let s = readFileSync(f, 'utf8');
const helper = `\nfunction __stat(sql, t0) { const c = process.cpuUsage(t0); const m = (globalThis.__sqlStats ??= new Map()); const k = sql.slice(0, 120); const e = m.get(k) ?? { n: 0, us: 0 }; e.n++; e.us += c.user + c.system; m.set(k, e); }\n`;
s = s.replace(/\n(export )?class SqlJsDatabase/, (m) => helper + m);
s = s.replace(/    runQuery\(sql, params\) \{\n/, '    runQuery(sql, params) { const __t0 = process.cpuUsage(); try { return this.__runQuery(sql, params); } finally { __stat(sql, __t0); } }\n    __runQuery(sql, params) {\n');
s = s.replace(/    runExecute\(sql, values\) \{\n/, '    runExecute(sql, values) { const __t0 = process.cpuUsage(); try { return this.__runExecute(sql, values); } finally { __stat(sql, __t0); } }\n    __runExecute(sql, values) {\n');
if (!s.includes('__runQuery(sql, params) {') || !s.includes('__runExecute(sql, values) {') || !s.includes('function __stat')) throw new Error('patch failed');
writeFileSync(f, s);
console.log('patched', f);
