import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, globalAgent, type Agent, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { httpsJson, keptAliveAgent } from './https-json.js';

/** A self-signed certificate for 127.0.0.1 (the openssl CLI: runtime/ may not import the deployment's PKI). */
async function selfSignedTls(): Promise<{ certPem: string; keyPem: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-https-json-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { certPem: await readFile(join(dir, 'cert.pem'), 'utf8'), keyPem: await readFile(join(dir, 'key.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A server that answers the first request of each connection and drops the connection, without
 * an answer, at the second: what a client sees when the server closed an idle kept-alive
 * connection just as the client sent its next request on it. Records requests per connection.
 */
async function closingServer(tls: { certPem: string; keyPem: string }): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const perSocket = new WeakMap<Socket, number>();
  const connections = new Map<Socket, number>();
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' }, (req, res) => {
    const socket = req.socket;
    const nth = (perSocket.get(socket) ?? 0) + 1;
    perSocket.set(socket, nth);
    if (!connections.has(socket)) connections.set(socket, connections.size + 1);
    requests.push(`${req.method} on connection ${connections.get(socket)}, request ${nth}`);
    req.resume();
    req.on('end', () => {
      if (nth >= 2) socket.destroy();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('httpsJson: a kept-alive connection reset before any answer (issue 17)', async () => {
  const tls = await selfSignedTls();

  it('sends a GET again on another connection, once the reused one was reset', async () => {
    const server = await closingServer(tls);
    try {
      const get = () => httpsJson<{ ok: boolean }>({ method: 'GET', url: `${server.url}/x`, caPem: tls.certPem });
      assert.deepEqual((await get()).body, { ok: true });
      // Before the fix this second call failed HTTP_UNREACHABLE (socket hang up, ECONNRESET).
      assert.deepEqual((await get()).body, { ok: true });
      assert.deepEqual(server.requests, ['GET on connection 1, request 1', 'GET on connection 1, request 2', 'GET on connection 2, request 1']);
    } finally {
      await server.close();
    }
  });

  it('sends a POST again only with an Idempotency-Key; without one the reset is the answer', async () => {
    const server = await closingServer(tls);
    try {
      const post = (headers: Record<string, string>) => httpsJson<{ ok: boolean }>({ method: 'POST', url: `${server.url}/x`, caPem: tls.certPem, body: { a: 1 }, headers });
      assert.deepEqual((await post({})).body, { ok: true });
      await assert.rejects(post({}), (error: unknown) => SdcError.is(error, 'HTTP_UNREACHABLE'));
      assert.deepEqual((await post({})).body, { ok: true }); // a new connection: its first request is answered
      // Reset on the reused connection 2, then sent again on connection 3.
      assert.deepEqual((await post({ 'Idempotency-Key': 'k-1' })).body, { ok: true });
      assert.deepEqual(server.requests, [
        'POST on connection 1, request 1', 'POST on connection 1, request 2',
        'POST on connection 2, request 1', 'POST on connection 2, request 2', 'POST on connection 3, request 1',
      ]);
    } finally {
      await server.close();
    }
  });
});

/** A server that answers every request and counts the TLS connections it accepted, with the API's keep-alive (72 s). */
async function countingServer(tls: { certPem: string; keyPem: string }): Promise<{ url: string; connections(): number; close(): Promise<void> }> {
  let connections = 0;
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' }, (req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true })); });
  });
  server.on('secureConnection', () => { connections += 1; });
  server.keepAliveTimeout = 72_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The idle timeouts of the connections an agent keeps to `url` (Node frees a socket just after the answer ends). */
const idleTimeouts = (agent: Agent, url: string): number[] => {
  const { hostname, port } = new URL(url);
  return Object.entries(agent.freeSockets).filter(([name]) => name.startsWith(`${hostname}:${port}:`))
    .flatMap(([, sockets]) => sockets ?? []).map((socket) => socket.timeout ?? -1);
};

describe('httpsJson through a kept-alive agent (issue 17: the bench paid a TLS handshake per POST)', async () => {
  const tls = await selfSignedTls();

  it('keeps a connection idle for idleTimeoutMs, not the global agent\'s 5 s, and sequential requests reuse it', async () => {
    const server = await countingServer(tls);
    const agent = keptAliveAgent({ socketsMax: 4, idleTimeoutMs: 60_000 });
    try {
      const get = () => httpsJson<{ ok: boolean }>({ method: 'GET', url: `${server.url}/x`, caPem: tls.certPem, agent });
      for (let i = 0; i < 3; i += 1) {
        assert.deepEqual((await get()).body, { ok: true });
        await pause(50);
        // What decides whether the next request needs a handshake after a long wait: 60 s here.
        assert.deepEqual(idleTimeouts(agent, server.url), [60_000]);
      }
      assert.equal(server.connections(), 1);
      // Without the option the same call goes through Node's global agent, which closes it after 5 s idle.
      await httpsJson({ method: 'GET', url: `${server.url}/x`, caPem: tls.certPem });
      await pause(50);
      assert.deepEqual(idleTimeouts(globalAgent, server.url), [5_000]);
      assert.equal(server.connections(), 2);
    } finally {
      agent.destroy();
      globalAgent.destroy();
      await server.close();
    }
  });

  it('closes a connection idle past idleTimeoutMs (the global agent\'s behaviour, scaled down), so the next request opens another', async () => {
    const server = await countingServer(tls);
    const short = keptAliveAgent({ socketsMax: 4, idleTimeoutMs: 100 });
    const long = keptAliveAgent({ socketsMax: 4, idleTimeoutMs: 60_000 });
    try {
      for (const agent of [short, long, short, long]) {
        await httpsJson({ method: 'GET', url: `${server.url}/x`, caPem: tls.certPem, agent });
        await pause(400);
      }
      // short: a new connection each time; long: one for both.
      assert.equal(server.connections(), 3);
      assert.equal(idleTimeouts(short, server.url).length, 0);
      assert.equal(idleTimeouts(long, server.url).length, 1);
    } finally {
      short.destroy();
      long.destroy();
      await server.close();
    }
  });

  it('opens at most socketsMax connections, the rest wait for one, and keeps them all for the next burst', async () => {
    const server = await countingServer(tls);
    const agent = keptAliveAgent({ socketsMax: 2, idleTimeoutMs: 60_000 });
    try {
      const burst = () => Promise.all(Array.from({ length: 6 }, () => httpsJson<{ ok: boolean }>({ method: 'GET', url: `${server.url}/x`, caPem: tls.certPem, agent })));
      assert.equal((await burst()).length, 6);
      await pause(50);
      assert.equal(idleTimeouts(agent, server.url).length, 2);
      await burst();
      assert.equal(server.connections(), 2);
    } finally {
      agent.destroy();
      await server.close();
    }
  });

  it('refuses a pool without a bound or without an idle time', () => {
    for (const options of [{ socketsMax: 0, idleTimeoutMs: 1_000 }, { socketsMax: Infinity, idleTimeoutMs: 1_000 }, { socketsMax: 4, idleTimeoutMs: 0 }]) {
      assert.throws(() => keptAliveAgent(options), (error: unknown) => SdcError.is(error, 'PROTO_INVALID_ARGUMENT'));
    }
  });
});
