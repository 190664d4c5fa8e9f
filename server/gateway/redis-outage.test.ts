import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GatewayCore } from './gateway-core.js';
import { startGatewayServer, type GatewayServer } from './gateway-server.js';
import { connectTls, embeddedStores, eventually, makeCore, makeGatewayPki, outageKv, type GatewayPki, type TestStores } from './test-support.js';

// Issue 15, "Bad input and faults": a gateway that cannot reach Redis refuses new sessions with a
// typed error (admission reads the revocation key there; it fails closed) and admits again once
// Redis answers, with no restart. Over the real TLS server, as a device meets it.
describe('gateway without Redis: new sessions refused with a typed error, admitted again when it returns', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let outage: ReturnType<typeof outageKv>;
  let core: GatewayCore;
  let server: GatewayServer;
  const sockets: Array<{ terminate(): void }> = [];

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    outage = outageKv(stores.kv);
    core = makeCore({ bus: stores.bus, kv: outage.kv });
    await core.start();
    server = await startGatewayServer({
      core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate],
    });
  });
  after(async () => {
    for (const socket of sockets) socket.terminate();
    await server.close();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('refuses with AUTH_ERROR GATEWAY_OVERLOADED and a close while down, then admits the same device', async () => {
    const device = await gpki.issueDevice('dev-redis-outage');
    outage.setDown(true);
    const refused = await connectTls(server.address.url, device, gpki.serverTls.caPem);
    sockets.push(refused.ws);
    const code = await eventually(() => refused.agent.authError(), 10_000, 'AUTH_ERROR while Redis is down');
    assert.equal(code, 'GATEWAY_OVERLOADED');
    await eventually(() => refused.agent.closed, 10_000, 'the refused connection closed');
    assert.equal(refused.agent.ready, false);

    outage.setDown(false);
    const admitted = await connectTls(server.address.url, device, gpki.serverTls.caPem);
    sockets.push(admitted.ws);
    await eventually(() => (admitted.agent.ready ? true : undefined), 10_000, 'AUTH_ACK once Redis answers again');
    assert.equal(admitted.agent.authError(), undefined);
  });
});
