import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { normalizeSerialHex, randomSerialHex } from './serial-number.js';
import {
  codeOf, dayMs, fixedNow, makeCsrPem, makeTestPki, openssl, signCustomDeviceCertificate, withTempDir, writeText, type TestPki,
} from './test-fixtures.js';
import { verifyDeviceCertificate } from './verify-device-certificate.js';
import { x509 } from './x509-provider.js';

describe('CA hierarchy', () => {
  let pki: TestPki;
  before(async () => { pki = await makeTestPki(); });

  it('root is a self-signed CA with pathLen 1, intermediate a CA with pathLen 0 signed by the root', async () => {
    const root = pki.root.certificate;
    const intermediate = pki.intermediate.certificate;
    assert.equal(await root.isSelfSigned(), true);
    assert.equal(root.getExtension(x509.BasicConstraintsExtension)?.pathLength, 1);
    assert.equal(intermediate.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
    for (const ca of [root, intermediate]) {
      assert.equal(ca.getExtension(x509.BasicConstraintsExtension)?.ca, true);
      assert.equal(ca.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    }
    assert.equal(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }), true);
    assert.equal(
      intermediate.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    assert.ok(root.notAfter > intermediate.notAfter);
  });
});

describe('DeviceCertificateIssuer', () => {
  let pki: TestPki;
  before(async () => { pki = await makeTestPki(); });

  it('issues the device profile and OpenSSL verifies the chain', async () => {
    const issued = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-7'), deviceId: 'dev-7', now: fixedNow, validityMs: 2 * dayMs });
    const certificate = new x509.X509Certificate(issued.certificatePem);
    assert.equal(certificate.subject, 'CN=dev-7');
    assert.deepEqual([...certificate.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? []], [x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(certificate.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.deepEqual(certificate.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON(), [{ type: 'url', value: 'urn:sdc:device:dev-7' }]);
    assert.ok(certificate.getExtension(x509.SubjectKeyIdentifierExtension));
    assert.equal(
      certificate.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      pki.intermediate.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    assert.equal(certificate.notAfter.getTime(), fixedNow.getTime() + 2 * dayMs);
    assert.match(issued.serialHex, /^[1-9a-f][0-9a-f]{0,31}$/);
    assert.equal(normalizeSerialHex(certificate.serialNumber), issued.serialHex);
    await withTempDir(async (dir) => {
      const [intermediate, root] = pki.issuer.chainPems();
      await writeText(dir, 'root.pem', root);
      await writeText(dir, 'int.pem', intermediate);
      await writeText(dir, 'dev.pem', issued.certificatePem);
      // -attime: the fixture PKI lives in 2030.
      const result = openssl(['verify', '-attime', String(fixedNow.getTime() / 1000 + 3600), '-purpose', 'sslclient', '-CAfile', 'root.pem', '-untrusted', 'int.pem', 'dev.pem'], dir);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /dev\.pem: OK/);
    });
  });

  it('issues for an Ed25519 CSR made by OpenSSL', async () => {
    await withTempDir(async (dir) => {
      assert.equal(openssl(['genpkey', '-algorithm', 'ed25519', '-out', 'k.pem'], dir).status, 0);
      const req = openssl(['req', '-new', '-key', 'k.pem', '-subj', '/CN=dev-ossl'], dir);
      assert.equal(req.status, 0, req.stderr);
      const issued = await pki.issuer.issueDeviceCertificate({ csrPem: req.stdout, deviceId: 'dev-ossl', now: fixedNow });
      // The device profile, SAN included, still holds with the shared extensions.
      const verified = await verifyDeviceCertificate({ certPem: issued.certificatePem, trustAnchors: pki.anchors, now: fixedNow, isRevoked: () => false });
      assert.equal(verified.deviceId, 'dev-ossl');
    });
  });

  it('refuses a non-Ed25519 CSR, a CN that is not the device id, a tampered CSR and a bad device id', async () => {
    await withTempDir(async (dir) => {
      assert.equal(openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.pem'], dir).status, 0);
      const ecCsr = openssl(['req', '-new', '-key', 'ec.pem', '-subj', '/CN=dev-1'], dir).stdout;
      assert.equal(await codeOf(pki.issuer.issueDeviceCertificate({ csrPem: ecCsr, deviceId: 'dev-1', now: fixedNow })), 'TRUST_CSR_KEY_ALGORITHM');
    });
    const csrPem = await makeCsrPem('dev-1');
    assert.equal(await codeOf(pki.issuer.issueDeviceCertificate({ csrPem, deviceId: 'dev-2', now: fixedNow })), 'TRUST_CSR_SUBJECT_MISMATCH');
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(csrPem).rawData);
    der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1); // flips a bit of the signature
    const tampered = new x509.Pkcs10CertificateRequest(new Uint8Array(der)).toString('pem');
    assert.equal(await codeOf(pki.issuer.issueDeviceCertificate({ csrPem: tampered, deviceId: 'dev-1', now: fixedNow })), 'TRUST_CSR_INVALID');
    assert.equal(await codeOf(pki.issuer.issueDeviceCertificate({ csrPem: 'garbage', deviceId: 'dev-1', now: fixedNow })), 'TRUST_CSR_INVALID');
    assert.equal(await codeOf(pki.issuer.issueDeviceCertificate({ csrPem, deviceId: '../etc', now: fixedNow })), 'TRUST_DEVICE_ID_INVALID');
  });

  it('renews a valid certificate for the same device, and refuses expired, revoked, foreign or other-device renewals', async () => {
    const current = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-r'), deviceId: 'dev-r', now: fixedNow });
    const later = new Date(fixedNow.getTime() + 20 * dayMs);
    const renewed = await pki.issuer.renewDeviceCertificate({ currentCertPem: current.certificatePem, csrPem: await makeCsrPem('dev-r'), now: later });
    assert.equal(renewed.deviceId, 'dev-r');
    assert.notEqual(renewed.serialHex, current.serialHex);
    assert.equal(renewed.notAfter.getTime(), later.getTime() + 30 * dayMs);

    const tooLate = new Date(fixedNow.getTime() + 31 * dayMs);
    assert.equal(await codeOf(pki.issuer.renewDeviceCertificate({ currentCertPem: current.certificatePem, csrPem: await makeCsrPem('dev-r'), now: tooLate })), 'TRUST_CERT_EXPIRED');
    assert.equal(await codeOf(pki.issuer.renewDeviceCertificate({ currentCertPem: current.certificatePem, csrPem: await makeCsrPem('dev-x'), now: later })), 'TRUST_CSR_SUBJECT_MISMATCH');
    // Signed by the root directly: it chains to an anchor, but it is not from this intermediate.
    const byRoot = await signCustomDeviceCertificate({ issuer: pki.root, commonName: 'dev-r', notBefore: fixedNow, notAfter: later });
    assert.equal(await codeOf(pki.issuer.renewDeviceCertificate({ currentCertPem: byRoot, csrPem: await makeCsrPem('dev-r'), now: fixedNow })), 'TRUST_CERT_UNTRUSTED');
    await pki.revocations.revoke(current.serialHex, 'keyCompromise', later);
    assert.equal(await codeOf(pki.issuer.renewDeviceCertificate({ currentCertPem: current.certificatePem, csrPem: await makeCsrPem('dev-r'), now: later })), 'TRUST_CERT_REVOKED');
  });
});

describe('serial numbers', () => {
  it('are positive, below 2^127, normalized and keep the random bits', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const serial = randomSerialHex({ bytes: () => Uint8Array.from(bytes), intBelow: () => 0 });
      const value = BigInt('0x' + serial);
      assert.ok(value > 0n && value < 1n << 127n);
      assert.equal(normalizeSerialHex(serial), serial);
      const expected = BigInt('0x' + Buffer.from(bytes).toString('hex')) & ((1n << 127n) - 1n);
      assert.equal(value, expected === 0n ? 1n : expected);
    }), { numRuns: 500 });
  });

  it('differ between calls with real randomness', () => {
    const serials = new Set(Array.from({ length: 100 }, () => randomSerialHex(systemRandom)));
    assert.equal(serials.size, 100);
  });
});

describe('device issuance returns what the certificate says (issue 15: no second parse at enrollment)', () => {
  it('notAfter is the certificate\'s (whole seconds), the key is the CSR\'s, and the fixed extensions are built once yet right in every certificate', async () => {
    const pki = await makeTestPki();
    const oddNow = new Date(fixedNow.getTime() + 1234);
    for (const deviceId of ['dev-a', 'dev-b']) {
      const csrPem = await makeCsrPem(deviceId);
      const issued = await pki.issuer.issueDeviceCertificate({ csrPem, deviceId, now: oddNow, validityMs: dayMs + 567 });
      const certificate = new x509.X509Certificate(issued.certificatePem);
      assert.equal(issued.notAfter.getTime(), certificate.notAfter.getTime());
      assert.equal(issued.notAfter.getTime() % 1000, 0);
      const csrKey = new Uint8Array(new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData).slice(12);
      assert.deepEqual(issued.publicKeyRaw, csrKey);
      assert.deepEqual(new Uint8Array(certificate.publicKey.rawData).slice(12), csrKey);
      // The subject key id computed here equals the library's own (RFC 5280 method 1).
      const expectedSki = await x509.SubjectKeyIdentifierExtension.create(new x509.Pkcs10CertificateRequest(csrPem).publicKey);
      assert.equal(certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, expectedSki.keyId);
      assert.equal(
        certificate.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
        pki.intermediate.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
      );
      // The device profile, SAN included, still holds with the shared extensions.
      const verified = await verifyDeviceCertificate({ certPem: issued.certificatePem, chainPems: [pki.intermediate.certificate.toString('pem')], trustAnchors: [pki.root.certificate], now: oddNow, isRevoked: () => false });
      assert.equal(verified.deviceId, deviceId);
    }
  });
});
