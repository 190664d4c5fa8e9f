import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { createIntermediateCa, createRootCa, type CaMaterial } from './ca.js';
import { systemRandom } from '../runtime/system.js';
import { generateEd25519KeyPair } from './ed25519-keys.js';
import { randomSerialHex, serialHexForEncoding } from './serial-number.js';
import { dayMs, fixedNow, makeCsrPem, makeTestPki, signCustomDeviceCertificate, type TestPki } from './test-fixtures.js';
import { chainCertificatesMax, unverifiedDeviceIdOf, verifyDeviceCertificate } from './verify-device-certificate.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

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

/** A device-like certificate with every field under the test's control, signed by `issuer`. */
async function customCertificate(issuer: CaMaterial, options: {
  subject?: x509.JsonName; extensions?: x509.Extension[]; keys?: CryptoKeyPair; notBefore?: Date; notAfter?: Date;
}): Promise<{ pem: string; keys: CryptoKeyPair }> {
  const keys = options.keys ?? await generateEd25519KeyPair(systemRandom);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHexForEncoding(randomSerialHex(systemRandom)), subject: options.subject ?? [{ '2.5.4.3': ['dev-1'] }],
    issuer: issuer.certificate.subjectName, notBefore: options.notBefore ?? fixedNow, notAfter: options.notAfter ?? new Date(fixedNow.getTime() + dayMs),
    publicKey: keys.publicKey, signingKey: issuer.privateKey, signingAlgorithm: ed25519Algorithm,
    extensions: options.extensions ?? profileExtensions(),
  });
  return { pem: certificate.toString('pem'), keys };
}

function profileExtensions(overrides: { keyUsage?: x509.Extension | null; eku?: x509.Extension | null; san?: x509.Extension | null } = {}): x509.Extension[] {
  const chosen = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    overrides.keyUsage === undefined ? new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true) : overrides.keyUsage,
    overrides.eku === undefined ? new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]) : overrides.eku,
    overrides.san === undefined ? new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:sdc:device:dev-1' }]) : overrides.san,
  ];
  return chosen.filter((e): e is x509.Extension => e !== null);
}

// Each refusal verifyDeviceCertificate makes, with the code and (where two checks share a code) the reason.
describe('verifyDeviceCertificate refusals, one by one', () => {
  let pki: TestPki;
  let goodPem: string;

  before(async () => {
    pki = await makeTestPki();
    goodPem = (await customCertificate(pki.intermediate, {})).pem;
  });

  async function refusedWith(options: Partial<Parameters<typeof verifyDeviceCertificate>[0]>, code: string, message?: RegExp): Promise<SdcError> {
    try {
      await verifyDeviceCertificate({ certPem: goodPem, trustAnchors: pki.anchors, now: fixedNow, isRevoked: notRevoked, ...options });
    } catch (error) {
      assert.ok(error instanceof SdcError, String(error));
      assert.equal(error.code, code, error.message);
      if (message) assert.match(error.message, message);
      return error;
    }
    return assert.fail(`expected ${code}`);
  }

  it('accepts the custom profile certificate, with anchors as PEM, as node:crypto objects and as @peculiar/x509 objects', async () => {
    for (const trustAnchors of [
      pki.anchors, pki.anchors.map((a) => a.toString('pem')), pki.anchors.map((a) => new X509Certificate(a.toString('pem'))),
    ]) {
      assert.equal((await verifyDeviceCertificate({ certPem: goodPem, trustAnchors, now: fixedNow, isRevoked: notRevoked })).deviceId, 'dev-1');
    }
  });

  it('TRUST_INVALID_ARGUMENT: both or neither of certPem and certDer, and no trust anchor', async () => {
    const der = new Uint8Array(new X509Certificate(goodPem).raw);
    await refusedWith({ certDer: der }, 'TRUST_INVALID_ARGUMENT', /exactly one/);
    await refusedWith({ certPem: undefined }, 'TRUST_INVALID_ARGUMENT', /exactly one/);
    await refusedWith({ trustAnchors: [] }, 'TRUST_INVALID_ARGUMENT', /trust anchor/);
  });

  it('TRUST_CERT_INVALID: truncated DER, trailing bytes, a bad chain certificate and a bad anchor', async () => {
    const der = new Uint8Array(new X509Certificate(goodPem).raw);
    await refusedWith({ certPem: undefined, certDer: der.subarray(0, der.length - 10) }, 'TRUST_CERT_INVALID');
    const trailing = new Uint8Array(der.length + 2);
    trailing.set(der);
    await refusedWith({ certPem: undefined, certDer: trailing }, 'TRUST_CERT_INVALID');
    await refusedWith({ chainPems: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] }, 'TRUST_CERT_INVALID', /chain certificate/);
    await refusedWith({ trustAnchors: ['not a certificate'] }, 'TRUST_CERT_INVALID', /trust anchor/);
  });

  it('TRUST_CERT_UNTRUSTED: an issuer that is not a CA, and an intermediate beyond its path length', async () => {
    // A device certificate used as a CA: its signature over the leaf verifies, but it is not a CA.
    const deviceAsCa = await customCertificate(pki.intermediate, {});
    const fakeCa: CaMaterial = { certificate: new x509.X509Certificate(deviceAsCa.pem), privateKey: deviceAsCa.keys.privateKey } as CaMaterial;
    const underDevice = await customCertificate(fakeCa, {});
    await refusedWith({ certPem: underDevice.pem, chainPems: [deviceAsCa.pem] }, 'TRUST_CERT_UNTRUSTED', /not a CA allowed/);
    // The intermediate has pathLen 0: a CA below it may not sign devices.
    const subCa = await createIntermediateCa({ root: pki.intermediate, now: fixedNow, random: systemRandom });
    const underSub = await customCertificate(subCa, {});
    await refusedWith({ certPem: underSub.pem, chainPems: [subCa.certificate.toString('pem')] }, 'TRUST_CERT_UNTRUSTED', /not a CA allowed/);
  });

  it('TRUST_CERT_EXPIRED and TRUST_CERT_NOT_YET_VALID name an issuer whose validity the time is outside', async () => {
    const longLived = await customCertificate(pki.intermediate, { notAfter: new Date(fixedNow.getTime() + 10 * 365 * dayMs) });
    const afterIntermediate = new Date(pki.intermediate.certificate.notAfter.getTime() + dayMs);
    const expired = await refusedWith({ certPem: longLived.pem, now: afterIntermediate }, 'TRUST_CERT_EXPIRED');
    assert.equal(expired.details?.['which'], 'issuer');
    const early = await customCertificate(pki.intermediate, { notBefore: new Date(fixedNow.getTime() - 10 * dayMs) });
    const beforeIntermediate = new Date(pki.intermediate.certificate.notBefore.getTime() - dayMs);
    const notYet = await refusedWith({ certPem: early.pem, now: beforeIntermediate }, 'TRUST_CERT_NOT_YET_VALID');
    assert.equal(notYet.details?.['which'], 'issuer');
  });

  it('TRUST_CERT_PROFILE: a key that is not Ed25519, no digitalSignature, cRLSign, no keyUsage, no or an empty extended key usage', async () => {
    const p256 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    await refusedWith({ certPem: (await customCertificate(pki.intermediate, { keys: p256 })).pem }, 'TRUST_CERT_PROFILE', /not Ed25519/);
    const cases: Array<[Parameters<typeof profileExtensions>[0], RegExp]> = [
      [{ keyUsage: new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true) }, /lacks keyUsage digitalSignature/],
      [{ keyUsage: null }, /lacks keyUsage digitalSignature/],
      [{ keyUsage: new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign, true) }, /may sign certificates or CRLs/],
      [{ eku: null }, /not exactly clientAuth/],
      [{ eku: new x509.ExtendedKeyUsageExtension([]) }, /not exactly clientAuth/],
    ];
    for (const [overrides, message] of cases) {
      await refusedWith({ certPem: (await customCertificate(pki.intermediate, { extensions: profileExtensions(overrides) })).pem }, 'TRUST_CERT_PROFILE', message);
    }
  });

  it('TRUST_CERT_IDENTITY_MISMATCH: two CNs, no CN, no SAN, two SAN names, a SAN that is not a URI', async () => {
    const uri = (value: string) => ({ type: 'url' as const, value });
    const cases: Array<[Parameters<typeof customCertificate>[1], RegExp]> = [
      [{ subject: [{ '2.5.4.3': ['dev-1'] }, { '2.5.4.3': ['dev-1'] }] }, /exactly one CN/],
      [{ subject: [{ '2.5.4.10': ['SDC'] }] }, /exactly one CN/],
      [{ extensions: profileExtensions({ san: null }) }, /SAN must be exactly/],
      [{ extensions: profileExtensions({ san: new x509.SubjectAlternativeNameExtension([uri('urn:sdc:device:dev-1'), uri('urn:sdc:device:dev-1')]) }) }, /SAN must be exactly/],
      [{ extensions: profileExtensions({ san: new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'dev-1' }]) }) }, /SAN must be exactly/],
    ];
    for (const [options, message] of cases) {
      await refusedWith({ certPem: (await customCertificate(pki.intermediate, options)).pem }, 'TRUST_CERT_IDENTITY_MISMATCH', message);
    }
  });

  it('unverifiedDeviceIdOf reads a single valid CN and nothing else', async () => {
    const der = (pem: string) => new Uint8Array(new X509Certificate(pem).raw);
    assert.equal(unverifiedDeviceIdOf(der(goodPem)), 'dev-1');
    assert.equal(unverifiedDeviceIdOf(der((await customCertificate(pki.intermediate, { subject: [{ '2.5.4.3': ['dev 1'] }] })).pem)), undefined);
    assert.equal(unverifiedDeviceIdOf(der((await customCertificate(pki.intermediate, { subject: [{ '2.5.4.3': ['a'] }, { '2.5.4.3': ['b'] }] })).pem)), undefined);
    assert.equal(unverifiedDeviceIdOf(new Uint8Array([0x30, 0x03, 0x02])), undefined);
  });
});
