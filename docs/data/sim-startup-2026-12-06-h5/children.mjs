// Inclusive time under a function, by callee (first level below it): node children.mjs file pattern
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8')); const pat = new RegExp(process.argv[3]); const depth = Number(process.argv[4] ?? 1);
const byId = new Map(p.nodes.map((n) => [n.id, n])); const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const key = (n) => `${n.callFrame.functionName || '(anon)'} ${(n.callFrame.url || '').replace(/^.*\/dist\//, '')}:${n.callFrame.lineNumber}`;
const out = new Map(); let total = 0, under = 0;
for (let i = 0; i < p.samples.length; i++) { const d = p.timeDeltas[i] ?? 0; total += d; const stack = []; let id = p.samples[i]; while (id !== undefined) { stack.push(byId.get(id)); id = parent.get(id); }
  const at = stack.findLastIndex((n) => pat.test(key(n))); if (at < 0) continue; under += d; const below = stack.slice(Math.max(0, at - depth), at).reverse().map(key).join(' > ') || '(self)'; out.set(below, (out.get(below) ?? 0) + d); }
console.log('under', (100 * under / total).toFixed(2), '%');
for (const [k, v] of [...out].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log((100 * v / total).toFixed(2).padStart(6), k);
