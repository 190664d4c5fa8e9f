import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import type { Logger } from 'pino';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import { SdcError } from '../../core/errors/index.js';
import type { RandomSource } from '../../core/ports/ports.js';
import { apiTlsOptions, type DeploymentMaterials } from '../materials/materials.js';
import { healthzAnswer, type Readiness } from './readiness.js';

/**
 * The ports of a starting deployment. Both are taken before the stores are awaited, so a port in
 * use is reported at once (not after minutes of store retries), and the API port answers
 * /healthz and /readyz while the stores come up. Each is handed over to its real server once that
 * server can start: the holder closes and the server listens on the same port straight after.
 */

export type ListeningService = 'api' | 'gateway';

const serviceLabels: Readonly<Record<ListeningService, string>> = { api: 'control plane API', gateway: 'gateway' };
/** Seconds a client is told to wait (Retry-After) while the control plane starts. */
const startingRetryAfterS = 5;

/** A listen error as the service's typed refusal naming the address; other errors unchanged. */
export function listenRefusal(error: unknown, service: ListeningService, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const errorCode = service === 'api' ? 'API_PORT_UNAVAILABLE' : 'GATEWAY_PORT_UNAVAILABLE';
  const where = `${host}:${port}`;
  const details = { service, host, port };
  if (code === 'EADDRINUSE') return new SdcError(errorCode, `${where} (the ${serviceLabels[service]}) is already in use by another process`, details);
  if (code === 'EADDRNOTAVAIL') return new SdcError(errorCode, `${host} is not an address of this host (the ${serviceLabels[service]} would listen on ${where})`, details);
  if (code === 'EACCES') return new SdcError(errorCode, `${where} (the ${serviceLabels[service]}) needs privileges to listen on; choose a port above 1023`, details);
  return error;
}

async function listen(server: NetServer | HttpsServer, service: ListeningService, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: unknown): void => reject(listenRefusal(error, service, host, port));
    server.once('error', onError);
    server.listen(port, host, () => { server.off('error', onError); resolve(); });
  });
  return (server.address() as AddressInfo).port;
}

function close(server: NetServer | HttpsServer): Promise<void> {
  (server as HttpsServer).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface HeldPort {
  /** The bound port (the chosen one when 0 was asked for). */
  readonly port: number;
  /** Closes the holder, once; the real server listens on `port` next. */
  release(): Promise<void>;
}

/** Takes the gateway port until the gateway can start; connections meanwhile are closed at once (agents retry). */
export async function holdPort(service: ListeningService, host: string, port: number): Promise<HeldPort> {
  const server = createNetServer((socket) => socket.destroy());
  const bound = await listen(server, service, host, port);
  let released = false;
  return {
    port: bound,
    async release() {
      if (released) return;
      released = true;
      await close(server);
    },
  };
}

export interface StartupApiServer extends HeldPort {
  readonly url: string;
}

/**
 * The API port while the control plane starts: `/healthz` 200, `/readyz` 503 naming what is not
 * up, every other request 503 API_NOT_READY with Retry-After. HTTPS with the deployment's server
 * certificate, as the API itself.
 */
export async function startStartupApiServer(options: {
  materials: DeploymentMaterials; host: string; port: number; readiness: Readiness; random: RandomSource; logger: Logger;
}): Promise<StartupApiServer> {
  const { materials, readiness } = options;
  const handler = (request: IncomingMessage, response: ServerResponse): void => {
    // A new W3C trace id (16 bytes), the form of the API's other error bodies (docs/api.md, "Errors").
    answerWhileStarting(request, response, readiness, () => hexFromBytes(options.random.bytes(16)))
      .catch((error: unknown) => {
        options.logger.warn({ err: error }, 'startup API answer failed');
        response.destroy();
      });
  };
  const server = createHttpsServer({
    ...apiTlsOptions(materials), minVersion: 'TLSv1.3', // hardening 10.4: no TLS 1.2 anywhere (docs/security/threat-model.md)
  }, handler);
  const port = await listen(server, 'api', options.host, options.port);
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  let released = false;
  return {
    port,
    url: `https://${shownHost}:${port}`,
    async release() {
      if (released) return;
      released = true;
      await close(server);
    },
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

async function answerWhileStarting(request: IncomingMessage, response: ServerResponse, readiness: Readiness, traceId: () => string): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  const probe = request.method === 'GET' || request.method === 'HEAD';
  if (probe && path === '/healthz') return sendJson(response, healthzAnswer.status, healthzAnswer.body);
  if (probe && path === '/readyz') return sendJson(response, 503, await readiness.report());
  const message = await readiness.waitingFor();
  sendJson(response, 503, { error: { code: 'API_NOT_READY', message, trace_id: traceId() } }, { 'retry-after': String(startingRetryAfterS) });
}
