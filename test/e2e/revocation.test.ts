// Revocation that holds (issue 16, findings 2, 3 and 4): a revoked or superseded certificate is
// refused before and after a restart that loses the key/value store, revocation ends the open
// session and the control plane refuses what the revoked device still had in flight, and a
// certificate our CA signed outside enrollment is refused. A whole deployment on real TLS, with
// devices enrolled through the control plane and connected by a test agent.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import RedisMock from 'ioredis-mock';
import { createCsrPem } from '../../agent/enrollment.js';
import { encodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import { deviceFrame } from '../../server/control-plane/test-support.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../../runtime/ed25519-node.js';
import { startDeployment, type Deployment } from '../../server/deployment/deployment.js';
import { initDeployment, type DeploymentMaterials } from '../../server/materials/materials.js';
import { closeCodes } from '../../server/gateway/close-codes.js';
import { connectTls, eventually, TestAgent, type DeviceMaterial } from '../../server/gateway/test-support.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { deadLetterStream } from '../../server/stores/bus/bus-port.js';
import { deleteKeysWithPrefix } from '../../server/stores/redis-test-keys.js';
import { revokedSerialsOfCrl } from '../../trust/crl.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { testStoreNamespace } from '../../server/stores/test-store-namespace.js';
import { fastGateway, mysqlAdmin, ownDatabaseName, ownDatabaseUrl, runTag, storeTargets, type StoreTarget } from './support/e2e-harness.js';

const provider = createNodeEd25519Provider();
const operator = { name: 'e2e-operator', role: 'admin' as const };

/** A device key, and a CSR for it naming `deviceId`. */
async function deviceKey(deviceId: string): Promise<{ seed: Uint8Array; csrPem: string }> {
  const seed = new Uint8Array(randomBytes(32));
  return { seed, csrPem: await createCsrPem(seed, deviceId) };
}

function material(deviceId: string, seed: Uint8Array, certPem: string): DeviceMaterial {
  return {
    deviceId, certPem, keyPem: pemFromPrivateSeed(seed), seed, publicKey: provider.publicKeyFromSeed(seed),
    serialHex: normalizeSerialHex(parseCertificate(certPem).serialNumber),
  };
}

for (const target of storeTargets()) {
  describe(`revocation holds on ${target.name} stores`, () => {
    const tag = runTag();
    // The test runner's namespace in the store names (the runner removes them if this file is killed);
    // a MySQL database of its own, not the shared one the URL names.
    const storeTag = `${testStoreNamespace()}${tag}`;
    const keyPrefix = `sdc-e2e-rev-${storeTag}:`;
    let dataDir: string;
    let materials: DeploymentMaterials;
    let deployment: Deployment;
    const sockets: Array<{ terminate(): void }> = [];

    async function start(): Promise<Deployment> {
      return startDeployment({
        materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
        ...(target.redisUrl ? { redisUrl: target.redisUrl, keyPrefix } : {}),
        ...(target.mysqlUrl ? { mysqlUrl: ownDatabaseUrl(target.mysqlUrl, storeTag) } : {}),
        scryptParams: { N: 1024, r: 8, p: 1 }, gateway: fastGateway,
        controlPlaneTuning: { expirySweepIntervalMs: 500, redeliverySweepIntervalMs: 500, redispatchIntervalMs: 3_000 },
      });
    }

    /**
     * A restart that loses the key/value store and the bus, SQL kept: embedded, the new process's
     * stores start empty (the in-process key/value mock is shared, so it is flushed); on Redis,
     * every key of this deployment is deleted while it is down (FLUSHALL for this deployment).
     */
    async function restartLosingKv(): Promise<void> {
      for (const socket of sockets.splice(0)) socket.terminate();
      await deployment.stop();
      if (target.redisUrl) await deleteKeysWithPrefix(target.redisUrl, keyPrefix);
      else await new RedisMock().flushall();
      deployment = await start();
    }

    const cp = () => deployment.controlPlane!;
    const deviceId = (name: string) => `e2e-rev-${tag}-${name}`;

    async function enroll(id: string): Promise<DeviceMaterial> {
      const { token } = await cp().devices.createPairingToken({ actor: operator.name, deviceId: id });
      const { seed, csrPem } = await deviceKey(id);
      const answer = await cp().devices.enroll({ deviceId: id, token, csrPem });
      return material(id, seed, answer.certificate_pem);
    }

    async function renew(current: DeviceMaterial): Promise<DeviceMaterial> {
      const { seed, csrPem } = await deviceKey(current.deviceId);
      const answer = await cp().devices.renew({ deviceId: current.deviceId, csrPem, presented: { certDer: new Uint8Array(parseCertificate(current.certPem).rawData) } });
      return material(current.deviceId, seed, answer.certificate_pem);
    }

    async function connect(device: DeviceMaterial): Promise<TestAgent> {
      const agent = new TestAgent(device, { gatewayKey: { kid: materials.gatewaySigner.kid, publicKey: materials.gatewaySigner.publicKey } });
      const { ws } = await connectTls(deployment.gatewayUrl, device, materials.rootCaPem, agent);
      sockets.push(ws);
      return agent;
    }

    /** AUTH_ACK, or the AUTH_ERROR code the gateway answered with. */
    async function outcome(device: DeviceMaterial): Promise<string> {
      const agent = await connect(device);
      return eventually(() => (agent.ready ? 'AUTH_ACK' : agent.authError()), 10_000, `the gateway's answer to ${device.serialHex}`);
    }

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'sdc-e2e-rev-'));
      materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
      if (target.mysqlUrl) await mysqlAdmin(target.mysqlUrl, `CREATE DATABASE \`${ownDatabaseName(storeTag)}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      deployment = await start();
    });
    after(async () => {
      for (const socket of sockets) socket.terminate();
      await deployment?.stop();
      if (target.redisUrl) await deleteKeysWithPrefix(target.redisUrl, keyPrefix);
      if (target.mysqlUrl) await mysqlAdmin(target.mysqlUrl, `DROP DATABASE IF EXISTS \`${ownDatabaseName(storeTag)}\``);
      await rm(dataDir, { recursive: true, force: true });
    });

    it('refuses a certificate revoked for key compromise (device re-enrolled) and one superseded by a renewal, before and after a restart that lost the key/value store (16.2)', async () => {
      const compromised = await enroll(deviceId('a'));
      await cp().devices.revoke({ actor: operator.name, deviceId: compromised.deviceId, reason: 'keyCompromise' });
      // The CRL file gateways read lists it too, so the refusal does not depend on the key/value store.
      const listed = await revokedSerialsOfCrl({ pem: await readFile(pkiPaths(dataDir).crlPath, 'utf8'), issuer: parseCertificate(materials.intermediateCaPem) });
      assert.ok(listed.has(compromised.serialHex), 'the CRL file lists the revoked serial');
      const reenrolled = await enroll(compromised.deviceId);
      const first = await enroll(deviceId('b'));
      const second = await renew(first);
      const third = await renew(second); // supersedes `first`; `second` stays usable until it expires

      const expected = { compromised: 'TRUST_CERT_REVOKED', reenrolled: 'AUTH_ACK', first: 'TRUST_CERT_REVOKED', second: 'AUTH_ACK', third: 'AUTH_ACK' };
      const observe = async () => ({
        compromised: await outcome(compromised), reenrolled: await outcome(reenrolled), first: await outcome(first), second: await outcome(second), third: await outcome(third),
      });
      assert.deepEqual(await observe(), expected, 'before the restart');
      await restartLosingKv();
      assert.deepEqual(await observe(), expected, 'after the restart');
    });

    it('refuses a certificate our intermediate signed outside enrollment for an enrolled device, as the renewal route does (16.4)', async () => {
      const enrolled = await enroll(deviceId('c'));
      const { seed, csrPem } = await deviceKey(enrolled.deviceId);
      // What `sdc pki issue` does: the intermediate signs, no enrollment records it.
      const issued = await materials.pki.issuer.issueDeviceCertificate({ csrPem, deviceId: enrolled.deviceId, now: new Date() });
      const outside = material(enrolled.deviceId, seed, issued.certificatePem);
      const live = await connect(enrolled);
      await eventually(() => (live.ready ? true : undefined), 10_000, 'the enrolled session');
      assert.equal(await outcome(outside), 'GATEWAY_CERT_UNKNOWN');
      assert.equal(live.closed, undefined, 'the enrolled session was not replaced');
      await assert.rejects(renew(outside), (error: unknown) => (error as { code?: string }).code === 'API_CLIENT_CERT_UNKNOWN');
    });

    it('closes the open session at revocation (typed close code) and refuses what the device still had in flight (16.3)', async () => {
      const device = await enroll(deviceId('d'));
      const agent = await connect(device);
      agent.behaviour = 'silent';
      await eventually(() => (agent.ready ? true : undefined), 10_000, 'AUTH_ACK');
      await eventually(async () => ((await cp().devices.get(device.deviceId)).online ? true : undefined), 10_000, 'online');
      const { command } = await cp().commands.create({ actor: operator, deviceId: device.deviceId, opcode: 'EXEC_PING_KERNEL', args: {} });
      await eventually(() => (agent.deliveries.some((d) => d.commandId === command.id) ? true : undefined), 10_000, 'the delivery');

      await cp().devices.revoke({ actor: operator.name, deviceId: device.deviceId, reason: 'keyCompromise' });
      const closed = await eventually(() => agent.closed, 10_000, 'the session closed by the revocation');
      assert.deepEqual(closed, { code: closeCodes.revoked, reason: 'TRUST_CERT_REVOKED' });

      // Frames the device sent just before the close, still on the streams when the revocation lands.
      const { bus } = deployment.stores;
      const nowMs = systemClock.nowMs();
      const deadTelemetry = await bus.length(deadLetterStream(streamNames.telemetry));
      const deadEvents = await bus.length(deadLetterStream(streamNames.events));
      const telemetryFrame = deviceFrame({
        deviceId: device.deviceId, seed: device.seed, type: 'TELEMETRY', ts: nowMs,
        body: { sampled_at: nowMs, metrics: { cpu_pct: 1, mem_pct: 1, disk_pct: 1, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 } },
      });
      const resultFrame = deviceFrame({
        deviceId: device.deviceId, seed: device.seed, type: 'COMMAND_RESULT', ts: nowMs,
        body: { command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output: { pong: true }, finished_at: nowMs },
      });
      await bus.append(streamNames.telemetry, encodeBusEntry('telemetry', { device_id: device.deviceId, gateway_id: 'gw-1', received_at_ms: nowMs, frame: telemetryFrame }));
      await bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: command.id, device_id: device.deviceId, gateway_id: 'gw-1', at_ms: nowMs, frame: resultFrame }));
      await eventually(async () => ((await bus.length(deadLetterStream(streamNames.telemetry))) > deadTelemetry ? true : undefined), 10_000, 'the telemetry refused');
      await eventually(async () => ((await bus.length(deadLetterStream(streamNames.events))) > deadEvents ? true : undefined), 10_000, 'the result refused');
      assert.deepEqual(await cp().events.telemetry({ deviceId: device.deviceId }), []);
      assert.notEqual((await cp().commands.get(command.id)).state, 'succeeded');

      assert.equal(await outcome(device), 'TRUST_CERT_REVOKED', 'and it cannot come back');
    });
  });
}
