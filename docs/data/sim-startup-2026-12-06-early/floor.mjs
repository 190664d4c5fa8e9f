import { generateKeyPairSync, sign, verify } from 'node:crypto';
const keys = Array.from({length: 200}, () => generateKeyPairSync('ed25519'));
const msgs = [120, 400, 1200].map(n => Buffer.alloc(n, 7));
let sigs = keys.map(k => msgs.map(m => sign(null, m, k.privateKey)));
for (let r=0;r<3;r++){
 for (const [mi,m] of msgs.entries()) {
  let t=process.cpuUsage(); for (let i=0;i<6000;i++) sign(null, m, keys[i%200].privateKey); let c=process.cpuUsage(t); const s=(c.user+c.system)/6000;
  t=process.cpuUsage(); for (let i=0;i<6000;i++) verify(null, m, keys[i%200].publicKey, sigs[i%200][mi]); c=process.cpuUsage(t); const v=(c.user+c.system)/6000;
  console.log(`msg ${m.length}B sign ${s.toFixed(1)} us verify ${v.toFixed(1)} us`);
 }}
