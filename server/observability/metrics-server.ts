import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { metricsContentType, requireScrapeAllowed, type ServiceMetrics } from './metrics.js';

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * `GET /metrics` on a listener of its own, for a gateway-only process (the gateway's port asks
 * every client for a device certificate, which a scraper does not hold). Plain HTTP, meant for
 * loopback (the default host) or a scrape token; anything else is answered 404.
 */
export async function startMetricsServer(options: {
  metrics: ServiceMetrics; host: string; port: number; scrapeToken: string | undefined; logger: Logger; newTraceId: () => string;
}): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    answer(request, response, options).catch((error: unknown) => {
      options.logger.warn({ err: error }, 'metrics answer failed');
      response.destroy();
    });
  });
  // Scrapes are small and quick; a slow client is not held for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/metrics`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function answer(request: IncomingMessage, response: ServerResponse, options: { metrics: ServiceMetrics; scrapeToken: string | undefined; newTraceId: () => string }): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' || path !== '/metrics') return sendError(response, new SdcError('API_NOT_FOUND', 'only GET /metrics is served here'), options.newTraceId());
  try {
    requireScrapeAllowed({ scrapeToken: options.scrapeToken, authorization: request.headers.authorization, remoteAddress: request.socket.remoteAddress });
  } catch (error) {
    options.metrics.httpErrors.inc({ code: (error as SdcError).code, status: String((error as SdcError).status) });
    return sendError(response, error as SdcError, options.newTraceId());
  }
  const text = await options.metrics.text();
  response.writeHead(200, { 'content-type': metricsContentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

function sendError(response: ServerResponse, error: SdcError, traceId: string): void {
  const text = JSON.stringify({ error: { code: error.code, message: error.message, trace_id: traceId } });
  response.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
