// Self time by function and by file from a .cpuprofile: node summ.mjs file [top]
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8')); const top = Number(process.argv[3] ?? 40);
const byId = new Map(p.nodes.map((n) => [n.id, n])); const self = new Map();
const dt = p.timeDeltas; let total = 0;
for (let i = 0; i < p.samples.length; i++) { const n = byId.get(p.samples[i]); const d = dt[i] ?? 0; total += d; const cf = n.callFrame; const url = (cf.url || '').replace(/^.*\/dist\//, ''); const k = `${cf.functionName || '(anon)'} ${url}:${cf.lineNumber}`; self.set(k, (self.get(k) ?? 0) + d); }
const byFile = new Map(); for (const [k, v] of self) { const f = k.split(' ')[1]?.split(':')[0] || k; byFile.set(f, (byFile.get(f) ?? 0) + v); }
console.log('total ms', (total / 1000).toFixed(0));
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log((100 * v / total).toFixed(2).padStart(6), k);
console.log('--- by file');
for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log((100 * v / total).toFixed(2).padStart(6), k);
