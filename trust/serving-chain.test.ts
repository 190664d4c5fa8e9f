import assert from 'node:assert/strict';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { apiTlsCertificates, issueServerCertificate, issueServingCa, servingCaValidityMsMax } from './server-certificate.js';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initPki, loadServingCa } from './pki-directory.js';
import { makeTestPki } from './test-fixtures.js';
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

/** The API port's two chains (decision 0006): which one a client gets depends on what it can verify. */
describe('the API port with both chains', () => {
  it('gives a client offering Ed25519 the Ed25519 chain under our root, and a client without Ed25519 (a browser) the ECDSA one', async () => {
    const now = new Date();
    const pki = await makeTestPki(now);
    const intermediateCaPem = pki.intermediate.certificate.toString('pem');
    const rootPem = pki.root.certificate.toString('pem');
    const serverTls = await issueServerCertificate({
      intermediateCertPem: intermediateCaPem, intermediateKey: pki.intermediate.privateKey, hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityMs: dayMs, random: systemRandom,
    });
    const ca = await issueServingCa({ commonName: 'SDC serving CA', now, validityMs: 365 * dayMs, random: systemRandom });
    const browserTls = await issueServerCertificate({
      intermediateCertPem: ca.certPem, intermediateKey: ca.privateKey, hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityMs: dayMs, random: systemRandom, keyAlgorithm: 'ECDSA-P256',
    });
    const server = createServer({ ...apiTlsCertificates({ serverTls, intermediateCaPem, browserTls }), minVersion: 'TLSv1.3' }, (socket) => socket.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const keyType = (options: { ca: string; sigalgs?: string }) => new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
        resolve(socket.getPeerX509Certificate()?.publicKey.asymmetricKeyType ?? 'none');
        socket.destroy();
      });
      socket.on('error', reject);
    });
    try {
      assert.equal(await keyType({ ca: rootPem }), 'ed25519', 'Node clients (CLI, agents) keep trusting only our root');
      const browserLike = 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256:rsa_pkcs1_sha256';
      assert.equal(await keyType({ ca: ca.certPem, sigalgs: browserLike }), 'ec');
      await assert.rejects(keyType({ ca: rootPem, sigalgs: browserLike }), /issuer|verify|certificate/i, 'the ECDSA chain is not under our root');
    } finally {
      server.close();
    }
    // Without a serving certificate: exactly the Ed25519 chain, as before.
    assert.deepEqual(apiTlsCertificates({ serverTls, intermediateCaPem }), { key: serverTls.keyPem, cert: `${serverTls.certPem.trim()}\n${intermediateCaPem.trim()}\n` });
  });

  it('sdc pki init writes the serving CA beside the others; loading checks its key\'s mode and that it matches', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-serving-ca-'));
    try {
      const { paths } = await initPki({ dataDir: dir, now: new Date(), random: systemRandom, rootKey: { insecurePlain: true } });
      const loaded = await loadServingCa(paths);
      assert.ok(loaded);
      const cert = new NodeX509(loaded.certPem);
      assert.equal(cert.ca, true);
      assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      await chmod(paths.servingCaKeyPath, 0o644);
      await assert.rejects(loadServingCa(paths), (error: unknown) => SdcError.is(error, 'TRUST_KEY_FILE_PERMISSIONS'));
      const other = await issueServingCa({ commonName: 'another', now: new Date(), validityMs: dayMs, random: systemRandom });
      await writeFile(paths.servingCaKeyPath, other.keyPem, { mode: 0o600 });
      await chmod(paths.servingCaKeyPath, 0o600);
      await assert.rejects(loadServingCa(paths), (error: unknown) => SdcError.is(error, 'TRUST_KEY_FILE_INVALID'));
      await writeFile(paths.servingCaKeyPath, (await makeTestPki()).intermediate.certificate.toString('pem'));
      await assert.rejects(loadServingCa(paths), (error: unknown) => SdcError.is(error, 'TRUST_KEY_FILE_INVALID'));
      await rm(paths.servingCaCertPath);
      assert.equal(await loadServingCa(paths), undefined, 'a data directory from before the serving CA');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
