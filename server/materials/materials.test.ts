import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer, connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { readPrivateKeyFile } from '../../trust/key-files.js';
import { deploymentPaths, generatedRootKeyPassphrasePath, initDeployment, loadDeployment, loadOrCreateServiceKey } from './materials.js';

test('initDeployment creates the CA, service keys and a server certificate that a TLS client accepts', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const paths = deploymentPaths(dataDir);
  for (const path of [paths.commandKeyPath, paths.gatewayKeyPath, paths.serverKeyPath]) {
    assert.equal((await stat(path)).mode & 0o777, 0o600, path);
  }
  assert.match(materials.commandSigner.kid, /^cp:[0-9a-f]{16}$/);
  assert.match(materials.gatewaySigner.kid, /^gateway:[0-9a-f]{16}$/);
  assert.notDeepEqual(materials.commandSigner.seed, materials.gatewaySigner.seed);

  // A second load reuses every key and the certificate.
  const again = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom });
  assert.equal(again.commandSigner.kid, materials.commandSigner.kid);
  assert.equal(again.serverTls.certPem, materials.serverTls.certPem);

  // TLS 1.3 handshake to 127.0.0.1 and localhost, trusting only the deployment's CA.
  const server = createServer({ cert: `${materials.serverTls.certPem.trim()}\n${materials.intermediateCaPem.trim()}\n`, key: materials.serverTls.keyPem, minVersion: 'TLSv1.3' }, (s) => s.end('hi'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  for (const servername of ['localhost', undefined]) {
    const socket = connect({ host: '127.0.0.1', port, ca: materials.rootCaPem, servername, minVersion: 'TLSv1.3' });
    const [data] = await once(socket, 'data');
    assert.equal(String(data), 'hi');
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    socket.destroy();
  }
});

test('a server certificate that no longer covers the wanted names is re-issued', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const first = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const second = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'gw.example.test'] });
  assert.notEqual(second.serverTls.certPem, first.serverTls.certPem);
  assert.equal(await readFile(deploymentPaths(dataDir).serverCertPath, 'utf8'), second.serverTls.certPem);
});

test('loadDeployment without a CA is a typed refusal naming sdc pki init', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  await assert.rejects(loadDeployment({ dataDir, clock: systemClock, random: systemRandom }), (e) => SdcError.is(e, 'TRUST_PKI_MISSING') && /sdc pki init/.test(e.message));
});

test('a corrupt key file in the data directory is refused naming the file', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const paths = deploymentPaths(dataDir);
  for (const path of [paths.commandKeyPath, paths.gatewayKeyPath, paths.serverKeyPath]) {
    const original = await readFile(path, 'utf8');
    await writeFile(path, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    await assert.rejects(loadDeployment({ dataDir, clock: systemClock, random: systemRandom }), (e) => {
      assert.ok(SdcError.is(e, 'TRUST_KEY_FILE_INVALID'), String(e));
      assert.ok(e.message.includes(path), e.message);
      return true;
    });
    await writeFile(path, original, { mode: 0o600 });
  }
  const certPath = paths.serverCertPath;
  await writeFile(certPath, 'not a certificate\n');
  await assert.rejects(loadDeployment({ dataDir, clock: systemClock, random: systemRandom }), (e) => SdcError.is(e, 'TRUST_CERT_INVALID') && e.message.includes(certPath));
});

test('two processes on one data directory each keep their own TLS certificate (serverTlsName); neither re-issues the other', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const controlPlane = await initDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'control-plane'] });
  const gateway = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'gateway-2'], serverTlsName: 'gateway-gw-2' });
  assert.notEqual(gateway.serverTls.certPem, controlPlane.serverTls.certPem);
  assert.equal(await readFile(join(dataDir, 'tls', 'gateway-gw-2.pem'), 'utf8'), gateway.serverTls.certPem);
  // Each restart, in either order, finds its own file still fitting its names: nothing is re-issued.
  const controlPlaneAgain = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'control-plane'] });
  const gatewayAgain = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'gateway-2'], serverTlsName: 'gateway-gw-2' });
  assert.equal(controlPlaneAgain.serverTls.certPem, controlPlane.serverTls.certPem);
  assert.equal(gatewayAgain.serverTls.certPem, gateway.serverTls.certPem);
  // The signing keys are shared: both processes sign as the same control plane and gateways.
  assert.equal(gateway.gatewaySigner.kid, controlPlane.gatewaySigner.kid);
});

test('a TLS certificate name that is not a plain file name is refused', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  for (const serverTlsName of ['../server', 'a/b', '', '.hidden', 'x'.repeat(65)]) {
    assert.throws(() => deploymentPaths(dataDir, serverTlsName), (e) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'), serverTlsName);
  }
});

test('an online service loads without the root CA key in its data directory (the compose layout)', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  await rm(join(dataDir, 'pki', 'root-ca.key'));
  const loaded = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverTlsName: 'gateway-gw-2' });
  assert.match(loaded.serverTls.certPem, /BEGIN CERTIFICATE/);
});

test('initDeployment encrypts the root key with a generated passphrase kept in a 0600 file beside D/pki, not in it', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const passphraseFile = generatedRootKeyPassphrasePath(dataDir);
  assert.equal(dirname(passphraseFile), dataDir);
  assert.equal((await stat(passphraseFile)).mode & 0o777, 0o600);
  const passphrase = (await readFile(passphraseFile, 'utf8')).trim();
  assert.ok(passphrase.length >= 16, passphrase.length.toString());
  const keyPath = join(dataDir, 'pki', 'root-ca.key');
  assert.match(await readFile(keyPath, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  await readPrivateKeyFile({ path: keyPath, passphrase });
  await assert.rejects(readPrivateKeyFile({ path: keyPath }), (e) => SdcError.is(e, 'TRUST_KEY_PASSPHRASE_REQUIRED'));
});

test('the browsers\' certificate carries only the names the serving CA\'s name constraints permit; the others are reported', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  // initDeployment constrains a new serving CA to the names it serves under (and loopback).
  const first = await initDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'control-plane'] });
  assert.deepEqual(first.browserTls?.namesOutsideServingCa, []);
  assert.match(new X509Certificate(first.browserTls!.certPem).subjectAltName ?? '', /DNS:control-plane/);
  const later = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'control-plane', 'new.example.test'], serverIpAddresses: ['127.0.0.1', '192.0.2.9'] });
  assert.deepEqual(later.browserTls?.namesOutsideServingCa, ['new.example.test', '192.0.2.9']);
  const browserNames = new X509Certificate(later.browserTls!.certPem).subjectAltName ?? '';
  assert.match(browserNames, /^DNS:localhost, DNS:control-plane, IP Address:127\.0\.0\.1/);
  assert.doesNotMatch(browserNames, /new\.example|192\.0\.2/);
  // The Ed25519 certificate (no name constraints under our root) still names them all.
  assert.match(new X509Certificate(later.serverTls.certPem).subjectAltName ?? '', /DNS:new\.example\.test.*IP Address:192\.0\.2\.9/);
});

test('two processes starting at once on one data directory end with the same service keys (one makes each key, the other reads it)', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-deploy-race-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const path = join(dataDir, 'command-signing.key');
  const [a, b] = await Promise.all([
    loadOrCreateServiceKey(path, 'cp', systemRandom),
    loadOrCreateServiceKey(path, 'cp', systemRandom),
  ]);
  assert.equal(a.kid, b.kid);
  assert.equal((await loadOrCreateServiceKey(path, 'cp', systemRandom)).kid, a.kid, 'the key on disk is the one both hold');
  assert.equal((await stat(path)).mode & 0o777, 0o600);

  // The same through loadDeployment: a CA, and no service keys yet.
  const deployDir = join(dataDir, 'deployment');
  await initDeployment({ dataDir: deployDir, clock: systemClock, random: systemRandom });
  const paths = deploymentPaths(deployDir);
  await rm(paths.commandKeyPath);
  await rm(paths.gatewayKeyPath);
  const [first, second] = await Promise.all([
    loadDeployment({ dataDir: deployDir, clock: systemClock, random: systemRandom }),
    loadDeployment({ dataDir: deployDir, clock: systemClock, random: systemRandom }),
  ]);
  assert.equal(first.commandSigner.kid, second.commandSigner.kid);
  assert.equal(first.gatewaySigner.kid, second.gatewaySigner.kid);
  const reloaded = await loadDeployment({ dataDir: deployDir, clock: systemClock, random: systemRandom });
  assert.equal(reloaded.commandSigner.kid, first.commandSigner.kid);
  assert.equal(reloaded.gatewaySigner.kid, first.gatewaySigner.kid);
});
