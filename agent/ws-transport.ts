import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { defaultProtocolLimits } from '../core/protocol/limits.js';
import type { RandomSource, Scheduler, TimerHandle } from '../core/ports/ports.js';
import type { AgentConnectionHandle, AgentCore, AgentLogger } from './agent-core.js';
import { TlsSessionCache } from './tls-session-cache.js';

export interface WsAgentDriverOptions {
  core: AgentCore;
  /** Gateway URLs (wss://host:port/v1/agent), tried in turn. */
  urls: readonly string[];
  /** The device certificate followed by its chain, and its private key: the TLS client certificate. */
  certPem: string;
  keyPem: string;
  /** The CA certificates trusted for the gateway's server certificate (pinned at enrollment). */
  caPem: string;
  random: RandomSource;
  scheduler: Scheduler;
  logger?: AgentLogger;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A TLS + WebSocket handshake that takes longer is abandoned (and retried). */
  connectTimeoutMs?: number;
  /**
   * Bytes queued in the socket beyond which the connection is dropped: a gateway that does not
   * read must not make the agent buffer without bound. Results survive in the journal.
   */
  socketBufferedBytesMax?: number;
  /** Offer the last TLS session ticket at reconnect (agent/tls-session-cache.ts); default true. */
  tlsSessionResumption?: boolean;
}

export interface WsAgentDriver {
  /** Connection attempts since the last session that reached ready (for logs and tests). */
  readonly failedAttempts: number;
  stop(): Promise<void>;
}

const silentLogger: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The TLS connect ws would make (its own sets the server name from the host unless it is an IP
 * address), which also hands every session ticket the gateway sends to `onTicket`.
 */
function ticketKeepingConnect(onTicket: (ticket: Buffer) => void): (options: ConnectionOptions) => TLSSocket {
  return (options) => {
    const host = options.host ?? '';
    const socket = tlsConnect({ ...options, path: undefined, servername: options.servername ?? (isIP(host) === 0 ? host : '') });
    socket.on('session', onTicket);
    return socket;
  };
}

/**
 * The socket driver around an AgentCore: one WebSocket over TLS 1.3 with the device certificate
 * as client certificate, trusting only the pinned CA. On close or failure it reconnects after
 * a full-jitter exponential backoff (delay uniform in [0, min(max, base * 2^attempt)], drawn
 * from the RandomSource, waited on the Scheduler); a session that reached ready resets it.
 */
export function startWsAgentDriver(options: WsAgentDriverOptions): WsAgentDriver {
  const log = options.logger ?? silentLogger;
  const baseMs = options.backoffBaseMs ?? 500;
  const maxMs = options.backoffMaxMs ?? 30_000;
  let attempt = 0;
  let urlIndex = 0;
  let stopped = false;
  let socket: WebSocket | undefined;
  let retryTimer: TimerHandle | undefined;
  let closedSignal: (() => void) | undefined;
  const sessions = options.tlsSessionResumption === false ? undefined : new TlsSessionCache();
  // Made once, not at every connection: parsing the key, the certificate chain and the CAs was the
  // largest part of the agent's CPU per reconnect (a V8 profile of the reconnect bench's agents).
  let secureContext: SecureContext | undefined;
  const tlsContext = () => (secureContext ??= createSecureContext({ cert: options.certPem, key: options.keyPem, ca: options.caPem, minVersion: 'TLSv1.3' }));

  const scheduleReconnect = () => {
    if (stopped) return;
    const ceilingMs = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
    const delayMs = options.random.intBelow(ceilingMs + 1);
    attempt += 1;
    log.info({ delayMs, attempt }, 'reconnecting after backoff');
    retryTimer = options.scheduler.schedule(delayMs, () => {
      retryTimer = undefined;
      connect();
    });
  };

  const connect = () => {
    if (stopped) return;
    const url = options.urls[urlIndex % options.urls.length]!;
    urlIndex += 1;
    const session = sessions?.offerFor(url, options.certPem);
    // ws hands its options to tls.connect, which takes a SecureContext; @types/ws does not list it.
    const tlsOptions = { secureContext: tlsContext() } as WebSocket.ClientOptions;
    const ws = new WebSocket(url, {
      ...tlsOptions,
      maxPayload: defaultProtocolLimits.frameBytesMax, handshakeTimeout: options.connectTimeoutMs ?? 15_000, perMessageDeflate: false,
      ...(sessions === undefined ? {} : {
        ...(session === undefined ? {} : { session }),
        createConnection: ticketKeepingConnect((ticket) => sessions.remember(url, options.certPem, ticket)) as unknown as WebSocket.ClientOptions['createConnection'],
      }),
    });
    socket = ws;
    let handle: AgentConnectionHandle | undefined;
    let reachedReady = false;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      log.info({ url }, 'connected to gateway');
      handle = options.core.onConnected({
        send: (bytes) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          if (ws.bufferedAmount > (options.socketBufferedBytesMax ?? 1024 * 1024)) {
            log.warn({ bufferedAmount: ws.bufferedAmount }, 'gateway is not reading; dropping the connection');
            ws.terminate();
            return;
          }
          ws.send(bytes);
        },
        close: () => ws.close(1000),
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!handle) return;
      handle.receive(isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new TextEncoder().encode(data.toString('utf8')));
      if (!reachedReady && options.core.isReady) {
        reachedReady = true;
        attempt = 0;
      }
    });
    ws.on('error', (error) => {
      log.warn({ url, err: error.message }, 'gateway connection failed');
    });
    ws.on('close', (code) => {
      if (socket === ws) socket = undefined;
      handle?.transportClosed();
      log.info({ url, code }, 'gateway connection closed');
      closedSignal?.();
      scheduleReconnect();
    });
  };

  connect();
  return {
    get failedAttempts() {
      return attempt;
    },
    async stop() {
      stopped = true;
      if (retryTimer) options.scheduler.cancel(retryTimer);
      const ws = socket;
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        const closed = new Promise<void>((resolve) => { closedSignal = resolve; });
        await options.core.stop();
        ws.close(1000);
        // A peer that never answers the close handshake is cut off.
        const timer = options.scheduler.schedule(2_000, () => ws.terminate());
        await closed;
        options.scheduler.cancel(timer);
      } else {
        await options.core.stop();
      }
    },
  };
}
