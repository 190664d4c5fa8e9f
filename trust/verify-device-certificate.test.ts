import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { createIntermediateCa, createRootCa } from './ca.js';
import { systemRandom } from '../runtime/system.js';
import { dayMs, fixedNow, makeCsrPem, makeTestPki, signCustomDeviceCertificate, type TestPki } from './test-fixtures.js';
import { chainCertificatesMax, verifyDeviceCertificate } from './verify-device-certificate.js';
import { x509 } from './x509-provider.js';

const notRevoked = (): boolean => false;

describe('verifyDeviceCertificate', () => {
  let pki: TestPki;
  let certPem: string;
  let serialHex: string;

  before(async () => {
    pki = await makeTestPki();
    const issued = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-1'), deviceId: 'dev-1', now: fixedNow });
    certPem = issued.certificatePem;
    serialHex = issued.serialHex;
  });

  async function refusal(options: Partial<Parameters<typeof verifyDeviceCertificate>[0]>): Promise<string> {
    try {
      await verifyDeviceCertificate({ certPem, trustAnchors: pki.anchors, now: fixedNow, isRevoked: notRevoked, ...options });
    } catch (error) {
      assert.ok(error instanceof SdcError, String(error));
      return error.code;
    }
    assert.fail('expected a refusal');
  }

  it('accepts a certificate it issued, from PEM and from DER, and returns the identity', async () => {
    const fromPem = await verifyDeviceCertificate({ certPem, trustAnchors: pki.anchors, now: fixedNow, isRevoked: notRevoked });
    assert.equal(fromPem.deviceId, 'dev-1');
    assert.equal(fromPem.serialHex, serialHex);
    assert.equal(fromPem.notAfter.getTime(), fixedNow.getTime() + 30 * dayMs);
    const der = new Uint8Array(new x509.X509Certificate(certPem).rawData);
    const fromDer = await verifyDeviceCertificate({ certDer: der, trustAnchors: pki.anchors, now: fixedNow, isRevoked: notRevoked });
    assert.deepEqual(fromDer, fromPem);
  });

  it('builds the path through a presented intermediate when only the root is an anchor', async () => {
    const verified = await verifyDeviceCertificate({
      certPem, chainPems: [pki.intermediate.certificate.toString('pem')], trustAnchors: [pki.root.certificate], now: fixedNow, isRevoked: notRevoked,
    });
    assert.equal(verified.deviceId, 'dev-1');
    assert.equal(await refusal({ trustAnchors: [pki.root.certificate] }), 'TRUST_CERT_UNTRUSTED');
  });

  it('refuses an expired certificate and one not yet valid', async () => {
    assert.equal(await refusal({ now: new Date(fixedNow.getTime() + 31 * dayMs) }), 'TRUST_CERT_EXPIRED');
    assert.equal(await refusal({ now: new Date(fixedNow.getTime() - dayMs) }), 'TRUST_CERT_NOT_YET_VALID');
  });

  it('refuses a certificate from a second, unrelated CA with the same names', async () => {
    const otherRoot = await createRootCa({ now: fixedNow, random: systemRandom });
    const otherIntermediate = await createIntermediateCa({ root: otherRoot, now: fixedNow, random: systemRandom });
    const foreign = await signCustomDeviceCertificate({
      issuer: otherIntermediate, commonName: 'dev-1', notBefore: fixedNow, notAfter: new Date(fixedNow.getTime() + dayMs),
    });
    assert.equal(otherIntermediate.certificate.subject, pki.intermediate.certificate.subject);
    assert.equal(await refusal({ certPem: foreign }), 'TRUST_CERT_UNTRUSTED');
    // Presenting the foreign intermediate as chain does not help: it does not lead to our root.
    assert.equal(await refusal({ certPem: foreign, chainPems: [otherIntermediate.certificate.toString('pem')] }), 'TRUST_CERT_UNTRUSTED');
  });

  it('refuses a serverAuth certificate and other profile breaks from our own CA', async () => {
    const base = { issuer: pki.intermediate, commonName: 'dev-1', notBefore: fixedNow, notAfter: new Date(fixedNow.getTime() + dayMs) };
    const serverAuth = await signCustomDeviceCertificate({ ...base, extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth] });
    assert.equal(await refusal({ certPem: serverAuth }), 'TRUST_CERT_PROFILE');
    const both = await signCustomDeviceCertificate({ ...base, extendedKeyUsages: [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth] });
    assert.equal(await refusal({ certPem: both }), 'TRUST_CERT_PROFILE');
    const certSign = await signCustomDeviceCertificate({ ...base, keyUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign });
    assert.equal(await refusal({ certPem: certSign }), 'TRUST_CERT_PROFILE');
  });

  it('refuses an unknown critical extension, and more chain certificates than the bound', async () => {
    const base = { issuer: pki.intermediate, commonName: 'dev-1', notBefore: fixedNow, notAfter: new Date(fixedNow.getTime() + dayMs) };
    const unknownCritical = await signCustomDeviceCertificate({ ...base, extraExtensions: [new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00]))] });
    assert.equal(await refusal({ certPem: unknownCritical }), 'TRUST_CERT_PROFILE');
    const unknownNonCritical = await signCustomDeviceCertificate({ ...base, extraExtensions: [new x509.Extension('1.3.6.1.4.1.99999.1', false, new Uint8Array([0x05, 0x00]))] });
    assert.equal((await verifyDeviceCertificate({ certPem: unknownNonCritical, trustAnchors: pki.anchors, now: fixedNow, isRevoked: notRevoked })).deviceId, 'dev-1');
    const intermediatePem = pki.intermediate.certificate.toString('pem');
    assert.equal(await refusal({ chainPems: Array.from({ length: chainCertificatesMax + 1 }, () => intermediatePem) }), 'TRUST_CERT_UNTRUSTED');
  });

  it('refuses a CN/SAN mismatch', async () => {
    const base = { issuer: pki.intermediate, notBefore: fixedNow, notAfter: new Date(fixedNow.getTime() + dayMs) };
    const mismatch = await signCustomDeviceCertificate({ ...base, commonName: 'dev-1', sanUri: 'urn:sdc:device:dev-2' });
    assert.equal(await refusal({ certPem: mismatch }), 'TRUST_CERT_IDENTITY_MISMATCH');
    const badId = await signCustomDeviceCertificate({ ...base, commonName: 'dev 1' });
    assert.equal(await refusal({ certPem: badId }), 'TRUST_CERT_IDENTITY_MISMATCH');
  });

  it('refuses a revoked certificate, asking with the normalized serial', async () => {
    const asked: string[] = [];
    const code = await refusal({ isRevoked: (serial) => { asked.push(serial); return serial === serialHex; } });
    assert.equal(code, 'TRUST_CERT_REVOKED');
    assert.deepEqual(asked, [serialHex]);
  });

  it('refuses a CA certificate presented as a device certificate, and garbage', async () => {
    assert.equal(await refusal({ certPem: pki.intermediate.certificate.toString('pem') }), 'TRUST_CERT_PROFILE');
    assert.equal(await refusal({ certPem: 'not a certificate' }), 'TRUST_CERT_INVALID');
  });
});
