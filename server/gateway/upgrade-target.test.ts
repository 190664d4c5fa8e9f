import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { ServiceMetrics } from '../observability/metrics.js';
import { connectTls, eventually, useTlsGatewayServers, type DeviceMaterial } from './test-support.js';

/** Writes one upgrade request with `target` over TLS with the device's certificate; resolves with the answer's status line. */
function upgradeStatusLine(port: number, device: DeviceMaterial, caPem: string, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect({ host: '127.0.0.1', port, cert: device.certPem, key: device.keyPem, ca: caPem, servername: 'localhost' }, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
  });
}

/** Review h1, F3: `new URL` threw on such targets in the upgrade listener, an uncaught exception that ended the gateway process. */
describe('gateway upgrade targets the URL parser refuses', () => {
  const fixture = useTlsGatewayServers();

  it('answers 400 (GATEWAY_UPGRADE_TARGET_INVALID, counted) and keeps serving devices', async () => {
    const metrics = new ServiceMetrics();
    const server = await fixture.start({ metrics });
    const device = await fixture.gpki.issueDevice('dev-bad-target');
    const port = server.address.port;
    for (const target of ['//[', 'http://[', '//a:b@[::1']) {
      assert.equal(await upgradeStatusLine(port, device, fixture.gpki.serverTls.caPem, target), 'HTTP/1.1 400 Bad Request', target);
    }
    assert.equal(await upgradeStatusLine(port, device, fixture.gpki.serverTls.caPem, '/elsewhere'), 'HTTP/1.1 404 Not Found');
    const text = await metrics.text();
    assert.match(text, /sdc_websocket_errors_total\{code="GATEWAY_UPGRADE_TARGET_INVALID"\} 3\b/);
    // The gateway still runs and takes a device's session.
    const { agent, ws } = await connectTls(server.address.url, device, fixture.gpki.serverTls.caPem);
    fixture.sockets.push({ destroy: () => ws.terminate() });
    await eventually(() => (agent.ready ? true : undefined), 30_000, 'AUTH_ACK after the refused targets');
  });
});
