import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Socket } from 'node:net';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { connectTls, eventually, offlineReasonsOf, TestAgent, useTlsGatewayServers } from './test-support.js';

/** HEARTBEATs one device may send before the test gives up: far more than the bound and the kernel's buffers hold. */
const heartbeatsMax = 200_000;

async function refusals(metrics: ServiceMetrics, code: string): Promise<number> {
  return Number(new RegExp(`sdc_websocket_errors_total\\{code="${code}"\\} (\\d+)`).exec(await metrics.text())?.[1] ?? 0);
}

/**
 * Review h1, F1: the gateway echoes every HEARTBEAT; a device that sends them and never reads had
 * every echo queued in the gateway's memory for the session's life (9 MB for one session in the
 * review's probe, never closed).
 */
describe('a device that stops reading its socket', () => {
  const fixture = useTlsGatewayServers();

  it('is closed with GATEWAY_PEER_NOT_READING (1008) once the gateway holds more than socketBufferedBytesMax for it', async () => {
    const metrics = new ServiceMetrics();
    // No rate limit in the way, and a small bound so that few echoes fill it (the kernel's buffers take the rest).
    const server = await fixture.start({ metrics, messagesPerSecondMax: 10_000_000, socketBufferedBytesMax: 16_384 });
    const device = await fixture.gpki.issueDevice('dev-not-reading');
    const agent = new TestAgent(device, { sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom } });
    const { ws } = await connectTls(server.address.url, device, fixture.gpki.serverTls.caPem, agent);
    fixture.sockets.push({ destroy: () => ws.terminate() });
    await eventually(() => (agent.ready ? true : undefined), 30_000, 'AUTH_ACK');
    const socket = (ws as unknown as { _socket: Socket })._socket;
    socket.pause(); // reads nothing more: the gateway's echoes pile up in the kernel's buffers, then in the gateway
    let sent = 0;
    while ((await refusals(metrics, 'GATEWAY_PEER_NOT_READING')) === 0 && sent < heartbeatsMax) {
      for (let i = 0; i < 500; i += 1, sent += 1) agent.connection.sendHeartbeat({ uptime_ms: sent, queue_depth: 0 }, Date.now());
      agent.flush();
      // Let the gateway read and answer them.
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await refusals(metrics, 'GATEWAY_PEER_NOT_READING'), 1, `no refusal after ${sent} HEARTBEATs`);
    // Reading again, the device finds the echoes and then the gateway's close frame with the code.
    socket.resume();
    await eventually(() => agent.closed, 30_000, 'the close');
    assert.deepEqual(agent.closed, { code: 1008, reason: 'GATEWAY_PEER_NOT_READING' });
    // Review h11, F5: the session's offline says why (it said 'transport lost').
    const reasons = await eventually(async () => {
      const found = await offlineReasonsOf(fixture.stores.bus, 'dev-not-reading');
      return found.length > 0 ? found : undefined;
    }, 30_000, 'the offline entry');
    assert.deepEqual(reasons, ['GATEWAY_PEER_NOT_READING']);
  });
});
