import { createHmac, hash, randomBytes } from 'node:crypto';
const key = new Uint8Array(randomBytes(32)); const msg = new Uint8Array(randomBytes(420));
const A = (k, m) => new Uint8Array(createHmac('sha256', k).update(m).digest());
const B = (k, m) => {
  const inner = Buffer.allocUnsafe(64 + m.length);
  for (let i = 0; i < 64; i++) inner[i] = (i < k.length ? k[i] : 0) ^ 0x36;
  inner.set(m, 64);
  const outer = Buffer.allocUnsafe(96);
  for (let i = 0; i < 64; i++) outer[i] = (i < k.length ? k[i] : 0) ^ 0x5c;
  outer.set(hash('sha256', inner, 'buffer'), 64);
  return new Uint8Array(hash('sha256', outer, 'buffer'));
};
console.log(Buffer.from(A(key,msg)).equals(Buffer.from(B(key,msg))));
for (let round = 0; round < 4; round++) for (const [n, f] of [['A', A], ['B', B]]) {
  const c0 = process.cpuUsage(); const N = 100000; for (let i = 0; i < N; i++) f(key, msg); const c = process.cpuUsage(c0);
  console.log(n, ((c.user + c.system) / N).toFixed(2), 'us');
}
