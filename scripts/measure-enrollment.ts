// Enrollments per second through the control plane (issue 15: at least 100/s on this machine),
// and where the time goes. Not a test and not a bench with a baseline: a measurement to repeat.
//
//   npx tsx scripts/measure-enrollment.ts [--devices 1000] [--concurrency 16] [--https] [--profile FILE.cpuprofile]
//   (MYSQL_URL and REDIS_URL set: MySQL + Redis; otherwise sql.js + the embedded key/value store)
//
// The devices' keys and CSRs are made before the clock starts (that is the devices' work, not the
// server's). The tokens come from one bulk call (timed on its own). Then every device enrolls,
// `concurrency` at once: POST /v1/enroll through fastify's inject (no TLS), or with --https over
// real TLS with a new connection per enrollment, as an agent does. Printed: enrollments per wall
// second, the process's CPU per enrollment, and the same CSRs through each step of the path alone.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { makeDeviceKey, makeHarness, storePairs } from '../server/control-plane/test-support.js';
import { httpsJson } from '../runtime/https-json.js';
import { parseDeviceCsr } from '../trust/device-csr.js';
import { parseCertificate } from '../trust/x509-provider.js';
import { DeviceCertificateIssuer } from '../trust/device-issuer.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, concurrency: { type: 'string' }, https: { type: 'boolean' }, profile: { type: 'string' } } });
const devices = Number(values.devices ?? 1000);
const concurrency = Number(values.concurrency ?? 16);

async function inBatches<T>(items: readonly T[], width: number, each: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const index = next++;
      await each(items[index]!, index);
    }
  }));
}

/** Wall and CPU time of `task`, CPU per item in ms. */
async function timed(label: string, count: number, task: () => Promise<void>): Promise<{ perSecond: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await task();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const perSecond = count / (wallMs / 1000);
  console.log(`${label.padEnd(44)} ${count} in ${(wallMs / 1000).toFixed(2)} s: ${perSecond.toFixed(0)}/s, CPU ${(cpuMs / count).toFixed(2)} ms each`);
  return { perSecond };
}

const { pairs } = storePairs();
const pair = pairs.at(-1)!;
console.log(`stores: ${pair.name}; ${devices} devices, ${concurrency} at once, ${values.https === true ? 'HTTPS (new TLS connection each)' : 'inject (no TLS)'}`);
const h = await makeHarness(pair.sql, { ...(pair.kv ? { kv: pair.kv } : {}) });
const keepAlive = setInterval(() => undefined, 1_000);
try {
  const ids = Array.from({ length: devices }, (_, i) => `enr-${String(i).padStart(6, '0')}`);
  const csrs: string[] = [];
  for (const id of ids) csrs.push((await makeDeviceKey(id)).csrPem);

  let tokens: string[] = [];
  await timed('bulk pairing tokens (one call per 10,000)', devices, async () => {
    for (let start = 0; start < ids.length; start += 10_000) {
      const created = await h.cp.devices.createPairingTokens({ actor: 'measure', deviceIds: ids.slice(start, start + 10_000) });
      tokens = tokens.concat(created.map((c) => c.token));
    }
  });

  let base = '';
  if (values.https === true) base = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
  const caPem = h.materials.pki.rootCertificate.toString('pem');
  // --profile FILE: a V8 CPU profile of the enrollments alone (open it in Chrome's DevTools).
  const profiler = values.profile === undefined ? undefined : new Session();
  if (profiler !== undefined) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  await timed('enrollments (POST /v1/enroll)', devices, () => inBatches(ids, concurrency, async (deviceId, i) => {
    const body = { device_id: deviceId, token: tokens[i]!, csr_pem: csrs[i]! };
    if (values.https === true) {
      const answer = await httpsJson({ method: 'POST', url: new URL('/v1/enroll', base), caPem, body, timeoutMs: 60_000 });
      if (answer.status !== 201) throw new Error(`enroll ${deviceId}: ${answer.status}`);
    } else {
      const answer = await h.cp.app.inject({ method: 'POST', url: '/v1/enroll', payload: body });
      if (answer.statusCode !== 201) throw new Error(`enroll ${deviceId}: ${answer.statusCode} ${answer.body}`);
    }
  }));

  if (profiler !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    await writeFile(values.profile!, JSON.stringify(profile));
    profiler.disconnect();
  }

  // The steps alone, on the same CSRs (serially, one core).
  const sample = csrs.slice(0, Math.min(300, devices));
  await timed('  step: parse + verify the CSR', sample.length, async () => { for (const csr of sample) await parseDeviceCsr(csr); });
  const issuer = new DeviceCertificateIssuer({ intermediate: h.materials.pki.intermediate, rootCertificate: h.materials.pki.rootCertificate, random: h.cp.context.random, isRevoked: () => false });
  const issued: string[] = [];
  await timed('  step: issue (CSR again + sign X.509)', sample.length, async () => {
    for (const [i, csr] of sample.entries()) issued.push((await issuer.issueDeviceCertificate({ csrPem: csr, deviceId: ids[i]!, now: new Date(h.clock.nowMs()) })).certificatePem);
  });
  await timed('  step: parse the issued certificate', sample.length, async () => { for (const pem of issued) parseCertificate(pem); });
} finally {
  await h.close();
  await pair.sql.cleanup();
  clearInterval(keepAlive);
}
