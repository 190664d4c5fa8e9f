import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kvKeys } from '../bus-contract/streams.js';
import { createGatewayCore, type GatewayCore } from './gateway-core.js';
import { connectInMemory, coreOptions, embeddedStores, eventually, makeGatewayPki, type GatewayPki, type TestStores } from './test-support.js';

describe('gateway admission: the enrolled-device key (default isDeviceKnown)', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    // No isDeviceKnown: the default, what every deployment's gateway (with or without SQL) runs.
    core = createGatewayCore(coreOptions(stores));
    await core.start();
  });

  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('refuses a device from our CA whose enrolled key is absent with AUTH_ERROR GATEWAY_DEVICE_UNKNOWN, and sets no presence', async () => {
    const device = await gpki.issueDevice('dev-never-enrolled');
    const agent = connectInMemory(core, device);
    await eventually(() => agent.closed, 3_000, 'close');
    assert.equal(agent.authError(), 'GATEWAY_DEVICE_UNKNOWN');
    assert.equal(agent.ready, false);
    assert.equal(agent.closed?.code, 1008);
    assert.equal(await stores.kv.get(kvKeys.presence('dev-never-enrolled')), null);
  });

  it('authenticates a device whose enrolled key is present; once the key is gone (revoked) it is refused again', async () => {
    const device = await gpki.issueDevice('dev-enrolled');
    await stores.kv.set(kvKeys.device(device.deviceId), device.serialHex);
    const first = connectInMemory(core, device);
    await eventually(() => (first.ready ? true : undefined), 3_000, 'AUTH_ACK');
    assert.equal(first.authError(), undefined);
    assert.notEqual(await stores.kv.get(kvKeys.presence(device.deviceId)), null);

    await stores.kv.del(kvKeys.device(device.deviceId));
    const second = connectInMemory(core, device);
    await eventually(() => second.closed, 3_000, 'close');
    assert.equal(second.authError(), 'GATEWAY_DEVICE_UNKNOWN');
  });

  it('checks revocation before enrollment: a revoked serial of an enrolled device is TRUST_CERT_REVOKED', async () => {
    const device = await gpki.issueDevice('dev-revoked-serial');
    await stores.kv.set(kvKeys.device(device.deviceId), device.serialHex);
    await stores.kv.set(kvKeys.revoked(device.serialHex), '1');
    const agent = connectInMemory(core, device);
    await eventually(() => agent.closed, 3_000, 'close');
    assert.equal(agent.authError(), 'TRUST_CERT_REVOKED');
  });
});
