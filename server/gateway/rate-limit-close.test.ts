import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ServiceMetrics } from '../observability/metrics.js';
import { connectTls, eventually, offlineReasonsOf, useTlsGatewayServers } from './test-support.js';

/**
 * Review h1, F2: after the GATEWAY_RATE_LIMITED close, ws still reads the peer's frames until the
 * close handshake ends, and each one was refused again: one warn line, one count and one
 * transportClosed per frame (4996 lines for 5000 frames).
 */
describe('a peer over its message rate', () => {
  const fixture = useTlsGatewayServers();

  it('is refused once: one warn line and one count, whatever it sent after', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { if (line.includes('message rate exceeded')) lines.push(line); } });
    const metrics = new ServiceMetrics();
    const server = await fixture.start({ logger, metrics, messagesPerSecondMax: 5 });
    const device = await fixture.gpki.issueDevice('dev-flood');
    const { agent, ws } = await connectTls(server.address.url, device, fixture.gpki.serverTls.caPem);
    fixture.sockets.push({ destroy: () => ws.terminate() });
    await eventually(() => (agent.ready ? true : undefined), 30_000, 'AUTH_ACK');
    // All written before the gateway's close frame can arrive: the gateway reads them all while closing.
    const framesSent = 500;
    for (let i = 0; i < framesSent; i += 1) ws.send('x');
    // The client's close answer follows its frames, so once the socket closes the gateway has read them all.
    await eventually(() => agent.closed, 30_000, 'the close');
    assert.deepEqual(agent.closed, { code: 1008, reason: 'GATEWAY_RATE_LIMITED' });
    assert.equal(server.received.frames >= framesSent, true, `the gateway read ${server.received.frames} frames`);
    assert.equal(lines.length, 1, `${lines.length} warn lines`);
    assert.match(lines[0] ?? '', /"code":"GATEWAY_RATE_LIMITED"/);
    assert.match(await metrics.text(), /sdc_websocket_errors_total\{code="GATEWAY_RATE_LIMITED"\} 1\b/);
    // Review h11, F5: the session's offline says why (it said 'transport lost').
    const reasons = await eventually(async () => {
      const found = await offlineReasonsOf(fixture.stores.bus, 'dev-flood');
      return found.length > 0 ? found : undefined;
    }, 30_000, 'the offline entry');
    assert.deepEqual(reasons, ['GATEWAY_RATE_LIMITED']);
  });
});
