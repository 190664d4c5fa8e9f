import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { GatewayServer } from './gateway-server.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { connectTls, eventually, useTlsGatewayServers } from './test-support.js';

/** A TCP connection that never starts the TLS handshake (a slowloris, or a port scanner). */
async function silentSocket(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port });
  let closed = false;
  socket.on('close', () => { closed = true; });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed: () => closed };
}

describe('gateway server: sockets that never finish the TLS handshake', () => {
  const fixture = useTlsGatewayServers();
  const { sockets } = fixture;

  async function server(limits: {
    handshakeTimeoutMs: number; pendingHandshakesPerSourceMax: number; socketsMax?: number; metrics?: ServiceMetrics;
    handshakesInFlightMax?: number; handshakeQueueMax?: number; handshakeQueueWaitMsMax?: number;
  }): Promise<GatewayServer> {
    return fixture.start(limits);
  }

  it('closes a socket that has not finished the handshake within handshakeTimeoutMs', async () => {
    const { address } = await server({ handshakeTimeoutMs: 300, pendingHandshakesPerSourceMax: 8 });
    const silent = await silentSocket(address.port);
    sockets.push(silent.socket);
    await eventually(() => (silent.closed() ? true : undefined), 10_000, 'the silent socket closed by the server');
  });

  it('drops sockets from one source beyond pendingHandshakesPerSourceMax at once, and counts a finished handshake out', async () => {
    const { address } = await server({ handshakeTimeoutMs: 60_000, pendingHandshakesPerSourceMax: 2 });
    const held = [await silentSocket(address.port), await silentSocket(address.port)];
    sockets.push(...held.map((h) => h.socket));
    const third = await silentSocket(address.port);
    sockets.push(third.socket);
    await eventually(() => (third.closed() ? true : undefined), 10_000, 'the third pending handshake dropped');
    assert.deepEqual(held.map((h) => h.closed()), [false, false], 'the first two are still waiting');
    // A device from the same address is refused too while two handshakes are pending; once one ends, it gets through.
    held[0]!.socket.destroy();
    await eventually(() => (held[0]!.closed() ? true : undefined), 10_000, 'the first socket gone');
    const device = await fixture.gpki.issueDevice('dev-after-slowloris');
    const { agent, ws } = await eventually(async () => connectTls(address.url, device, fixture.gpki.serverTls.caPem).catch(() => undefined), 10_000, 'a TLS connection');
    sockets.push({ destroy: () => ws.terminate() });
    await eventually(() => (agent.ready ? true : undefined), 10_000, 'AUTH_ACK after the handshake');
    // The finished handshake no longer counts: one more pending fits, the one after is dropped.
    const again = await silentSocket(address.port);
    const beyond = await silentSocket(address.port);
    sockets.push(again.socket, beyond.socket);
    await eventually(() => (beyond.closed() ? true : undefined), 10_000, 'the handshake beyond the cap dropped');
    assert.deepEqual([held[1]!.closed(), again.closed()], [false, false]);
  });

  // Issue 15: each drop before TLS is counted under its own code, since the peer cannot be told.
  it('counts a handshake timeout, a per-source drop and a drop at the global socket limit under their own codes', async () => {
    const refusals = async (metrics: ServiceMetrics) => {
      const text = await metrics.text();
      const count = (code: string) => Number(new RegExp(`sdc_websocket_errors_total\\{code="${code}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { timeout: count('GATEWAY_HANDSHAKE_TIMEOUT'), source: count('GATEWAY_SOURCE_LIMIT'), full: count('GATEWAY_CONNECTIONS_FULL') };
    };
    const perSource = new ServiceMetrics();
    const a = await server({ handshakeTimeoutMs: 300, pendingHandshakesPerSourceMax: 1, metrics: perSource });
    const first = await silentSocket(a.address.port);
    const second = await silentSocket(a.address.port);
    sockets.push(first.socket, second.socket);
    await eventually(async () => ((await refusals(perSource)).source === 1 ? true : undefined), 10_000, 'the second socket counted as GATEWAY_SOURCE_LIMIT');
    await eventually(async () => (first.closed() && (await refusals(perSource)).timeout === 1 ? true : undefined), 10_000, 'the first socket timed out and was counted');
    assert.deepEqual(await refusals(perSource), { timeout: 1, source: 1, full: 0 });

    const global = new ServiceMetrics();
    const b = await server({ handshakeTimeoutMs: 60_000, pendingHandshakesPerSourceMax: 8, socketsMax: 1, metrics: global });
    const held = await silentSocket(b.address.port);
    const beyond = await silentSocket(b.address.port);
    sockets.push(held.socket, beyond.socket);
    await eventually(() => (beyond.closed() ? true : undefined), 10_000, 'the socket beyond socketsMax dropped');
    assert.deepEqual(await refusals(global), { timeout: 0, source: 0, full: 1 });
    assert.equal(held.closed(), false);
  });

  // Issue 15: a reconnect storm must not start every handshake at once (each would then outlast the
  // timeout); sockets beyond handshakesInFlightMax wait their turn instead of being dropped.
  it('holds a device beyond handshakesInFlightMax until a slot frees, then completes its handshake', async () => {
    const metrics = new ServiceMetrics();
    const { address } = await server({ handshakeTimeoutMs: 60_000, pendingHandshakesPerSourceMax: 8, handshakesInFlightMax: 1, metrics });
    const silent = await silentSocket(address.port); // holds the only slot
    sockets.push(silent.socket);
    const device = await fixture.gpki.issueDevice('dev-queued');
    let ready = false;
    const connecting = connectTls(address.url, device, fixture.gpki.serverTls.caPem).then((connected) => {
      sockets.push({ destroy: () => connected.ws.terminate() });
      return eventually(() => (connected.agent.ready ? true : undefined), 10_000, 'AUTH_ACK after the wait');
    }).then(() => { ready = true; });
    // The device is waiting, not dropped: nothing counted, and it is not through while the slot is held.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(ready, false, 'the device waits while the only slot is held');
    silent.socket.destroy();
    await connecting;
    const text = await metrics.text();
    assert.doesNotMatch(text, /sdc_websocket_errors_total\{code="GATEWAY_(SOURCE_LIMIT|HANDSHAKE_QUEUE_FULL|HANDSHAKE_QUEUE_TIMEOUT)"\} [1-9]/);
  });

  it('drops a socket beyond handshakeQueueMax at once, and one that waited past handshakeQueueWaitMsMax at its turn', async () => {
    const metrics = new ServiceMetrics();
    const count = async (code: string) => Number(new RegExp(`sdc_websocket_errors_total\\{code="${code}"\\} (\\d+)`).exec(await metrics.text())?.[1] ?? 0);
    const { address } = await server({
      handshakeTimeoutMs: 60_000, pendingHandshakesPerSourceMax: 8, handshakesInFlightMax: 1, handshakeQueueMax: 1, handshakeQueueWaitMsMax: 200, metrics,
    });
    const first = await silentSocket(address.port); // in the handshake
    const second = await silentSocket(address.port); // waiting
    const third = await silentSocket(address.port); // beyond the queue
    sockets.push(first.socket, second.socket, third.socket);
    await eventually(() => (third.closed() ? true : undefined), 10_000, 'the socket beyond the queue dropped');
    assert.equal(await count('GATEWAY_HANDSHAKE_QUEUE_FULL'), 1);
    assert.deepEqual([first.closed(), second.closed()], [false, false]);
    // Past the wait bound, the waiting socket is dropped when the slot frees, not handed to TLS.
    await new Promise((resolve) => setTimeout(resolve, 400));
    first.socket.destroy();
    await eventually(() => (second.closed() ? true : undefined), 10_000, 'the socket that waited too long dropped at its turn');
    assert.equal(await count('GATEWAY_HANDSHAKE_QUEUE_TIMEOUT'), 1);
  });
});
