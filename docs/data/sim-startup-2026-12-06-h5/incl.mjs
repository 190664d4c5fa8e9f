// Inclusive share by function (on the stack at least once per sample): node incl.mjs file pattern...
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8')); const pats = process.argv.slice(3).map((x) => new RegExp(x));
const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const key = (n) => `${n.callFrame.functionName || '(anon)'} ${(n.callFrame.url || '').replace(/^.*\/dist\//, '')}:${n.callFrame.lineNumber}`;
const incl = new Map(); let total = 0;
for (let i = 0; i < p.samples.length; i++) { const d = p.timeDeltas[i] ?? 0; total += d; const seen = new Set(); let id = p.samples[i]; while (id !== undefined) { const k = key(byId.get(id)); if (!seen.has(k)) { seen.add(k); incl.set(k, (incl.get(k) ?? 0) + d); } id = parent.get(id); } }
const rows = [...incl].filter(([k]) => pats.length === 0 || pats.some((r) => r.test(k))).sort((a, b) => b[1] - a[1]).slice(0, 60);
for (const [k, v] of rows) console.log((100 * v / total).toFixed(2).padStart(6), k);
