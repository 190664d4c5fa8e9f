// Samples whose stack holds a function matching TARGET, attributed to the nearest caller frame matching WHO: node callers.mjs file TARGET WHO
import { readFileSync } from 'node:fs';
const [file, target, who] = process.argv.slice(2); const T = new RegExp(target), W = new RegExp(who);
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const key = (n) => `${n.callFrame.functionName || '(anon)'} ${(n.callFrame.url || '').replace(/^.*\/dist\//, '')}:${n.callFrame.lineNumber}`;
let total = 0; const by = new Map(); let tin = 0;
for (let i = 0; i < p.samples.length; i++) { const d = p.timeDeltas[i] ?? 0; total += d; let id = p.samples[i]; let hit = false; let w;
  while (id !== undefined) { const k = key(byId.get(id)); if (!hit && T.test(k)) hit = true; else if (hit && W.test(k)) { w = k; break; } id = parent.get(id); }
  if (hit) { tin += d; const kk = w ?? '(none)'; by.set(kk, (by.get(kk) ?? 0) + d); } }
console.log('in target', (100 * tin / total).toFixed(2));
for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((100 * v / total).toFixed(2).padStart(6), k);
