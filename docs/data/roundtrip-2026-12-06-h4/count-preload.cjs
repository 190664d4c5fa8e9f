// preload: count socket writes by peer and ioredis commands; print deltas on each stderr line containing MARK
const net = require('node:net');
const counts = new Map();
const inc = (k, n = 1) => counts.set(k, (counts.get(k) ?? 0) + n);
const orig = net.Socket.prototype._writeGeneric;
net.Socket.prototype._writeGeneric = function (writev, data, enc, cb) {
  let peer;
  const rp = this.remotePort, lp = this.localPort;
  if (rp === 6379) peer = 'redis'; else if (rp === 3306) peer = 'mysql';
  else if (this.encrypted || this._parent) peer = 'tls:' + (this.server ? 'server-side' : 'client-side');
  else peer = 'other:' + (this.server ? 'server' : 'client');
  inc('jswrite ' + peer); if (writev) inc('jswritev ' + peer);
  return orig.call(this, writev, data, enc, cb);
};
try {
  const Redis = require('/work/main/node_modules/ioredis/built/Redis.js').default;
  const o = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (command, stream) { inc('redis ' + command.name); return o.call(this, command, stream); };
} catch (e) { process.stderr.write('no ioredis patch ' + e + '\n'); }
let snap = new Map();
const ow = process.stderr.write.bind(process.stderr);
process.stderr.write = function (chunk, ...rest) {
  const s = String(chunk);
  if (s.includes('API connections opened in the commands phase') || s.includes('H4MARK')) {
    const m = /for (\d+) commands created/.exec(s); const n = m ? Number(m[1]) : 1;
    const lines = [...counts].map(([k, v]) => [k, v - (snap.get(k) ?? 0)]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    ow(`H4COUNTS per command (n=${n}):\n` + lines.map(([k, v]) => `  ${(v / n).toFixed(2).padStart(7)}  ${k}`).join('\n') + '\n');
  }
  return ow(chunk, ...rest);
};
// snapshot at commands phase start: mark when stderr says something about the commands phase starting
const ow2 = process.stderr.write;
process.stderr.write = function (chunk, ...rest) { const s = String(chunk); if (/agents online/.test(s) && !s.includes('API connections')) { snap = new Map(counts); } return ow2.call(this, chunk, ...rest); };
// globals
for (const [obj, name, label] of [[JSON, 'parse', 'JSON.parse'], [JSON, 'stringify', 'JSON.stringify'], [globalThis, 'setTimeout', 'setTimeout'], [globalThis, 'setImmediate', 'setImmediate'], [process, 'nextTick', 'nextTick'], [globalThis, 'queueMicrotask', 'queueMicrotask']]) {
  const o = obj[name];
  obj[name] = function (...a) { inc(label); if (process.env.H4_STACKS && (label === 'JSON.parse' || label === 'JSON.stringify')) { const st = (new Error().stack || '').split('\n').slice(2, 4).map((l) => l.trim().replace(/^at /, '').replace(/\(.*dist\//, '(').replace(/\(.*node_modules\//, '(nm/').replace(/:\d+\)$/, ')')).join(' < '); inc(label + '@ ' + st); } return o.apply(this, a); };
}
const cryptoMod = require('node:crypto');
for (const n of ['sign', 'verify', 'createHash', 'createHmac']) { const o = cryptoMod[n]; cryptoMod[n] = function (...a) { inc('crypto.' + n); return o.apply(this, a); }; }
setInterval(() => { const g = globalThis.__h4c; if (g) for (const [k, v] of Object.entries(g)) counts.set('fn ' + k, v); }, 50).unref();
