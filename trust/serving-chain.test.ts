import assert from 'node:assert/strict';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { issueServerCertificate, issueServingCa, servingCaValidityMsMax } from './server-certificate.js';
import { dayMs } from './test-fixtures.js';

/** The ECDSA P-256 serving chain browsers can trust (docs/decisions/0006-browser-serving-chain.md). */
describe('the ECDSA serving chain', () => {
  const now = new Date();

  async function chain() {
    const ca = await issueServingCa({ commonName: 'SDC serving CA', now, validityMs: 365 * dayMs, random: systemRandom });
    const leaf = await issueServerCertificate({
      intermediateCertPem: ca.certPem, intermediateKey: ca.privateKey, hostnames: ['localhost'], ipAddresses: ['127.0.0.1'],
      now, validityMs: 30 * dayMs, random: systemRandom, keyAlgorithm: 'ECDSA-P256',
    });
    return { ca, leaf };
  }

  it('issues a P-256 CA (path length 0) and an ECDSA-signed P-256 serverAuth leaf under it, with no Ed25519 anywhere', async () => {
    const { ca, leaf } = await chain();
    const caCert = new NodeX509(ca.certPem);
    const leafCert = new NodeX509(leaf.certPem);
    assert.equal(caCert.ca, true);
    assert.equal(caCert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(caCert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(leafCert.ca, false);
    assert.equal(leafCert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(leafCert.checkIssued(caCert), true);
    assert.equal(leafCert.verify(caCert.publicKey), true);
    assert.equal(caCert.verify(caCert.publicKey), true);
    assert.equal(leafCert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
    assert.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  });

  it('serves TLS that a client trusting only the serving CA accepts, and one trusting another CA refuses', async () => {
    const { ca, leaf } = await chain();
    const other = await issueServingCa({ commonName: 'another CA', now, validityMs: dayMs, random: systemRandom });
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const read = (caPem: string) => new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem }, () => undefined);
      let text = '';
      socket.on('data', (chunk) => { text += String(chunk); });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    try {
      assert.equal(await read(ca.certPem), 'ok');
      await assert.rejects(read(other.certPem), /self.signed|unable to (get|verify)|certificate/i);
    } finally {
      server.close();
    }
  });

  it('refuses an issuer key of another kind, and bad CA names and lifetimes', async () => {
    const { ca } = await chain();
    const rsa = await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']);
    await assert.rejects(issueServerCertificate({
      intermediateCertPem: ca.certPem, intermediateKey: rsa.privateKey, hostnames: ['localhost'], ipAddresses: [], now, validityMs: dayMs, random: systemRandom,
    }), (error: unknown) => SdcError.is(error, 'TRUST_INVALID_ARGUMENT'));
    for (const bad of [{ commonName: '', validityMs: dayMs }, { commonName: 'x'.repeat(65), validityMs: dayMs }, { commonName: 'ok', validityMs: 0 }, { commonName: 'ok', validityMs: servingCaValidityMsMax + 1 }]) {
      await assert.rejects(issueServingCa({ ...bad, now, random: systemRandom }), (error: unknown) => SdcError.is(error, 'TRUST_INVALID_ARGUMENT'), JSON.stringify(bad).slice(0, 60));
    }
  });
});
