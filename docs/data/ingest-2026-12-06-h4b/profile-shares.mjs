import { readFileSync, readdirSync } from 'node:fs';
const dir = process.argv[2]; const f = readdirSync(dir).find(n => n.endsWith('.cpuprofile'));
const p = JSON.parse(readFileSync(dir + '/' + f, 'utf8'));
const byId = new Map(p.nodes.map(n => [n.id, n]));
const parent = new Map(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map(); const dt = p.timeDeltas; let total = 0;
// only count samples after start+skipMs
const skip = Number(process.argv[3] ?? 1500);
const inPump = new Map(); const isPump = (id) => { if (inPump.has(id)) return inPump.get(id); let c = id, r = false; while (c !== undefined) { const fn = byId.get(c).callFrame.functionName; if (fn === 'pump' || fn === 'deliver' || fn === 'makeSample') { r = true; break; } c = parent.get(c); } inPump.set(id, r); return r; };
let t = 0, first = -1, last = -1; const times = [];
for (let i = 0; i < p.samples.length; i++) { t += dt[i]; times.push(t); if (isPump(p.samples[i])) { if (first < 0) first = t; last = t; } }
const from = first + skip * 1000; console.log('window ms', ((last - from) / 1000).toFixed(0));
const counts = new Map();
for (let i = 0; i < p.samples.length; i++) { if (times[i] < from || times[i] > last) continue; counts.set(p.samples[i], (counts.get(p.samples[i]) ?? 0) + dt[i]); total += dt[i]; }
const short = (u) => u.replace(/.*\/(dist|node_modules)\//, '$1/');
const key = n => `${n.callFrame.functionName || '(anon)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber}`;
const selfBy = new Map(), fileBy = new Map(), incl = new Map();
for (const [id, us] of counts) {
  const n = byId.get(id); const k = key(n);
  selfBy.set(k, (selfBy.get(k) ?? 0) + us);
  const fk = short(n.callFrame.url) || n.callFrame.functionName; fileBy.set(fk, (fileBy.get(fk) ?? 0) + us);
  // inclusive: walk up, unique keys
  const seen = new Set(); let cur = id;
  while (cur !== undefined) { const kk = key(byId.get(cur)); if (!seen.has(kk)) { seen.add(kk); incl.set(kk, (incl.get(kk) ?? 0) + us); } cur = parent.get(cur); }
}
const idle = [...counts].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, u]) => a + u, 0);
console.log('total ms', (total/1000).toFixed(0), 'idle ms', (idle/1000).toFixed(0));
const top = (m, n, title) => { console.log('==', title); for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log((100 * v / (total-idle)).toFixed(1).padStart(5), k); };
top(selfBy, 45, 'self'); top(fileBy, 30, 'file self'); top(incl, 70, 'inclusive');
// categories: first matching frame from the leaf upwards
const cats = [['agent', /^makeSample$/], ['sqljs', /sqljs-database|sql-wasm|wasm:/], ['bus', /memory-stream-bus|append-batcher/], ['cp-writer', /telemetry-rows/], ['cp-handler', /control-plane\/(events|devices|device-key-cache)/], ['cp-consumer', /stream-consumer|bus-contract\/entries/], ['gw-core-session', /core\/protocol/], ['gateway', /server\/gateway/], ['runtime', /runtime\//]];
const catOf = (id) => { let c = id; const chain = []; while (c !== undefined) { chain.push(byId.get(c)); c = parent.get(c); }
  // agent first if makeSample anywhere
  if (chain.some(n => n.callFrame.functionName === 'makeSample')) return 'agent';
  if (chain[0].callFrame.functionName === '(garbage collector)') return 'gc';
  for (const n of chain) { const s = n.callFrame.url + ' ' + n.callFrame.functionName; for (const [name, re] of cats) if (name !== 'agent' && re.test(s)) return name + (name === 'gw-core-session' && chain.some(x => /server\/control-plane/.test(x.callFrame.url)) ? '(in cp)' : ''); }
  return 'other'; };
const catBy = new Map(); const catSelf = new Map();
for (const [id, us] of counts) { const c = catOf(id); catBy.set(c, (catBy.get(c) ?? 0) + us); const k = c + ' | ' + key(byId.get(id)); catSelf.set(k, (catSelf.get(k) ?? 0) + us); }
top(catBy, 20, 'categories (leaf-up first match)');
top(catSelf, 60, 'cat|self');
