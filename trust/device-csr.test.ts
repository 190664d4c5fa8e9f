import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { generateEd25519KeyPair } from './ed25519-keys.js';
import { parseDeviceCsr } from './device-csr.js';
import { toPem } from './pem.js';
import { codeOf, makeCsrPem, openssl, withTempDir } from './test-fixtures.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

const derOf = (pem: string): Buffer => Buffer.from(new x509.Pkcs10CertificateRequest(pem).rawData);

describe('parseDeviceCsr (the bounded DER reader, not the X.509 library)', () => {
  it('reads the CN and the key the library reads, with the extension-request attribute OpenSSL adds', async () => {
    const pem = await makeCsrPem('dev-a_1');
    const parsed = await parseDeviceCsr(pem);
    const library = new x509.Pkcs10CertificateRequest(pem);
    assert.equal(parsed.commonName, 'dev-a_1');
    assert.equal(Buffer.from(parsed.publicKeyRaw).toString('hex'), Buffer.from(library.publicKey.rawData).subarray(12).toString('hex'));
    await withTempDir(async (dir) => {
      assert.equal(openssl(['genpkey', '-algorithm', 'ed25519', '-out', 'k.pem'], dir).status, 0);
      const req = openssl(['req', '-new', '-key', 'k.pem', '-subj', '/O=plant 7/CN=dev-ossl', '-addext', 'subjectAltName=DNS:x.example'], dir);
      assert.equal(req.status, 0, req.stderr);
      assert.equal((await parseDeviceCsr(req.stdout)).commonName, 'dev-ossl');
    });
  });

  it('refuses two CNs, no CN, another PEM label, trailing bytes and a body that is not canonical base64', async () => {
    const keys = await generateEd25519KeyPair(systemRandom);
    const twoCns = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.3': ['dev-1'] }, { '2.5.4.3': ['dev-2'] }], keys, signingAlgorithm: ed25519Algorithm });
    assert.equal(await codeOf(parseDeviceCsr(twoCns.toString('pem'))), 'TRUST_CSR_SUBJECT_MISMATCH');
    const noCn = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ '2.5.4.10': ['plant'] }], keys, signingAlgorithm: ed25519Algorithm });
    assert.equal(await codeOf(parseDeviceCsr(noCn.toString('pem'))), 'TRUST_CSR_SUBJECT_MISMATCH');
    const pem = await makeCsrPem('dev-1');
    const der = derOf(pem);
    assert.equal(await codeOf(parseDeviceCsr(toPem('CERTIFICATE', der))), 'TRUST_CSR_INVALID');
    assert.equal(await codeOf(parseDeviceCsr(toPem('CERTIFICATE REQUEST', Buffer.concat([der, Buffer.of(0)])))), 'TRUST_CSR_INVALID');
    assert.equal(await codeOf(parseDeviceCsr(pem.replace('\n', '\n*'))), 'TRUST_CSR_INVALID');
    assert.equal((await parseDeviceCsr(toPem('NEW CERTIFICATE REQUEST', der))).commonName, 'dev-1');
  });

  it('answers any corruption of a valid request with a typed refusal, never an exception of another kind', async () => {
    const der = derOf(await makeCsrPem('dev-1'));
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat({ max: der.length }),
      async (flips, cut) => {
        const bytes = Buffer.from(der);
        for (const [at, mask] of flips) bytes[at] = bytes[at]! ^ mask;
        const sent = bytes.subarray(0, cut === 0 ? bytes.length : cut);
        if (sent.equals(der)) return; // two flips of one byte can cancel out
        try {
          // Every byte is structure, signed content or the signature itself: nothing changed may pass.
          const parsed = await parseDeviceCsr(toPem('CERTIFICATE REQUEST', sent));
          assert.fail(`a corrupted request was accepted: ${parsed.commonName}`);
        } catch (error) {
          assert.ok(error instanceof SdcError, String(error));
          assert.ok(['TRUST_CSR_INVALID', 'TRUST_CSR_KEY_ALGORITHM', 'TRUST_CSR_SUBJECT_MISMATCH', 'TRUST_DEVICE_ID_INVALID'].includes(error.code), error.code);
        }
      },
    ), { numRuns: 300 });
  });
});
