import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { pino } from 'pino';
import { loadDeployment } from '../server/materials/materials.js';
import { startDeployment, type Deployment } from '../server/deployment/deployment.js';
import { agentPathDefault } from '../server/gateway/gateway-server.js';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';
import type { ServerMemory, ServerReport, ServerRequest } from './connections-messages.js';

/**
 * A server child of `sdc bench connections|reconnect`, forked with --expose-gc so its memory can
 * be read after a full collection. `process.argv[2]` says which:
 *
 * - `gateway`: a real gateway-only process, started as `sdc gateway` starts one
 *   (startDeployment with controlPlane false, the shared Redis, the data directory's keys and a
 *   certificate of its own in D/tls/gateway-ID.pem).
 * - `bare`: the baseline, a mutual-TLS `ws` server with the gateway's TLS settings (TLS 1.3,
 *   client certificate required and checked against the same CAs) that only holds connections.
 */

const role = process.argv[2];
let stopServer: (() => Promise<void>) | undefined;
let connections: () => number = () => 0;

const send = (report: ServerReport): void => {
  if (process.connected) process.send?.(report);
};

function memory(): ServerMemory {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  return { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, externalBytes: usage.external, connections: connections() };
}

async function startGateway(request: Extract<ServerRequest, { type: 'start' }>): Promise<string> {
  const materials = await loadDeployment({ dataDir: request.dataDir, clock: systemClock, random: systemRandom, serverTlsName: `gateway-${request.gatewayId}` });
  const deployment: Deployment = await startDeployment({
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: process.env.SDC_LOG_LEVEL ?? 'silent' }),
    controlPlane: false, redisUrl: request.redisUrl, keyPrefix: request.keyPrefix, gatewayId: request.gatewayId, gatewayPort: 0,
    gateway: { heartbeatIntervalMs: request.heartbeatIntervalMs },
  });
  stopServer = () => deployment.stop();
  // Every TCP socket of the process (Redis's too): the bench takes the growth from the idle reading.
  connections = () => process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
  return deployment.gatewayUrl;
}

async function startBare(request: Extract<ServerRequest, { type: 'start' }>): Promise<string> {
  const server = createServer({
    cert: request.tls.certPem, key: request.tls.keyPem, ca: request.tls.caPem,
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true,
  });
  const wss = new WebSocketServer({ server, path: agentPathDefault });
  wss.on('connection', (ws) => { ws.on('error', () => undefined); });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  connections = () => wss.clients.size;
  stopServer = async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return `wss://127.0.0.1:${(server.address() as AddressInfo).port}${agentPathDefault}`;
}

process.on('message', (request: ServerRequest) => {
  if (request.type === 'start') {
    (role === 'gateway' ? startGateway(request) : startBare(request)).then(
      (url) => send({ type: 'listening', url, pid: process.pid }),
      (error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (request.type === 'memory') {
    send({ type: 'memory', ...memory() });
  } else {
    void (stopServer?.() ?? Promise.resolve()).finally(() => {
      send({ type: 'stopped' });
      process.exit(0);
    });
  }
});
// The parent went away: nothing is measured any more.
process.on('disconnect', () => process.exit(0));
