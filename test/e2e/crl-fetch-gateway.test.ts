// A separate gateway process (compose's gateway-2, a Kubernetes gateway pod) that has no CRL file
// fetches the CRL from the control plane's API (`--crl-url`, decision 0021 of 2026-12-06): on real
// TLS, its folder holding only a gateway's files (as deploy/gateway-files.sh copies them, without
// the CRL). A device revoked on the control plane whose revoked key the key/value store then lost
// is refused as revoked at that gateway by the fetched CRL alone; without the fetch the gateway
// would only see that the certificate is no longer current (GATEWAY_CERT_UNKNOWN).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCsrPem } from '../../agent/enrollment.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../../runtime/ed25519-node.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { kvKeys } from '../../server/bus-contract/streams.js';
import { startDeployment, type Deployment } from '../../server/deployment/deployment.js';
import { connectTls, eventually, TestAgent, type DeviceMaterial } from '../../server/gateway/test-support.js';
import { gatewayMaterialsPaths, issueGatewayCertificate, loadGatewayMaterials, publishCommandPublicKey } from '../../server/materials/gateway-materials.js';
import { initDeployment, type DeploymentMaterials } from '../../server/materials/materials.js';
import { deleteKeysWithPrefix } from '../../server/stores/redis-test-keys.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { fastGateway, runTag } from './support/e2e-harness.js';

const redisUrl = process.env.REDIS_URL;
const provider = createNodeEd25519Provider();

describe('a gateway with no CRL file fetches it from the control plane (--crl-url)', { skip: redisUrl ? false : 'REDIS_URL is not set: a gateway-only process needs a shared Redis' }, () => {
  const keyPrefix = `h8-e2e-crl-fetch-${runTag()}:`;
  let dataDir: string;
  let gatewayDir: string;
  let materials: DeploymentMaterials;
  let controlPlane: Deployment;
  const gateways: Deployment[] = [];
  const sockets: Array<{ terminate(): void }> = [];

  /** The gateway's own folder: what deploy/gateway-files.sh copies, without the CRL. */
  async function gatewayFiles(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-e2e-gw2-'));
    const paths = gatewayMaterialsPaths(dataDir, 'gw-2');
    for (const path of [paths.rootCertPath, paths.intermediateCertPath, paths.gatewayKeyPath, paths.commandPublicKeyPath, paths.ownCertPath!, paths.ownKeyPath!]) {
      const to = join(dir, relative(dataDir, path));
      await mkdir(dirname(to), { recursive: true, mode: 0o700 });
      await copyFile(path, to);
      await chmod(to, (await stat(path)).mode & 0o777); // a key file stays 0600 (sdc refuses a wider one)
    }
    await assert.rejects(stat(pkiPaths(dir).crlPath), 'no CRL file in the gateway\'s folder');
    return dir;
  }

  /** A gateway-only process on gw-2's files; `gatewayId` as a Kubernetes pod's name (`--gateway-id=$(POD_NAME)`). */
  async function startGateway(withCrlUrl: boolean, gatewayId = 'gw-2'): Promise<Deployment> {
    const gatewayMaterials = await loadGatewayMaterials({ dataDir: gatewayDir, clock: systemClock, gatewayId: 'gw-2' });
    const gateway = await startDeployment({
      materials: gatewayMaterials, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
      controlPlane: false, redisUrl: redisUrl!, keyPrefix, gatewayId, gateway: fastGateway,
      ...(withCrlUrl ? { crlUrl: new URL('/v1/crl', controlPlane.apiUrl) } : {}),
    });
    gateways.push(gateway);
    return gateway;
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'sdc-e2e-crl-fetch-'));
    materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
    await publishCommandPublicKey(dataDir, materials.commandSigner);
    await issueGatewayCertificate({ dataDir, clock: systemClock, random: systemRandom, gatewayId: 'gw-2' });
    gatewayDir = await gatewayFiles();
    controlPlane = await startDeployment({
      materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
      redisUrl: redisUrl!, keyPrefix, scryptParams: { N: 1024, r: 8, p: 1 }, gateway: fastGateway,
    });
  });
  after(async () => {
    for (const socket of sockets) socket.terminate();
    for (const gateway of gateways) await gateway.stop();
    await controlPlane?.stop();
    await deleteKeysWithPrefix(redisUrl!, keyPrefix);
    await rm(dataDir, { recursive: true, force: true });
    await rm(gatewayDir, { recursive: true, force: true });
  });

  async function enrolledDevice(deviceId: string): Promise<DeviceMaterial> {
    const cp = controlPlane.controlPlane!;
    const { token } = await cp.devices.createPairingToken({ actor: 'e2e-operator', deviceId });
    const seed = new Uint8Array(randomBytes(32));
    const { certificate_pem: certPem } = await cp.devices.enroll({ deviceId, token, csrPem: await createCsrPem(seed, deviceId) });
    return { deviceId, certPem, keyPem: pemFromPrivateSeed(seed), seed, publicKey: provider.publicKeyFromSeed(seed), serialHex: normalizeSerialHex(parseCertificate(certPem).serialNumber) };
  }

  /** AUTH_ACK, or the AUTH_ERROR code `gateway` answered with. */
  async function outcome(gateway: Deployment, device: DeviceMaterial): Promise<string> {
    const agent = new TestAgent(device, { gatewayKey: { kid: materials.gatewaySigner.kid, publicKey: materials.gatewaySigner.publicKey } });
    const { ws } = await connectTls(gateway.gatewayUrl, device, materials.rootCaPem, agent);
    sockets.push(ws);
    return eventually(() => (agent.ready ? 'AUTH_ACK' : agent.authError()), 10_000, `the gateway's answer to ${device.serialHex}`);
  }

  it('holds the control plane\'s current CRL at its start, and refuses a device revoked there as revoked with the kv revoked key gone', async () => {
    const device = await enrolledDevice(`e2e-crl-fetch-${runTag()}`);
    const revoked = await controlPlane.controlPlane!.devices.revoke({ actor: 'e2e-operator', deviceId: device.deviceId, reason: 'keyCompromise' });
    // The key/value store lost the revoked key (the control plane writes it back within a minute).
    await controlPlane.stores.kv.del(kvKeys.revoked(device.serialHex));
    const gateway = await startGateway(true);
    const exposition = await gateway.metrics.registry.metrics();
    assert.match(exposition, new RegExp(`^sdc_gateway_crl_number ${revoked.crl_number}$`, 'm'), 'the CRL the revocation signed');
    assert.match(exposition, /^sdc_gateway_crl_state\{state="fresh"\} 1$/m);
    assert.equal(await outcome(gateway, device), 'TRUST_CERT_REVOKED');

    // A new pod (another name, as --gateway-id=$(POD_NAME) gives each) with no CRL file and no
    // fetch yet starts with the deployment's one record, not a record of its own (review h9,
    // findings 2 and 3): it holds that CRL, fresh, and refuses the revoked device as revoked.
    const pod = await startGateway(false, `sdc-gateway-${runTag()}`);
    const podExposition = await pod.metrics.registry.metrics();
    assert.match(podExposition, new RegExp(`^sdc_gateway_crl_number ${revoked.crl_number}$`, 'm'), 'the record\'s CRL');
    assert.match(podExposition, /^sdc_gateway_crl_state\{state="fresh"\} 1$/m);
    assert.equal(await outcome(pod, device), 'TRUST_CERT_REVOKED');
    assert.equal(await controlPlane.stores.kv.get('sdc:gw:crl-number:gw-2'), null, 'no per-gateway record is left behind');
  });
});
