// usage: node provbench.mjs <root>  -- the start-up's Ed25519 pattern per device on one provider sized as sim/real-crypto.ts does for 10,000 agents
const root = process.argv[2];
const { realProviderFor } = await import(`${root}/dist/sim/real-crypto.js`);
import { randomBytes } from 'node:crypto';
const N = 10000;
const p = realProviderFor(N);
const gwSeed = randomBytes(32), cpSeed = randomBytes(32);
const gwPub = p.publicKeyFromSeed(gwSeed), cpPub = p.publicKeyFromSeed(cpSeed);
const devs = Array.from({ length: N }, () => { const seed = new Uint8Array(randomBytes(32)); return { seed, pub: p.publicKeyFromSeed(seed) }; });
const msg = (n, i) => { const b = new Uint8Array(n); b.fill(i & 255); b[0] = i >> 8; b[1] = i & 255; return b; };
const t = process.cpuUsage();
for (let i = 0; i < N; i++) {
  const d = devs[i];
  const ch = msg(150, i), au = msg(300, i), ack = msg(200, i), bun = msg(1100, i), pbf = msg(1300, i), rep = msg(250, i);
  const s1 = p.sign(gwSeed, ch); p.verify(gwPub, ch, s1);           // challenge
  const s2 = p.sign(d.seed, au); p.verify(d.pub, au, s2);           // AUTH
  const s3 = p.sign(gwSeed, ack); p.verify(gwPub, ack, s3);         // AUTH_ACK
  const s4 = p.sign(cpSeed, bun); p.verify(cpPub, bun, s4);         // the bundle
  const s5 = p.sign(gwSeed, pbf); p.verify(gwPub, pbf, s5);         // POLICY_BUNDLE frame
  const s6 = p.sign(d.seed, rep); p.verify(d.pub, rep, s6); p.verify(d.pub, rep, s6); // report, twice (gateway, control plane)
}
const c = process.cpuUsage(t);
console.log(JSON.stringify({ root, us_per_device: Math.round((c.user + c.system) / N), counts: p.counts() }));
