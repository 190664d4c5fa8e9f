import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { gatewayMaterialsPaths, issueGatewayCertificate, loadGatewayMaterials } from './gateway-materials.js';
import { deploymentPaths, initDeployment } from './materials.js';

/** Every value reachable from `value` (own enumerable properties, Map entries, arrays). */
function* reachable(value: unknown, seen = new Set<unknown>()): Generator<unknown> {
  if (value === null || typeof value !== 'object' || seen.has(value)) {
    yield value;
    return;
  }
  seen.add(value);
  yield value;
  const children = value instanceof Map ? [...value.keys(), ...value.values()] : value instanceof Uint8Array ? [] : Object.values(value);
  for (const child of children) yield* reachable(child, seen);
}

const sameBytes = (a: unknown, b: Uint8Array) => a instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);

test('loadGatewayMaterials: from a data directory whose CA, JWT, command and artifact private keys are unreadable or gone, and holding none of them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-gw-materials-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const full = await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
  const issued = await issueGatewayCertificate({ dataDir: dir, clock: systemClock, random: systemRandom, serverHostnames: ['localhost', 'gw.example'] });
  const pki = pkiPaths(dir);
  const paths = deploymentPaths(dir);
  // Made unreadable (a gateway running as another user) or removed: the loader must not need them.
  for (const path of [pki.intermediateKeyPath, paths.commandKeyPath, pki.servingCaKeyPath]) await chmod(path, 0o000);
  for (const path of [pki.rootKeyPath, join(dir, 'keys', 'artifact.key')]) await unlink(path).catch(() => undefined);
  await rm(join(dir, 'jwt'), { recursive: true, force: true });

  const gateway = await loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-1', serverHostnames: ['gw.example'] });
  assert.equal(gateway.certificatePath, issued.certPath);
  assert.equal(gateway.renewDue, false);
  assert.equal(gateway.gatewaySigner.kid, full.gatewaySigner.kid);
  assert.deepEqual([...gateway.commandKeys], [[full.commandSigner.kid, full.commandSigner.publicKey]]);

  const artifactSecrets = full.artifactKey === undefined ? [] : [...reachable(full.artifactKey)].filter((v): v is Uint8Array => v instanceof Uint8Array && v.length >= 32);
  const intermediateKeyPem = await readFile(pki.intermediateKeyPath, 'utf8').catch(() => undefined); // unreadable to a non-root user
  for (const value of reachable(gateway)) {
    assert.ok(!(value instanceof CryptoKey), 'no CryptoKey (the intermediate key is one)');
    assert.ok(!sameBytes(value, full.commandSigner.seed), 'not the command-signing seed');
    assert.ok(!artifactSecrets.some((secret) => sameBytes(value, secret)), 'not the artifact key');
    if (typeof value === 'string') {
      assert.doesNotMatch(value, /ENCRYPTED PRIVATE KEY/);
      if (intermediateKeyPem !== undefined) assert.ok(!value.includes(intermediateKeyPem.trim()), 'not the intermediate key');
    }
  }
  // The only private material: the gateway's TLS key and its own signing seed.
  const keys = [...reachable(gateway)].filter((v): v is string => typeof v === 'string' && v.includes('PRIVATE KEY'));
  assert.deepEqual(keys, [gateway.serverTls.keyPem]);
  assert.ok(!('intermediateKey' in gateway) && !('commandSigner' in gateway) && !('artifactKey' in gateway) && !('pki' in gateway));
});

test('loadGatewayMaterials issues nothing: no certificate, a name it does not cover or no command public key are refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-gw-materials-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
  const refusedWith = (code: Parameters<typeof SdcError.is>[1],  pattern: RegExp) => (error: unknown) => SdcError.is(error, code) && pattern.test(error.message);
  await assert.rejects(loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-1' }), refusedWith('TRUST_PKI_MISSING', /command-signing\.pub does not exist \(run sdc pki gateway-cert/));
  const paths = gatewayMaterialsPaths(dir, 'gw-1');
  await issueGatewayCertificate({ dataDir: dir, clock: systemClock, random: systemRandom, gatewayId: 'gw-2' });
  // gw-2's own certificate is not gw-1's, and there is no shared one.
  await assert.rejects(loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-1' }), refusedWith('TRUST_PKI_MISSING', /tls\/gateway\.pem does not exist/));
  assert.equal((await loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-2' })).certificatePath, join(dir, 'tls', 'gateway-gw-2.pem'));
  await assert.rejects(loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-2', serverHostnames: ['gw.example'] }), refusedWith('TRUST_CERT_INVALID', /does not cover gw\.example/));
  await assert.rejects(loadGatewayMaterials({ dataDir: dir, clock: { nowMs: () => Date.parse('2100-01-01') }, gatewayId: 'gw-2' }), refusedWith('TRUST_CERT_INVALID', /is not valid now/));
  await writeFile(paths.commandPublicKeyPath, await readFile(paths.gatewayKeyPath, 'utf8'));
  await assert.rejects(loadGatewayMaterials({ dataDir: dir, clock: systemClock, gatewayId: 'gw-2' }), refusedWith('CRYPTO_BAD_KEY', /command-signing\.pub: expected a public key PEM/));
});
