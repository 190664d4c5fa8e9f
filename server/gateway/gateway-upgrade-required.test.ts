import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { errorRegistry } from '../../core/errors/index.js';
import type { GatewayCore } from './gateway-core.js';
import { startGatewayServer, type GatewayServer } from './gateway-server.js';
import { embeddedStores, makeCore, makeGatewayPki, type GatewayPki, type TestStores } from './test-support.js';

/** Issue 16.11: plain HTTPS on the gateway port was a 426 carrying GATEWAY_INVALID_ARGUMENT, a local-fault 500 code. */
describe('gateway answers plain HTTPS with GATEWAY_UPGRADE_REQUIRED', () => {
  let gpki: GatewayPki;
  let stores: TestStores;
  let core: GatewayCore;
  let server: GatewayServer;

  before(async () => {
    gpki = await makeGatewayPki();
    stores = embeddedStores();
    core = makeCore(stores);
    await core.start();
    server = await startGatewayServer({
      core, tls: gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [gpki.pki.intermediate.certificate, gpki.pki.root.certificate],
    });
  });

  after(async () => {
    await server.close();
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('a GET without an upgrade gets 426, our error shape and a remote-fault code', async () => {
    const device = await gpki.issueDevice('dev-plain-https');
    const url = new URL(server.address.url);
    const answer = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = request({
        host: url.hostname, port: url.port, path: url.pathname, method: 'GET', cert: device.certPem, key: device.keyPem, ca: gpki.serverTls.caPem,
      }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(answer.status, 426);
    assert.equal(answer.headers['upgrade'], 'websocket');
    const error = (JSON.parse(answer.body) as { error: { code: string; message: string; trace_id: string } }).error;
    assert.equal(error.code, 'GATEWAY_UPGRADE_REQUIRED');
    assert.match(error.trace_id, /^[0-9a-f]{16}$/);
    assert.equal(errorRegistry.GATEWAY_UPGRADE_REQUIRED.fault, 'remote');
    assert.equal(errorRegistry.GATEWAY_UPGRADE_REQUIRED.status, 426);
  });
});
