import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTlsSocket } from 'node:tls';
import { describe, it } from 'node:test';
import { startGatewayServer, type GatewayServer, type GatewayServerOptions } from './gateway-server.js';
import { ServiceMetrics } from '../observability/metrics.js';
import { connectTls, eventually, useTlsGatewayServers, type DeviceMaterial } from './test-support.js';

/**
 * Security review 2026-12-05, finding 5: sockets past the TLS handshake. A client that finished
 * mutual TLS and then sent nothing was held for good, and one address or one certificate could
 * hold any number of such sockets. Real sockets against the gateway server, with small bounds;
 * the assertions are on refusals (by code) and closes, not on elapsed time.
 */

interface Peer { readonly socket: Socket; closed(): boolean; secured(): boolean }

/** A socket that finishes mutual TLS with the device's certificate (or only TCP, `tls: false`) and then sends nothing. */
async function silentPeer(port: number, device: DeviceMaterial | undefined, caPem: string): Promise<Peer> {
  let closed = false;
  let secured = false;
  const socket = device === undefined
    ? connectTcp({ host: '127.0.0.1', port })
    : connectTlsSocket({ host: '127.0.0.1', port, cert: device.certPem, key: device.keyPem, ca: caPem, servername: 'localhost' });
  socket.on('close', () => { closed = true; });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    socket.once(device === undefined ? 'connect' : 'secureConnect', () => { secured = true; resolve(); });
    socket.once('close', () => resolve());
  });
  return { socket, closed: () => closed, secured: () => secured };
}

describe('gateway server: bounds on sockets past the TLS handshake', () => {
  const fixture = useTlsGatewayServers();
  const { sockets } = fixture;

  async function server(limits: Partial<GatewayServerOptions>): Promise<{ server: GatewayServer; count: (code: string) => Promise<number> }> {
    const metrics = new ServiceMetrics();
    const started = await fixture.start({ metrics, ...limits });
    const count = async (code: string) => Number(new RegExp(`sdc_websocket_errors_total\\{code="${code}"\\} (\\d+)`).exec(await metrics.text())?.[1] ?? 0);
    return { server: started, count };
  }

  async function silent(port: number, device: DeviceMaterial | undefined): Promise<Peer> {
    const peer = await silentPeer(port, device, fixture.gpki.serverTls.caPem);
    sockets.push(peer.socket);
    return peer;
  }

  async function session(url: string, device: DeviceMaterial): Promise<Awaited<ReturnType<typeof connectTls>>> {
    const connected = await connectTls(url, device, fixture.gpki.serverTls.caPem);
    sockets.push({ destroy: () => connected.ws.terminate() });
    await eventually(() => (connected.agent.ready ? true : undefined), 10_000, `AUTH_ACK for ${device.deviceId}`);
    return connected;
  }

  it('closes a socket that finished mutual TLS but sent no upgrade request within upgradeTimeoutMs, counted as GATEWAY_UPGRADE_TIMEOUT', async () => {
    const { server: gateway, count } = await server({ upgradeTimeoutMs: 300 });
    const device = await fixture.gpki.issueDevice('dev-upgrade-silent');
    const peer = await silent(gateway.address.port, device);
    assert.equal(peer.secured(), true, 'the TLS handshake finished');
    await eventually(() => (peer.closed() ? true : undefined), 10_000, 'the silent socket closed by the server');
    assert.equal(await count('GATEWAY_UPGRADE_TIMEOUT'), 1);
    // An upgraded, authenticated session is past that timer: the same bound does not end it.
    const { agent } = await session(gateway.address.url, device);
    await new Promise((resolve) => setTimeout(resolve, 900));
    assert.equal(agent.closed, undefined, 'the authenticated session is still open');
    assert.equal(await count('GATEWAY_UPGRADE_TIMEOUT'), 1);
  });

  it('drops a socket of one certificate beyond unauthenticatedSocketsPerCertificateMax; an authenticated session no longer counts', async () => {
    const { server: gateway, count } = await server({ unauthenticatedSocketsPerCertificateMax: 2, upgradeTimeoutMs: 60_000 });
    const stolen = await fixture.gpki.issueDevice('dev-cert-bound');
    const other = await fixture.gpki.issueDevice('dev-cert-other');
    const held = [await silent(gateway.address.port, stolen), await silent(gateway.address.port, stolen)];
    await eventually(() => (gateway.sockets().unauthenticated === 2 ? true : undefined), 10_000, 'both counted by the server');
    const beyond = await silent(gateway.address.port, stolen);
    await eventually(() => (beyond.closed() ? true : undefined), 10_000, 'the third socket of the certificate dropped');
    assert.equal(await count('GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT'), 1);
    assert.deepEqual(held.map((peer) => peer.closed()), [false, false], 'the first two are held');
    // Another certificate from the same address is not affected.
    await session(gateway.address.url, other);
    // One silent socket gone: the certificate's own session fits, and once it has authenticated it no longer counts.
    held[0]!.socket.destroy();
    await eventually(() => (gateway.sockets().unauthenticated === 1 ? true : undefined), 10_000, 'the first silent socket gone');
    await session(gateway.address.url, stolen);
    const again = await silent(gateway.address.port, stolen);
    assert.equal(again.secured(), true);
    await eventually(() => (gateway.sockets().unauthenticated === 2 ? true : undefined), 10_000, 'held[1] and again counted');
    const beyondAgain = await silent(gateway.address.port, stolen);
    await eventually(() => (beyondAgain.closed() ? true : undefined), 10_000, 'the socket beyond the bound dropped again');
    assert.equal(await count('GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT'), 2);
    assert.deepEqual([held[1]!.closed(), again.closed()], [false, false]);
  });

  it('drops sockets from one address beyond unauthenticatedSocketsPerSourceMax, before TLS once the bound is reached', async () => {
    const { server: gateway, count } = await server({ unauthenticatedSocketsPerSourceMax: 2, upgradeTimeoutMs: 60_000 });
    const devices = [await fixture.gpki.issueDevice('dev-src-1'), await fixture.gpki.issueDevice('dev-src-2'), await fixture.gpki.issueDevice('dev-src-3')];
    const held = [await silent(gateway.address.port, devices[0]), await silent(gateway.address.port, devices[1])];
    assert.deepEqual(held.map((peer) => peer.secured()), [true, true]);
    // The client is through TLS a moment before the server has the client's Finished.
    await eventually(() => (gateway.sockets().unauthenticated === 2 ? true : undefined), 10_000, 'both counted by the server');
    // The third gets no handshake at all (dropped at accept), and neither does a plain TCP socket.
    const beyond = await silent(gateway.address.port, devices[2]);
    await eventually(() => (beyond.closed() ? true : undefined), 10_000, 'the third socket dropped');
    assert.equal(beyond.secured(), false, 'dropped before TLS');
    const tcp = await silent(gateway.address.port, undefined);
    await eventually(() => (tcp.closed() ? true : undefined), 10_000, 'a TCP socket from the same address dropped');
    assert.equal(await count('GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT'), 2);
    assert.deepEqual(held.map((peer) => peer.closed()), [false, false]);
    // Once one is gone, a device's session gets through, and it does not count once authenticated.
    held[0]!.socket.destroy();
    await eventually(() => (gateway.sockets().unauthenticated === 1 ? true : undefined), 10_000, 'a held socket gone');
    await session(gateway.address.url, devices[2]!);
    const next = await silent(gateway.address.port, devices[0]);
    assert.equal(next.secured(), true, 'room again after the session authenticated');
  });

  it('drops a socket beyond socketsPerSourceMax before TLS, counting authenticated sessions too', async () => {
    const { server: gateway, count } = await server({ socketsPerSourceMax: 2, upgradeTimeoutMs: 60_000 });
    const device = await fixture.gpki.issueDevice('dev-total');
    await session(gateway.address.url, device);
    const second = await silent(gateway.address.port, undefined);
    await eventually(() => (gateway.sockets().total === 2 ? true : undefined), 10_000, 'the session and the second socket held');
    const third = await silent(gateway.address.port, undefined);
    await eventually(() => (third.closed() ? true : undefined), 10_000, 'the socket beyond socketsPerSourceMax dropped');
    assert.equal(await count('GATEWAY_SOURCE_SOCKETS_LIMIT'), 1);
    assert.equal(second.closed(), false);
    second.socket.destroy();
    await eventually(() => (gateway.sockets().total === 1 ? true : undefined), 10_000, 'the second socket gone');
    await silent(gateway.address.port, undefined);
    await eventually(() => (gateway.sockets().total === 2 ? true : undefined), 10_000, 'a socket admitted again');
    assert.equal(await count('GATEWAY_SOURCE_SOCKETS_LIMIT'), 1);
  });

  it('refuses a bound that is not a positive integer', async () => {
    await assert.rejects(
      startGatewayServer({ core: fixture.core, tls: fixture.gpki.serverTls, host: '127.0.0.1', port: 0, trustAnchors: [], unauthenticatedSocketsPerCertificateMax: 0 }),
      (error: unknown) => (error as { code?: string }).code === 'GATEWAY_INVALID_ARGUMENT',
    );
  });
});
