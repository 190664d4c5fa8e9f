import assert from 'node:assert/strict';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { issueServerCertificate, oidServerAuth } from './server-certificate.js';
import { dayMs, fixedNow, makeTestPki, type TestPki } from './test-fixtures.js';
import { parseCertificate, x509 } from './x509-provider.js';

describe('issueServerCertificate', () => {
  let pki: TestPki;
  const now = new Date();
  before(async () => {
    pki = await makeTestPki(now);
  });

  const issue = (overrides: Partial<Parameters<typeof issueServerCertificate>[0]> = {}) => issueServerCertificate({
    intermediateCertPem: pki.intermediate.certificate.toString('pem'),
    intermediateKey: pki.intermediate.privateKey,
    hostnames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    now,
    validityMs: 10 * dayMs,
    random: systemRandom,
    ...overrides,
  });

  it('writes the serverAuth profile with DNS and IP SANs, chained to the intermediate', async () => {
    const { certPem } = await issue();
    const certificate = parseCertificate(certPem);
    assert.equal(certificate.issuer, pki.intermediate.certificate.subject);
    assert.ok(await certificate.verify({ publicKey: pki.intermediate.certificate.publicKey, signatureOnly: true }));
    assert.deepEqual([...(certificate.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], [oidServerAuth]);
    assert.equal(certificate.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    const node = new NodeX509(certPem);
    assert.equal(node.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(certificate.notAfter.getTime(), Math.floor(now.getTime() / 1000) * 1000 + 10 * dayMs);
    assert.equal(node.checkHost('localhost'), 'localhost');
    assert.equal(node.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(node.checkIP('::1'), '::1');
    assert.equal(node.checkHost('example.com'), undefined);
    assert.equal(node.checkIP('10.0.0.1'), undefined);
  });

  it('serves TLS 1.3 that a client trusting only our CA accepts for localhost', async () => {
    const { certPem, keyPem } = await issue();
    const server = createServer({ cert: certPem, key: keyPem, minVersion: 'TLSv1.3' }, (socket) => socket.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.intermediate.certificate.toString('pem'), pki.root.certificate.toString('pem')] });
      await once(socket, 'secureConnect');
      assert.equal(socket.authorized, true);
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it('refuses bad names, no names, an out-of-range validity and an expired issuer', async () => {
    const code = async (overrides: Partial<Parameters<typeof issueServerCertificate>[0]>): Promise<string> => {
      try {
        await issue(overrides);
      } catch (error) {
        assert.ok(error instanceof SdcError);
        return error.code;
      }
      return 'none';
    };
    assert.equal(await code({ hostnames: ['*.example.com'] }), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await code({ hostnames: [], ipAddresses: [] }), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await code({ ipAddresses: ['300.1.1.1'] }), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await code({ validityMs: 0 }), 'TRUST_INVALID_ARGUMENT');
    assert.equal(await code({ now: new Date(fixedNow.getTime() + 400 * 365 * dayMs) }), 'TRUST_CERT_EXPIRED');
  });
});
