import { createServer } from 'node:http';
import type { RandomSource } from '../../core/ports/ports.js';
import { SeededRandom } from '../../core/random/prng.js';
import { formatHostPort, listenExclusive } from './addresses.js';
import { ApiConnections } from './api-connections.js';
import { ChaosApi } from './http-api.js';
import { resolveChaosLimits, type ChaosLimits } from './limits.js';
import { silentLogger, type ChaosLogger } from './logger.js';
import { ProxyRegistry } from './registry.js';
import { monotonicTime, type ChaosTime } from './time.js';

/** Toxiproxy's API port; `sdc chaos serve` uses it by default so clients find it unchanged. */
export const toxiproxyDefaultPort = 8474;

export interface ChaosServerOptions {
  readonly host: string;
  /** 0 picks a free port; `url` says which. */
  readonly port: number;
  /** Seeds every toxicity draw (and, through a fork, jitter and slice sizes), so a run replays. */
  readonly seed: number;
  readonly time?: ChaosTime;
  readonly logger?: ChaosLogger;
  readonly limits?: Partial<ChaosLimits>;
  /**
   * Lets proxies listen on other than loopback (`0.0.0.0`, an interface's address, a host name).
   * Default false: the API is unauthenticated, so any local caller could otherwise expose a
   * loopback-only service to the network (review h1, F7; CHAOS_LISTEN_NOT_LOOPBACK).
   */
  readonly allowExternalListen?: boolean;
}

export interface ChaosServer {
  readonly url: string;
  readonly registry: ProxyRegistry;
  readonly limits: ChaosLimits;
  /** Closes every proxy, its connections and the API. */
  close(): Promise<void>;
}

/**
 * Two streams from one seed: the toxicity draws are the seed's own sequence (one draw per toxic per
 * connection direction, in order), untouched by how much jitter or slicing the toxics draw.
 */
function randomStreams(seed: number): { toxicityRandom: RandomSource; toxicRandom: RandomSource } {
  return { toxicityRandom: new SeededRandom(seed), toxicRandom: new SeededRandom(seed).fork() };
}

/** Starts the Toxiproxy-compatible API on host:port; proxies are created through it. */
export async function startChaosServer(options: ChaosServerOptions): Promise<ChaosServer> {
  const limits = resolveChaosLimits(options.limits);
  const logger = options.logger ?? silentLogger;
  const registry = new ProxyRegistry({ time: options.time ?? monotonicTime, limits, logger, ...randomStreams(options.seed) });
  const api = new ChaosApi(registry, limits, logger, { externalListenAllowed: options.allowExternalListen === true });
  const hintSeconds = limits.apiKeepAliveHintSeconds;
  const hinted = hintSeconds * 1000 < limits.apiIdleTimeoutMs;
  const http = createServer({ requestTimeout: limits.apiRequestTimeoutMs }, (request, response) => {
    // Written by us, not by node (which would say our own timeout): clients that read the hint
    // (undici, node's agent) let a connection go long before we close it, so none reuses one as
    // we close it. With node's default 5 s and its matching hint, undici reused connections at
    // 4 s and raced our close on a loaded machine (`fetch failed` in `sdc chaos run`).
    if (response.shouldKeepAlive && hinted) response.setHeader('Connection', 'keep-alive').setHeader('Keep-Alive', `timeout=${hintSeconds}`);
    api.handle(request, response);
  });
  // An idle connection is closed after apiIdleTimeoutMs (65 s, above the idle limits clients keep
  // on their own), and at apiConnectionsMax the one idle longest makes room for a new client
  // (api-connections.ts): idle connections kept forever locked every other client out (review h1).
  http.keepAliveTimeout = limits.apiIdleTimeoutMs;
  const connections = new ApiConnections(limits.apiConnectionsMax, logger);
  http.on('connection', connections.accepted);
  http.on('request', connections.requested);
  const address = await listenExclusive(http, options.host, options.port);
  // After listening, an accept failure (out of file descriptors) is logged, not a crash.
  http.on('error', (error) => logger.error({ code: 'CHAOS_INTERNAL', error: error.message }, 'chaos API listener failed'));
  return {
    url: `http://${formatHostPort(address.address, address.port)}`,
    registry,
    limits,
    async close() {
      await registry.closeAll();
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await closed;
    },
  };
}
