// CPU of 20 renewals that each supersede a certificate, and of the CRL republish after them, with
// a revocation store of `entries` live revocations (decision 0021, section "h12"). Not a test: a
// measurement, run against a built tree (`node scripts/build.mjs` first), in-process on sql.js so
// that process.cpuUsage counts the SQL work too. Compare two trees in alternating runs:
//
//   node scripts/measure-crl-renewals.mjs [repo root, default this one] [entries, default 20000]
//
// Each run: a fresh control plane (makeHarness, sql.js, embedded kv), `entries` revocations of
// serials not on record (always live, so all listed), 20 devices enrolled and renewed once (a
// renewal keeps the certificate it presented, so nothing is superseded yet), one republish; then
// measured: 20 renewals presenting the first renewal's certificate (each supersedes the enrolled
// one), then one republishCrl. Prints the CPU of the renewals, of both, and the highest stored CRL.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
const entries = Number(process.argv[3] ?? 20_000);
const renewals = 20;
const support = await import(`${root}/dist/server/control-plane/test-support.js`);
const { parseCertificate } = await import(`${root}/dist/trust/x509-provider.js`);
const h = await support.makeHarness(support.sqlJsTarget, {});
const presented = (pem) => ({ certDer: new Uint8Array(parseCertificate(pem).rawData) });
const cpuMs = (usage) => Math.round((usage.user + usage.system) / 1000);
try {
  await h.db.transaction(async (tx) => {
    for (let i = 0; i < entries; i += 1) {
      await tx.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)',
        [randomBytes(16).toString('hex'), `seed-${i}`, 'superseded', h.clock.nowMs()]);
    }
  });
  const devices = [];
  for (let i = 0; i < renewals; i += 1) {
    const deviceId = `measure-${i}`;
    const key = await support.makeDeviceKey(deviceId);
    const { token } = await h.cp.devices.createPairingToken({ actor: 'root', deviceId });
    const enrolled = (await h.cp.devices.enroll({ deviceId, token, csrPem: key.csrPem })).certificate_pem;
    const renewed = (await h.cp.devices.renew({ deviceId, csrPem: key.csrPem, presented: presented(enrolled) })).certificate_pem;
    devices.push({ deviceId, csrPem: key.csrPem, certPem: renewed });
  }
  await h.cp.devices.republishCrl();
  const start = process.cpuUsage();
  for (const d of devices) await h.cp.devices.renew({ deviceId: d.deviceId, csrPem: d.csrPem, presented: presented(d.certPem) });
  const renewalsCpu = process.cpuUsage(start);
  await h.cp.devices.republishCrl();
  const bothCpu = process.cpuUsage(start);
  const [top] = await h.db.query('SELECT MAX(crl_number) AS n FROM crls');
  console.log(JSON.stringify({ root, entries, renewals, renewalsCpuMs: cpuMs(renewalsCpu), withRepublishCpuMs: cpuMs(bothCpu), highestStoredCrl: Number(top.n) }));
} finally {
  await h.close();
}
