// Main-thread ELU and whole-process CPU of Ed25519 verifies at a fixed rate: inline vs in one worker thread.
// Usage: node ed25519-worker-handoff.mjs RATE_PER_S SECONDS inline|worker (NOOP=1 with worker: the worker answers without verifying, the hand-off alone).
import { generateKeyPairSync, sign, verify, createPublicKey } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const rawPub = publicKey.export({ format: 'der', type: 'spki' });
const msg = Buffer.alloc(500, 7);
const sig = sign(null, msg, privateKey);
const ratePerS = Number(process.argv[2] ?? 2000), seconds = Number(process.argv[3] ?? 3), mode = process.argv[4] ?? 'inline';
const worker = mode === 'worker' ? new Worker(`
const { parentPort } = require('node:worker_threads'); const { verify, createPublicKey } = require('node:crypto');
let key; parentPort.on('message', (m) => { key ??= createPublicKey({ key: Buffer.from(m.pub), format: 'der', type: 'spki' });
  parentPort.postMessage({ id: m.id, ok: process.env.NOOP ? true : verify(null, Buffer.from(m.msg), key, Buffer.from(m.sig)) }); });`, { eval: true }) : undefined;
const pending = new Map(); let next = 0;
worker?.on('message', (m) => { pending.get(m.id)(m.ok); pending.delete(m.id); });
const key = createPublicKey({ key: rawPub, format: 'der', type: 'spki' });
const one = () => mode === 'worker' ? new Promise((r) => { const id = next++; pending.set(id, r); worker.postMessage({ id, pub: rawPub, msg, sig }); }) : Promise.resolve(verify(null, msg, key, sig));
// warm
for (let i = 0; i < 500; i++) await one();
const total = ratePerS * seconds; const start = performance.now(); const elu0 = performance.eventLoopUtilization(); const cpu0 = process.cpuUsage();
let done = 0; const all = [];
await new Promise((resolve) => { let k = 0; const tick = () => { const due = Math.floor((performance.now() - start) * ratePerS / 1000); while (k < Math.min(due, total)) { all.push(one()); k++; } if (k >= total) resolve(); else setTimeout(tick, 1); }; tick(); });
const ok = (await Promise.all(all)).every(Boolean);
const elu = performance.eventLoopUtilization(elu0).utilization; const cpu = process.cpuUsage(cpu0); const wall = performance.now() - start;
console.log(JSON.stringify({ mode, ratePerS, ok, mainElu: +elu.toFixed(3), cpuUsPerVerify: +((cpu.user + cpu.system) / total).toFixed(1), wallMs: Math.round(wall) }));
await worker?.terminate();
