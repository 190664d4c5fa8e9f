import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import {
  extensionOid, findExtension, generalNameKind, keyUsageBit, oidEd25519, readBasicConstraints, readCertificateFields, readCommonNames,
  readExtendedKeyUsage, readKeyUsage, readSubjectAltNames,
} from './certificate-fields.js';
import { oidClientAuth, oidCommonName } from './device-profile.js';
import { fixedNow, makeCsrPem, makeTestPki, type TestPki } from './test-fixtures.js';
import { x509 } from './x509-provider.js';

/** A fixed-seed generator (xorshift32) for the byte-flip cases: the same flips every run. */
function xorshift(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** Reading bad bytes may fail only as TRUST_CERT_INVALID, never with another exception. */
function readsOrRefuses(der: Uint8Array): 'read' | 'refused' {
  try {
    const fields = readCertificateFields(der);
    readCommonNames(fields.subjectName);
    for (const extension of fields.extensions) {
      if (extension.oid === extensionOid.keyUsage) readKeyUsage(extension);
      if (extension.oid === extensionOid.basicConstraints) readBasicConstraints(extension);
      if (extension.oid === extensionOid.extendedKeyUsage) readExtendedKeyUsage(extension);
      if (extension.oid === extensionOid.subjectAltName) readSubjectAltNames(extension);
    }
    return 'read';
  } catch (error) {
    assert.ok(error instanceof SdcError && error.code === 'TRUST_CERT_INVALID', `not a typed refusal: ${String(error)}`);
    return 'refused';
  }
}

describe('certificate fields from DER', () => {
  let pki: TestPki;
  let device: x509.X509Certificate;

  before(async () => {
    pki = await makeTestPki();
    const issued = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-7'), deviceId: 'dev-7', now: fixedNow });
    device = new x509.X509Certificate(issued.certificatePem);
  });

  it('reads what @peculiar/x509 reads from a device certificate we issued', () => {
    const fields = readCertificateFields(new Uint8Array(device.rawData));
    assert.equal(fields.serialHex, device.serialNumber.toLowerCase());
    assert.equal(fields.notBeforeMs, device.notBefore.getTime());
    assert.equal(fields.notAfterMs, device.notAfter.getTime());
    assert.equal(fields.signatureAlgorithmOid, oidEd25519);
    assert.equal(fields.tbsSignatureAlgorithmOid, oidEd25519);
    assert.deepEqual(Buffer.from(fields.issuerName), Buffer.from(pki.intermediate.certificate.subjectName.toArrayBuffer()));
    assert.deepEqual(readCommonNames(fields.subjectName), device.subjectName.getField(oidCommonName));
    assert.deepEqual(fields.extensions.map((e) => [e.oid, e.critical]), [...device.extensions].map((e) => [e.type, e.critical]));
    const keyUsage = readKeyUsage(findExtension(fields, extensionOid.keyUsage)!);
    assert.equal(keyUsage, keyUsageBit.digitalSignature);
    assert.equal(device.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
    assert.deepEqual(readExtendedKeyUsage(findExtension(fields, extensionOid.extendedKeyUsage)!), [oidClientAuth]);
    assert.deepEqual(readSubjectAltNames(findExtension(fields, extensionOid.subjectAltName)!), [{ kind: generalNameKind.uri, text: 'urn:sdc:device:dev-7' }]);
    assert.deepEqual(readBasicConstraints(findExtension(fields, extensionOid.basicConstraints)!), { ca: false, pathLength: undefined });
  });

  it('reads the CA certificates\' constraints and key usage as @peculiar/x509 does', () => {
    for (const [certificate, pathLength] of [[pki.root.certificate, 1], [pki.intermediate.certificate, 0]] as const) {
      const fields = readCertificateFields(new Uint8Array(certificate.rawData));
      assert.deepEqual(readBasicConstraints(findExtension(fields, extensionOid.basicConstraints)!), { ca: true, pathLength });
      assert.equal(certificate.getExtension(x509.BasicConstraintsExtension)!.pathLength, pathLength);
      assert.equal(readKeyUsage(findExtension(fields, extensionOid.keyUsage)!), keyUsageBit.keyCertSign | keyUsageBit.cRLSign);
    }
  });

  it('refuses every truncation of a certificate as TRUST_CERT_INVALID, and trailing bytes', () => {
    const der = new Uint8Array(device.rawData);
    for (let length = 0; length < der.length; length++) assert.equal(readsOrRefuses(der.subarray(0, length)), 'refused', `truncated to ${length}`);
    const trailing = new Uint8Array(der.length + 1);
    trailing.set(der);
    assert.equal(readsOrRefuses(trailing), 'refused');
  });

  it('never fails otherwise than TRUST_CERT_INVALID on a certificate with bytes changed', () => {
    const der = new Uint8Array(device.rawData);
    const next = xorshift(15);
    const outcomes = { read: 0, refused: 0 };
    for (let round = 0; round < 3_000; round++) {
      const changed = der.slice();
      const flips = 1 + (next() % 3);
      for (let i = 0; i < flips; i++) changed[next() % changed.length] = next() & 0xff;
      outcomes[readsOrRefuses(changed)] += 1;
    }
    // Both happen: most single-byte changes land in values (read), enough in headers (refused).
    assert.ok(outcomes.read > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
  });
});
