import assert from 'node:assert/strict';
import { createHash, KeyObject, sign as signBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { derPositiveIntegerFromHex, derTime } from './der-writer.js';
import { encodeDeviceTbsCertificate, encodeSignedCertificate, type DeviceCertificateIssuerParts } from './device-certificate-der.js';
import { deviceSanUri, oidClientAuth, oidCommonName } from './device-profile.js';
import { serialHexForEncoding } from './serial-number.js';
import { deviceCertificateIssuerParts } from './device-issuer.js';
import { makeTestPki, type TestPki } from './test-fixtures.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/**
 * The direct encoder must write what @peculiar/x509 writes for the same values: the library is
 * the reference OpenSSL accepts (docs/decisions), and Ed25519 signatures are deterministic, so
 * the whole certificate, signature included, must be the same bytes.
 */
async function libraryCertificate(pki: TestPki, values: { serialHex: string; notBeforeMs: number; notAfterMs: number; deviceId: string; publicKeyRaw: Uint8Array }): Promise<Uint8Array> {
  const spki = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, ...values.publicKeyRaw]);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHexForEncoding(values.serialHex),
    subject: [{ [oidCommonName]: [values.deviceId] }],
    issuer: pki.intermediate.certificate.subjectName,
    notBefore: new Date(values.notBeforeMs),
    notAfter: new Date(values.notAfterMs),
    publicKey: new x509.PublicKey(spki),
    signingKey: pki.intermediate.privateKey,
    signingAlgorithm: ed25519Algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([oidClientAuth], false),
      await x509.AuthorityKeyIdentifierExtension.create(pki.intermediate.certificate.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: deviceSanUri(values.deviceId) }], false),
      new x509.SubjectKeyIdentifierExtension(createHash('sha1').update(values.publicKeyRaw).digest('hex')),
    ],
  });
  return new Uint8Array(certificate.rawData);
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const deviceIdChars = 'abcdefghijklmnopqrstuvwxyz0123456789._-'.split('');

describe('device certificate DER', () => {
  let pki: TestPki;
  let parts: DeviceCertificateIssuerParts;
  let signingKey: KeyObject;
  before(async () => {
    pki = await makeTestPki();
    parts = await deviceCertificateIssuerParts(pki.intermediate.certificate);
    signingKey = KeyObject.from(pki.intermediate.privateKey);
  });

  it('is byte for byte the X.509 library\'s certificate for the same values (ids with and without PrintableString characters, serials with the top bit set, times either side of 2050)', async () => {
    const secondMs = 1000;
    await fc.assert(fc.asyncProperty(
      fc.record({
        deviceId: fc.tuple(fc.constantFrom(...deviceIdChars.slice(0, 36)), fc.array(fc.constantFrom(...deviceIdChars), { maxLength: 63 }))
          .map(([first, rest]) => first + rest.join('')),
        serialHex: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((bytes) => BigInt('0x' + (hex(bytes) || '0')).toString(16)).filter((h) => h !== '0'),
        notBeforeS: fc.integer({ min: Date.UTC(1990, 0, 1) / secondMs, max: Date.UTC(2060, 0, 1) / secondMs }),
        validityS: fc.integer({ min: 1, max: 397 * 86_400 }),
        publicKeyRaw: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      }),
      async ({ deviceId, serialHex, notBeforeS, validityS, publicKeyRaw }) => {
        const values = { serialHex, notBeforeMs: notBeforeS * secondMs, notAfterMs: (notBeforeS + validityS) * secondMs, deviceId, publicKeyRaw };
        const tbs = encodeDeviceTbsCertificate(parts, values);
        const ours = encodeSignedCertificate(tbs, new Uint8Array(signBytes(null, tbs, signingKey)));
        assert.equal(hex(ours), hex(await libraryCertificate(pki, values)));
      },
    ), { numRuns: 40 });
  });

  it('writes the one DER form: minimal INTEGERs (a zero byte only before a set top bit), UTCTime to 2049 and GeneralizedTime from 2050', () => {
    assert.equal(hex(derPositiveIntegerFromHex('7f')), '02017f');
    assert.equal(hex(derPositiveIntegerFromHex('80')), '02020080');
    assert.equal(hex(derPositiveIntegerFromHex('0001')), '020101');
    assert.equal(hex(derPositiveIntegerFromHex('0')), '020100');
    assert.equal(Buffer.from(derTime(Date.UTC(2049, 11, 31, 23, 59, 59))).subarray(2).toString('latin1'), '491231235959Z');
    assert.equal(derTime(Date.UTC(2049, 11, 31, 23, 59, 59))[0], 0x17);
    assert.equal(Buffer.from(derTime(Date.UTC(2050, 0, 1))).subarray(2).toString('latin1'), '20500101000000Z');
    assert.equal(derTime(Date.UTC(2050, 0, 1))[0], 0x18);
  });

  it('refuses a key that is not 32 raw bytes and values DER cannot carry', () => {
    const values = { serialHex: '1', notBeforeMs: 0, notAfterMs: 1000, deviceId: 'dev-1', publicKeyRaw: new Uint8Array(31) };
    assert.throws(() => encodeDeviceTbsCertificate(parts, values), (e: unknown) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'));
    assert.throws(() => derTime(Date.UTC(1949, 11, 31)), (e: unknown) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'));
    assert.throws(() => derPositiveIntegerFromHex('-1'), (e: unknown) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'));
  });
});
