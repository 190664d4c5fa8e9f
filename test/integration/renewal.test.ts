import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEnrolled, renewCertificate, type AgentIdentity } from '../../agent/enrollment.js';
import { kvKeys } from '../../server/bus-contract/streams.js';
import { SdcError } from '../../core/errors/index.js';
import { systemRandom } from '../../runtime/system.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';

const serialOf = (certPem: string): string => normalizeSerialHex(parseCertificate(certPem).serialNumber);

/** POST over HTTPS trusting the deployment root, with or without a client certificate. */
function post(url: string, body: unknown, options: { caPem: string; clientCert?: { certPem: string; keyPem: string } }): Promise<{ status: number; json: any }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST', ca: options.caPem, minVersion: 'TLSv1.3',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      ...(options.clientCert === undefined ? {} : { cert: options.clientCert.certPem, key: options.clientCert.keyPem }),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The refusal the agent saw: its AGENT_ENROLL_FAILED carries the HTTP status and the server's code. */
const refusedWith = (status: number, serverCode: string) => (error: unknown) =>
  SdcError.is(error, 'AGENT_ENROLL_FAILED') && (error.details as { status?: number }).status === status
  && (error.details as { serverCode?: string }).serverCode === serverCode;

describe('certificate renewal over HTTPS with the device certificate as the TLS client certificate', () => {
  let h: Harness;
  let serverUrl: string;
  let dir: string;
  const enroll = async (deviceId: string): Promise<AgentIdentity> => {
    const { token } = await h.cp.devices.createPairingToken({ actor: 'admin', deviceId });
    const { identity } = await ensureEnrolled({
      dir: join(dir, deviceId), serverUrl, deviceId, pairingToken: token, caPem: h.materials.rootCaPem, random: systemRandom, clock: h.clock,
    });
    return identity;
  };

  before(async () => {
    h = await makeHarness(sqlJsTarget);
    serverUrl = (await h.cp.listen({ host: '127.0.0.1', port: 0, tls: true })).url;
    dir = await mkdtemp(join(tmpdir(), 'sdc-renew-'));
  });
  after(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('renews with the agent client: new certificate for the same key, stored on the device, audited; a lost answer can be retried', async () => {
    const first = await enroll('dev-renew-1');
    const renewed = await renewCertificate(first);
    const newSerial = serialOf(renewed.certPem);
    assert.notEqual(newSerial, serialOf(first.certPem));
    assert.equal(parseCertificate(renewed.certPem).subject, 'CN=dev-renew-1');
    const device = await h.cp.devices.get('dev-renew-1');
    assert.equal(device.cert_serial, newSerial);
    assert.equal(device.cert_not_after_ms, parseCertificate(renewed.certPem).notAfter.getTime());
    const audit = await h.cp.auditStore.scan(1, 500);
    const entry = audit.find((e) => e.kind === 'device.renewed');
    assert.equal(entry?.actor, 'device:dev-renew-1');
    assert.deepEqual([entry?.payload.serial, entry?.payload.previous_serial], [newSerial, serialOf(first.certPem)]);

    // The answer "lost": the device tries again with the certificate it still has. Accepted; the
    // certificate it never received is superseded (revoked), the one it presented stays usable.
    const again = await renewCertificate(first);
    const revoked = h.cp.devices.revocations;
    assert.equal(await revoked.isRevoked(newSerial), true);
    assert.equal(await h.cp.context.kv.get(kvKeys.revoked(newSerial)) !== null, true);
    assert.equal(await revoked.isRevoked(serialOf(first.certPem)), false);
    assert.equal(await revoked.isRevoked(serialOf(again.certPem)), false);

    // Revoking the device covers both certificates still valid, not only the newest.
    await h.cp.devices.revoke({ actor: 'admin', deviceId: 'dev-renew-1', reason: 'keyCompromise' });
    assert.equal(await revoked.isRevoked(serialOf(first.certPem)), true);
    assert.equal(await revoked.isRevoked(serialOf(again.certPem)), true);
    await assert.rejects(renewCertificate(again), refusedWith(401, 'TRUST_CERT_REVOKED'));
    await assert.rejects(renewCertificate(first), refusedWith(401, 'TRUST_CERT_REVOKED'));
  });

  it('refuses a request without a client certificate (401), over HTTPS and in-process', async () => {
    const identity = await enroll('dev-renew-2');
    const csrOnly = { csr_pem: parseCertificate(identity.certPem).toString('pem') };
    const plain = await post(`${serverUrl}/v1/devices/dev-renew-2/renew`, csrOnly, { caPem: h.materials.rootCaPem });
    assert.equal(plain.status, 401);
    assert.equal(plain.json.error.code, 'API_CLIENT_CERT_REQUIRED');
    const injected = await h.cp.app.inject({ method: 'POST', url: '/v1/devices/dev-renew-2/renew', payload: csrOnly });
    assert.equal(injected.statusCode, 401);
    assert.equal(injected.json().error.code, 'API_CLIENT_CERT_REQUIRED');
    assert.equal((await h.cp.devices.get('dev-renew-2')).cert_serial, serialOf(identity.certPem));
  });

  it('refuses another device\'s certificate (403) and a certificate the server does not know', async () => {
    const mine = await enroll('dev-renew-3');
    const theirs = await enroll('dev-renew-4');
    // dev-renew-4's certificate for dev-renew-3's path (the CSR names dev-renew-3).
    await assert.rejects(renewCertificate({ ...theirs, deviceId: 'dev-renew-3' }), refusedWith(403, 'API_CLIENT_CERT_DEVICE_MISMATCH'));
    assert.equal((await h.cp.devices.get('dev-renew-3')).cert_serial, serialOf(mine.certPem));
    // A certificate issued by our CA but never recorded for the device (as if from another control plane's database).
    await h.db.execute('DELETE FROM device_certificates WHERE serial = ?', [serialOf(mine.certPem)]);
    await assert.rejects(renewCertificate(mine), refusedWith(401, 'API_CLIENT_CERT_UNKNOWN'));
  });

  it('refuses a CSR for another device id than the certificate\'s', async () => {
    const identity = await enroll('dev-renew-5');
    const { createCsrPem } = await import('../../agent/enrollment.js');
    const response = await post(`${serverUrl}/v1/devices/dev-renew-5/renew`, { csr_pem: await createCsrPem(identity.seed, 'dev-renew-6') }, {
      caPem: h.materials.rootCaPem, clientCert: { certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem },
    });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, 'TRUST_CSR_SUBJECT_MISMATCH');
  });
});
