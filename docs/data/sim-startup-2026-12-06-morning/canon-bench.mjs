// canonicalize() of the base and after trees, alternating rounds: a sorted (parsed canonical) object and an unsorted one built in code.
const trees = { base: '/tmp/h2/base', after: '/tmp/h2/after' };
const fns = {}; for (const [k, r] of Object.entries(trees)) fns[k] = (await import(`${r}/dist/core/protocol/canonical-json.js`)).canonicalize;
const policy = { rules: Array.from({ length: 12 }, (_, i) => ({ id: `rule-${i}`, opcode: 'SET_LED', allow: { roles: ['operator', 'admin'], tags: ['lab', 'site-a'] }, limits: { per_hour: 60, window_ms: 3600000 } })), version: 3, default: 'deny' };
const sorted = JSON.parse(fns.base(policy));
const unsorted = { type: 'POLICY_BUNDLE_REPORT', session_id: 'abc', seq: 4, ts: 1700000000000, body: { version: 3, outcome: 'applied', device_id: 'dev-00001', code: null } };
for (const [k, f] of Object.entries(fns)) if (f(sorted) !== fns.base(sorted) || f(unsorted) !== fns.base(unsorted)) throw new Error('differs ' + k);
const N = 20000; const out = [];
for (let r = 0; r < 6; r++) for (const k of r % 2 ? ['after', 'base'] : ['base', 'after']) for (const [name, v] of Object.entries({ sorted, unsorted })) {
  const f = fns[k]; const t0 = process.cpuUsage(); let n = 0; for (let i = 0; i < N; i++) n += f(v).length; const d = process.cpuUsage(t0);
  out.push({ r, k, name, us: (d.user + d.system) / N });
}
for (const name of ['sorted', 'unsorted']) for (const k of ['base', 'after']) { const xs = out.filter((o) => o.k === k && o.name === name && o.r > 0).map((o) => o.us).sort((a, b) => a - b); console.log(name, k, 'median us', xs[Math.floor(xs.length / 2)].toFixed(2), 'all', xs.map((x) => x.toFixed(2)).join(' ')); }
console.log('bytes sorted', fns.base(sorted).length, 'unsorted', fns.base(unsorted).length);
