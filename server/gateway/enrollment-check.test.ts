import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kvKeys } from '../bus-contract/streams.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { createGatewayCore, type GatewayCore } from './gateway-core.js';
import { connectInMemory, coreOptions, embeddedStores, eventually, makeGatewayPki, type DeviceMaterial, type GatewayPki, type TestStores } from './test-support.js';

describe('gateway admission: the enrolled-device and current-certificate keys (default checkEnrollment)', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    // No checkEnrollment: the default, what every deployment's gateway (with or without SQL) runs.
    core = createGatewayCore(coreOptions(stores));
    await core.start();
  });

  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  /** What the control plane publishes when it issues `device` its certificate through enrollment. */
  async function publishEnrolled(device: DeviceMaterial): Promise<void> {
    await stores.kv.set(kvKeys.deviceCertificate(normalizeSerialHex(device.serialHex)), device.deviceId, { ttlMs: 3_600_000 });
    await stores.kv.set(kvKeys.device(device.deviceId), normalizeSerialHex(device.serialHex));
  }

  async function refusal(device: DeviceMaterial): Promise<string | undefined> {
    const agent = connectInMemory(core, device);
    await eventually(() => agent.closed, 3_000, 'close');
    assert.equal(agent.ready, false);
    assert.equal(agent.closed?.code, 1008);
    return agent.authError();
  }

  it('refuses a device from our CA whose enrolled key is absent with AUTH_ERROR GATEWAY_DEVICE_UNKNOWN, and sets no presence', async () => {
    const device = await gpki.issueDevice('dev-never-enrolled');
    assert.equal(await refusal(device), 'GATEWAY_DEVICE_UNKNOWN');
    assert.equal(await stores.kv.get(kvKeys.presence('dev-never-enrolled')), null);
  });

  it('authenticates a device with its current certificate; once the keys are gone (revoked, or a wiped store) it is refused: fail closed', async () => {
    const device = await gpki.issueDevice('dev-enrolled');
    await publishEnrolled(device);
    const first = connectInMemory(core, device);
    await eventually(() => (first.ready ? true : undefined), 3_000, 'AUTH_ACK');
    assert.equal(first.authError(), undefined);
    assert.notEqual(await stores.kv.get(kvKeys.presence(device.deviceId)), null);

    await stores.kv.del(kvKeys.deviceCertificate(normalizeSerialHex(device.serialHex)));
    await stores.kv.del(kvKeys.device(device.deviceId));
    assert.equal(await refusal(device), 'GATEWAY_DEVICE_UNKNOWN');
  });

  it('refuses a certificate our CA signed outside enrollment for an enrolled device id (issue 16.4) with GATEWAY_CERT_UNKNOWN', async () => {
    const enrolled = await gpki.issueDevice('dev-victim');
    await publishEnrolled(enrolled);
    // Signed by the same intermediate, same device id, never issued through enrollment (what `sdc pki issue` makes).
    const outside = await gpki.issueDevice('dev-victim');
    assert.equal(await refusal(outside), 'GATEWAY_CERT_UNKNOWN');
    const genuine = connectInMemory(core, enrolled);
    await eventually(() => (genuine.ready ? true : undefined), 3_000, 'AUTH_ACK of the enrolled certificate');
  });

  it('refuses a certificate whose key names another device', async () => {
    const other = await gpki.issueDevice('dev-other');
    const device = await gpki.issueDevice('dev-borrowed-serial');
    await stores.kv.set(kvKeys.device(device.deviceId), 'ab');
    await stores.kv.set(kvKeys.deviceCertificate(normalizeSerialHex(device.serialHex)), other.deviceId, { ttlMs: 3_600_000 });
    assert.equal(await refusal(device), 'GATEWAY_CERT_UNKNOWN');
  });

  it('checks revocation before enrollment: a revoked serial of an enrolled device is TRUST_CERT_REVOKED', async () => {
    const device = await gpki.issueDevice('dev-revoked-serial');
    await publishEnrolled(device);
    await stores.kv.set(kvKeys.revoked(normalizeSerialHex(device.serialHex)), '1');
    assert.equal(await refusal(device), 'TRUST_CERT_REVOKED');
  });
});
