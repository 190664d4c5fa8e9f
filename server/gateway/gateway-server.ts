import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import { SdcError } from '../../core/errors/index.js';
import { defaultProtocolLimits } from '../../core/protocol/limits.js';
import type { Clock } from '../../core/ports/ports.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { bytesFromBase64url, hexFromBytes } from '../../core/crypto/bytes.js';
import { unverifiedDeviceIdOf, verifyDeviceCertificate, type TrustAnchor } from '../../trust/verify-device-certificate.js';
import { closeCodes } from './close-codes.js';
import type { ConnectionHandle, GatewayCore } from './gateway-core.js';
import { AgentSocket, AgentWebSocket, type AgentSocketShared } from './agent-socket.js';
import {
  msUntilNextPeriod, sessionIdContextFor, ticketKeyRotationMsDefault, ticketKeysFor, ticketPeriodOf, type SessionTicketOptions,
} from './tls-session-tickets.js';
import type { ServiceMetrics } from '../observability/metrics.js';
import { HandshakeAdmission } from './handshake-admission.js';
import { socketPeerOf, type SocketPeer } from './socket-peer.js';

export const agentPathDefault = '/v1/agent';

export interface GatewayServerOptions {
  core: GatewayCore;
  /** The server certificate and key, and the CA certificates (intermediate + root) client certificates must chain to. */
  tls: { certPem: string; keyPem: string; caPem: string };
  host: string;
  /** 0 picks a free port (see `address`). */
  port: number;
  /** Our CA certificates for verifyDeviceCertificate (usually the same as tls.caPem, parsed). */
  trustAnchors: readonly TrustAnchor[];
  path?: string;
  clock?: Clock;
  logger?: Logger;
  /** Per connection; a peer above it is disconnected with GATEWAY_RATE_LIMITED. */
  messagesPerSecondMax?: number;
  /** TCP sockets, handshaking ones included; beyond it new sockets are dropped at once. */
  socketsMax?: number;
  /** Counts refusals made here (the message rate limit) beside the core's; /metrics. */
  metrics?: ServiceMetrics;
  /** Largest frame the protocol accepts; see maxPayloadFactor. */
  frameBytesMax?: number;
  /** Default handshakeLimitsDefault.handshakeTimeoutMs. */
  handshakeTimeoutMs?: number;
  /** Default handshakeLimitsDefault.pendingHandshakesPerSourceMax. */
  pendingHandshakesPerSourceMax?: number;
  /** Default handshakeLimitsDefault.handshakesInFlightMax. */
  handshakesInFlightMax?: number;
  /** The floor the bound on handshakes at once falls to while handshakes time out; default handshakeLimitsDefault.handshakesInFlightMin (equal to the max: fixed). */
  handshakesInFlightMin?: number;
  /** Default handshakeLimitsDefault.handshakeQueueMax. */
  handshakeQueueMax?: number;
  /** Default: handshakeTimeoutMs. */
  handshakeQueueWaitMsMax?: number;
  /** Default establishedLimitsDefault.upgradeTimeoutMs. */
  upgradeTimeoutMs?: number;
  /** Default establishedLimitsDefault.socketsPerSourceMax. */
  socketsPerSourceMax?: number;
  /** Default establishedLimitsDefault.unauthenticatedSocketsPerSourceMax. */
  unauthenticatedSocketsPerSourceMax?: number;
  /** Default establishedLimitsDefault.unauthenticatedSocketsPerCertificateMax. */
  unauthenticatedSocketsPerCertificateMax?: number;
  /** Default establishedLimitsDefault.socketBufferedBytesMax. */
  socketBufferedBytesMax?: number;
  /**
   * TLS session tickets every gateway with the same secret accepts (tls-session-tickets.ts), so an
   * agent whose gateway died resumes on another one. Absent: Node's random per-process ticket keys
   * (a ticket resumes only on the gateway that issued it, for Node's default 300 s).
   */
  sessionTickets?: SessionTicketOptions;
}

/**
 * Bounds on sockets still in the TLS handshake, so that sockets that never finish one cannot hold
 * the gateway's socket budget (Node's own handshake timeout is 120 s, with no per-source bound).
 */
export const handshakeLimitsDefault = {
  /** A socket that has not finished the TLS handshake by then is destroyed. A real device needs well under a second. */
  handshakeTimeoutMs: 10_000,
  /** Sockets from one source address in the handshake or waiting for it at once; more are dropped at once. Room for a NAT in front of many devices. */
  pendingHandshakesPerSourceMax: 64,
  /**
   * TLS handshakes running at once; later sockets wait, unread, in arrival order (handshake-admission.ts).
   * At 1-4 ms of CPU per handshake, 256 at once finish within about a second on one core, far inside
   * handshakeTimeoutMs, and keep enough in flight to cover network round trips.
   */
  handshakesInFlightMax: 256,
  /**
   * The adaptive bound's floor: a handshake that passed handshakeTimeoutMs halves the bound, each
   * one that finished raises it by one (handshake-admission.ts). On a gateway starved of CPU, 256
   * at once each outlasted the timeout (docs/benchmarks.md).
   */
  handshakesInFlightMin: 32,
  /** Sockets waiting for a handshake slot; beyond it new sockets are dropped at once (each waiting one holds a file descriptor). */
  handshakeQueueMax: 8_192,
} as const;

/**
 * Bounds on sockets past the TLS handshake (security review, 2026-12-05, finding 5): the handshake
 * bounds above end when TLS does, and a socket that finished mutual TLS and then sent nothing was
 * held for good (Node's headersTimeout only runs once a request has begun), one whose upgrade
 * never sent AUTH for the core's authTimeoutMs, so one address (or one certificate, with session
 * resumption) could hold every socket of the gateway. "Unauthenticated": past TLS, no AUTH
 * accepted yet (before the upgrade request, or upgraded and waiting for AUTH). Each drop is counted
 * by its code in sdc_websocket_errors_total and logged (at most one line per code per
 * dropLogIntervalMs, with the count since).
 */
export const establishedLimitsDefault = {
  /**
   * From the end of the TLS handshake to a whole upgrade request; past it the socket is destroyed
   * (GATEWAY_UPGRADE_TIMEOUT). An agent sends its upgrade request at once, in one round trip; also
   * the server's headersTimeout and requestTimeout, for a request sent slowly.
   */
  upgradeTimeoutMs: 10_000,
  /**
   * Sockets from one source address in any state (waiting for TLS, in it, past it, in a session);
   * more are dropped before TLS (GATEWAY_SOURCE_SOCKETS_LIMIT). A quarter of the default socketsMax:
   * at least four addresses to fill a gateway; a NAT in front of more devices needs it raised.
   */
  socketsPerSourceMax: 5_000,
  /**
   * Sockets from one source address past TLS and not yet authenticated; more are dropped
   * (GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT): before TLS when the bound is already reached at accept,
   * else as TLS finishes. Four times the handshakes one source may have in flight (64), so a NAT's
   * devices reconnecting at once pass while their AUTH waits on a slow store.
   */
  unauthenticatedSocketsPerSourceMax: 256,
  /**
   * Sockets presenting one certificate (by serial) past TLS and not yet authenticated; more are
   * dropped as TLS finishes (GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT). A device has one session
   * and, while it reconnects, perhaps one more. By certificate, not by the device id it names: a
   * stolen certificate, revoked since, must not lock its device's new certificate out.
   */
  unauthenticatedSocketsPerCertificateMax: 4,
  /**
   * Bytes one session's socket may hold unsent (ws's bufferedAmount: what the kernel's send buffer
   * did not take) before the next frame; past it the device is not reading and the session is
   * closed (GATEWAY_PEER_NOT_READING, review h1 F1). Without it a device that sends HEARTBEATs
   * (each echoed) and never reads grew the gateway's memory for the session's life. Eight of the
   * largest messages (maxPayloadFactor x frameBytesMax) a slow device may still be catching up on;
   * the agent has the same bound towards the gateway (agent/ws-transport.ts).
   */
  socketBufferedBytesMax: 1_048_576,
} as const;

/** At most one log line per drop code per this interval (a flood of drops would otherwise be a flood of lines). */
const dropLogIntervalMs = 5_000;

/** Sockets of one source address, shared by all its sockets' entries (one pointer per socket, no string per socket). */
interface SourceCount {
  readonly address: string;
  sockets: number;
  unauthenticated: number;
}

/** A socket past TLS and not yet authenticated: what it counts against, and its upgrade timer until the upgrade. */
interface Unauthenticated {
  readonly source: SourceCount | undefined;
  /** The certificate's serial (hex, as X509Certificate gives it), when the peer sent one. */
  readonly serial: string | undefined;
  /** The peer's certificate, read once here and handed to admission at the upgrade. */
  peer: X509Certificate | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The path of an upgrade request's target, or undefined for one the URL parser refuses: Node's
 * HTTP parser passes targets such as `//[` that `new URL` throws on (review h1, F3).
 */
function upgradePathnameOf(target: string | undefined): string | undefined {
  try {
    return new URL(target ?? '/', 'https://gateway').pathname;
  } catch {
    return undefined;
  }
}

/** Whether the core's handle for a socket has authenticated (ConnectionHandle.authenticated). */
function handleAuthenticated(handle: ConnectionHandle): boolean {
  return handle.authenticated === true;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', `${name} must be a positive integer`);
  return value;
}

export interface GatewayServer {
  readonly address: { host: string; port: number; url: string };
  /** Stops listening and closes every WebSocket (1001); the core sees each session end. */
  close(): Promise<void>;
  /** Destroys every socket at once, with no close frames and no callbacks into the core: a crash. */
  kill(): void;
  /** TLS handshakes completed since the start: full ones, and resumed ones (a ticket accepted). */
  readonly tlsHandshakes: { readonly full: number; readonly resumed: number };
  /**
   * WebSocket messages received from agents since the start (every one, those refused or over the
   * rate budget too): what `sdc bench connections` divides the gateway's CPU by.
   */
  readonly received: { readonly frames: number };
  /** Sockets held now: all of them, and those past TLS that have not authenticated (establishedLimitsDefault). */
  sockets(): { total: number; unauthenticated: number };
}

/**
 * WebSocket messages up to twice the frame limit reach the protocol core, which refuses the
 * oversized ones with an ERROR frame and keeps the session; beyond that the ws library closes
 * the connection (1009) without buffering more, so memory per connection stays bounded.
 */
const maxPayloadFactor = 2;

/**
 * Node's TLS socket keeps its own copy of the server's ALPN list (a few bytes in a Buffer, so a
 * slice of Buffer's shared 8 KiB pool) for its whole life, though only its handshake reads it.
 * Between handshakes the gateway allocates from the same pool, so each socket's copy ends up
 * keeping most of a pool slab alive: about 0.23 slabs (1.9 KB) per session at 2,000 sessions
 * (heap snapshots, docs/benchmarks.md). After the handshake the copy is let go.
 */
function forgetAlpnCopy(tlsSocket: TLSSocket): void {
  const options = (tlsSocket as unknown as { _tlsOptions?: { ALPNProtocols?: unknown } })._tlsOptions;
  // Assigned, not deleted: a delete would turn the options object into a dictionary, hundreds of bytes per socket.
  if (options !== undefined) options.ALPNProtocols = undefined;
}

/**
 * A socket's admission key, its source address and port. Read while the socket is connected (a
 * destroyed socket no longer has its addresses); a TLS socket and the TCP socket under it share
 * them, which is how the end of a handshake finds its slot. Read without Node keeping a copy on
 * the socket (socket-peer.ts): the key is needed only until the handshake ends.
 */
function admissionKeyOf(peer: SocketPeer): string {
  return `${peer.address}|${peer.port}`;
}

/**
 * The raw 32-byte Ed25519 key of the peer's certificate, read through node:crypto from the
 * certificate the TLS layer already parsed (docs/benchmarks.md, "where the gateway's extra memory goes").
 */
function ed25519RawKey(certificate: X509Certificate): Uint8Array {
  const key = certificate.publicKey;
  if (key.asymmetricKeyType !== 'ed25519') throw new SdcError('TRUST_CERT_PROFILE', 'device key is not Ed25519');
  return bytesFromBase64url(String(key.export({ format: 'jwk' }).x), { code: 'TRUST_CERT_PROFILE', name: 'device key', length: 32 });
}

/**
 * The gateway's network face: HTTPS with TLS 1.3 only and mandatory client certificates
 * (the TLS layer checks the chain to our CA), then our own device-certificate check, then a
 * WebSocket on `path` whose messages go to the core. Everything about sessions lives in the core.
 */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const { core } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? pino({ level: 'silent' });
  const path = options.path ?? agentPathDefault;
  const messagesPerSecondMax = options.messagesPerSecondMax ?? 200;
  const frameBytesMax = options.frameBytesMax ?? defaultProtocolLimits.frameBytesMax;
  /** Every socket admitted, with its source's counts (the one word a Map entry has over a Set's). */
  const sockets = new Map<Socket, SourceCount>();
  const socketsMax = options.socketsMax ?? 20_000;
  const upgradeTimeoutMs = positiveInteger('upgradeTimeoutMs', options.upgradeTimeoutMs ?? establishedLimitsDefault.upgradeTimeoutMs);
  const socketsPerSourceMax = positiveInteger('socketsPerSourceMax', options.socketsPerSourceMax ?? establishedLimitsDefault.socketsPerSourceMax);
  const unauthenticatedPerSourceMax = positiveInteger('unauthenticatedSocketsPerSourceMax', options.unauthenticatedSocketsPerSourceMax ?? establishedLimitsDefault.unauthenticatedSocketsPerSourceMax);
  const socketBufferedBytesMax = positiveInteger('socketBufferedBytesMax', options.socketBufferedBytesMax ?? establishedLimitsDefault.socketBufferedBytesMax);
  const unauthenticatedPerCertificateMax = positiveInteger(
    'unauthenticatedSocketsPerCertificateMax', options.unauthenticatedSocketsPerCertificateMax ?? establishedLimitsDefault.unauthenticatedSocketsPerCertificateMax,
  );
  /** By source address, while it has a socket or an unauthenticated one: at most one entry per socket held. */
  const sources = new Map<string, SourceCount>();
  /** By TLS socket, from the end of its handshake until it authenticates or closes. */
  const unauthenticated = new Map<Socket, Unauthenticated>();
  /** Unauthenticated sockets by certificate serial (none at 0). */
  const unauthenticatedByCertificate = new Map<string, number>();
  /** Drops by code since the last log line of that code, and when that line was written. */
  const dropLog = new Map<string, { count: number; loggedMs: number }>();
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? handshakeLimitsDefault.handshakeTimeoutMs;
  const admission = new HandshakeAdmission<string>({
    handshakesInFlightMax: options.handshakesInFlightMax ?? handshakeLimitsDefault.handshakesInFlightMax,
    handshakesInFlightMin: options.handshakesInFlightMin ?? handshakeLimitsDefault.handshakesInFlightMin,
    handshakeQueueMax: options.handshakeQueueMax ?? handshakeLimitsDefault.handshakeQueueMax,
    handshakeQueueWaitMsMax: options.handshakeQueueWaitMsMax ?? handshakeTimeoutMs,
    pendingHandshakesPerSourceMax: options.pendingHandshakesPerSourceMax ?? handshakeLimitsDefault.pendingHandshakesPerSourceMax,
  });
  /** Sockets admitted to wait for a handshake slot, by admission key, until their turn or their close. */
  const waitingSockets = new Map<string, Socket>();
  /**
   * Sockets admitted whose handshake has not ended (waiting for a slot or in the handshake), by
   * admission key, and their keys by socket: what a close needs to release the slot. Kept until the
   * handshake ends or the socket closes, not for a session's life (so no address stays per session).
   */
  const handshakeSockets = new Map<string, Socket>();
  const handshakeKeys = new Map<Socket, string>();
  // Parsed once here, not once per connection: verifyDeviceCertificate remembers what it read of each anchor object.
  const trustAnchors = options.trustAnchors.map((anchor) => (typeof anchor === 'string' ? new X509Certificate(anchor) : anchor));
  const tickets = options.sessionTickets;
  const ticketRotationMs = tickets?.rotationMs ?? ticketKeyRotationMsDefault;
  const tlsHandshakes = { full: 0, resumed: 0 };

  const server: Server = createServer({
    cert: options.tls.certPem,
    key: options.tls.keyPem,
    ca: options.tls.caPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: handshakeTimeoutMs,
    // A request begun and never finished (headers sent slowly); the upgrade timer below bounds the whole wait anyway.
    headersTimeout: upgradeTimeoutMs,
    requestTimeout: upgradeTimeoutMs,
    sessionIdContext: sessionIdContextFor(options.tls.caPem),
    // A ticket cannot outlive its key, so it is not offered for longer.
    ...(tickets === undefined ? {} : {
      ticketKeys: ticketKeysFor(tickets.secret, ticketPeriodOf(clock.nowMs(), ticketRotationMs)), sessionTimeout: Math.floor(ticketRotationMs / 1000),
    }),
  }, (_request, response) => {
    // A plain HTTPS request (no upgrade): the client's mistake, in the API's error shape.
    const refusal = new SdcError('GATEWAY_UPGRADE_REQUIRED', `connect with a WebSocket on ${path}`);
    const traceId = hexFromBytes(systemRandom.bytes(8));
    logger.info({ code: refusal.code, traceId }, 'plain HTTPS request refused');
    response.writeHead(refusal.status, { 'content-type': 'application/json; charset=utf-8', upgrade: 'websocket', connection: 'close' });
    response.end(JSON.stringify({ error: { code: refusal.code, message: refusal.message, trace_id: traceId } }));
  });
  const maxPayloadBytes = frameBytesMax * maxPayloadFactor;
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxPayloadBytes, WebSocket: AgentWebSocket });
  const received = { frames: 0 };
  const shared: AgentSocketShared = {
    clock, logger, metrics: options.metrics, messagesPerSecondMax, maxPayloadBytes, socketBufferedBytesMax, received,
    heardBeforeAuth: (agent) => {
      if (!handleAuthenticated(agent.handle)) return;
      const socket = agent.beforeAuth as Socket | undefined;
      agent.beforeAuth = undefined;
      if (socket !== undefined) forgetUnauthenticated(socket);
    },
  };

  /** A socket dropped by one of the bounds past TLS (or the per-source ones at accept): counted, and logged at most once per code per dropLogIntervalMs. */
  function dropped(code: string, fields: Record<string, unknown>): void {
    options.metrics?.websocketErrors.inc({ code });
    const nowMs = clock.nowMs();
    let entry = dropLog.get(code);
    if (entry === undefined) {
      entry = { count: 0, loggedMs: Number.NEGATIVE_INFINITY };
      dropLog.set(code, entry);
    }
    entry.count += 1;
    if (nowMs - entry.loggedMs < dropLogIntervalMs) return;
    logger.warn({ code, ...fields, dropped: entry.count }, 'socket dropped: a gateway connection bound was reached');
    entry.count = 0;
    entry.loggedMs = nowMs;
  }

  function forgetSourceIfIdle(source: SourceCount): void {
    if (source.sockets <= 0 && source.unauthenticated <= 0 && sources.get(source.address) === source) sources.delete(source.address);
  }

  /**
   * TLS finished: the socket counts as unauthenticated against its source and its certificate
   * (dropped if either is at its bound), and must send its upgrade request within upgradeTimeoutMs.
   */
  function trackUnauthenticated(tlsSocket: TLSSocket, source: SourceCount | undefined): void {
    if (tlsSocket.destroyed) return;
    const peer = tlsSocket.getPeerX509Certificate();
    const serial = peer?.serialNumber;
    if (source !== undefined && source.unauthenticated >= unauthenticatedPerSourceMax) {
      dropped('GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT', { source: source.address, limit: unauthenticatedPerSourceMax });
      tlsSocket.destroy();
      return;
    }
    const ofCertificate = serial === undefined ? 0 : unauthenticatedByCertificate.get(serial) ?? 0;
    if (ofCertificate >= unauthenticatedPerCertificateMax) {
      dropped('GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT', { serial, source: source?.address, limit: unauthenticatedPerCertificateMax });
      tlsSocket.destroy();
      return;
    }
    if (source !== undefined) source.unauthenticated += 1;
    if (serial !== undefined) unauthenticatedByCertificate.set(serial, ofCertificate + 1);
    const timer = setTimeout(upgradeTimedOut, upgradeTimeoutMs, tlsSocket);
    timer.unref();
    unauthenticated.set(tlsSocket, { source, serial, peer, timer });
    tlsSocket.on('close', onUnauthenticatedClose);
  }

  function upgradeTimedOut(tlsSocket: TLSSocket): void {
    const entry = unauthenticated.get(tlsSocket);
    if (entry?.timer === undefined) return;
    entry.timer = undefined;
    dropped('GATEWAY_UPGRADE_TIMEOUT', { source: entry.source?.address, serial: entry.serial, timeout_ms: upgradeTimeoutMs });
    tlsSocket.destroy();
  }

  function onUnauthenticatedClose(this: Socket): void {
    forgetUnauthenticated(this);
  }

  /** The socket authenticated or closed: it no longer counts against its source and certificate. Idempotent. */
  function forgetUnauthenticated(tlsSocket: Socket): void {
    const entry = unauthenticated.get(tlsSocket);
    if (entry === undefined) return;
    unauthenticated.delete(tlsSocket);
    tlsSocket.removeListener('close', onUnauthenticatedClose);
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.peer = undefined;
    if (entry.source !== undefined) {
      entry.source.unauthenticated -= 1;
      forgetSourceIfIdle(entry.source);
    }
    if (entry.serial !== undefined) {
      const left = (unauthenticatedByCertificate.get(entry.serial) ?? 1) - 1;
      if (left <= 0) unauthenticatedByCertificate.delete(entry.serial);
      else unauthenticatedByCertificate.set(entry.serial, left);
    }
  }

  function forgetHandshake(socket: Socket, key: string): void {
    handshakeKeys.delete(socket);
    // A key (address and port) can come back after its socket closed: only this socket's entry goes.
    if (handshakeSockets.get(key) === socket) handshakeSockets.delete(key);
  }

  /** The handshake of the socket with this key ended (finished or timed out): its slot is released, its key forgotten. */
  function endHandshake(key: string, outcome: 'finished' | 'timedOut'): void {
    const socket = handshakeSockets.get(key);
    if (socket !== undefined) forgetHandshake(socket, key);
    takeTurn(admission.release(key, clock.nowMs(), outcome));
  }

  // One listener for every socket (not a closure each).
  function onSocketClose(this: Socket): void {
    const source = sockets.get(this);
    sockets.delete(this);
    if (source !== undefined) {
      source.sockets -= 1;
      forgetSourceIfIdle(source);
    }
    const key = handshakeKeys.get(this);
    // Its handshake ended, and released its slot then: nothing is held for it.
    if (key === undefined) return;
    forgetHandshake(this, key);
    if (waitingSockets.get(key) === this) waitingSockets.delete(key);
    takeTurn(admission.release(key, clock.nowMs()));
  }

  /** Starts the handshakes a released slot allows (a waiting socket is read from here on) and drops those that waited too long. */
  function takeTurn(turn: { start: string[]; expired: string[] }): void {
    for (const key of turn.expired) {
      const socket = waitingSockets.get(key);
      waitingSockets.delete(key);
      options.metrics?.websocketErrors.inc({ code: 'GATEWAY_HANDSHAKE_QUEUE_TIMEOUT' });
      socket?.destroy();
    }
    for (const key of turn.start) {
      const socket = waitingSockets.get(key);
      waitingSockets.delete(key);
      // Gone while it waited (killed, or the server closed): its close already ran, so free the slot again.
      if (socket === undefined || socket.destroyed) takeTurn(admission.release(key, clock.nowMs()));
      else server.emit('connection', socket);
    }
  }

  // The TCP listener: sockets arrive paused (no byte read), and reach the TLS server only when admitted.
  const listener = createTcpServer({ pauseOnConnect: true }, (socket: Socket) => {
    // Dropped before TLS, so the peer cannot be told; each drop is counted under its own code (/metrics).
    const peer = socketPeerOf(socket);
    const key = admissionKeyOf(peer);
    const source = sources.get(peer.address);
    // The source's bounds first, before any TLS work: a source at its bound of unauthenticated sockets gets no handshake either.
    const decision = sockets.size >= socketsMax ? 'GATEWAY_CONNECTIONS_FULL'
      : source !== undefined && source.sockets >= socketsPerSourceMax ? 'GATEWAY_SOURCE_SOCKETS_LIMIT'
        : source !== undefined && source.unauthenticated >= unauthenticatedPerSourceMax ? 'GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT'
          : admission.admit(key, peer.address, clock.nowMs());
    if (decision !== 'start' && decision !== 'queued') {
      if (decision === 'GATEWAY_SOURCE_SOCKETS_LIMIT') dropped(decision, { source: peer.address, limit: socketsPerSourceMax });
      else if (decision === 'GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT') dropped(decision, { source: peer.address, limit: unauthenticatedPerSourceMax });
      else options.metrics?.websocketErrors.inc({ code: decision });
      socket.destroy();
      return;
    }
    let counted = source;
    if (counted === undefined) {
      counted = { address: peer.address, sockets: 0, unauthenticated: 0 };
      sources.set(peer.address, counted);
    }
    counted.sockets += 1;
    sockets.set(socket, counted);
    handshakeSockets.set(key, socket);
    handshakeKeys.set(socket, key);
    // `on`, not `once`: a socket closes once, and `once` costs a wrapper function and its state object per socket.
    socket.on('close', onSocketClose);
    if (decision === 'start') server.emit('connection', socket);
    else waitingSockets.set(key, socket);
  });
  server.on('error', (error: Error) => listener.emit('error', error));

  server.on('secureConnection', (tlsSocket: TLSSocket) => {
    const key = admissionKeyOf(socketPeerOf(tlsSocket));
    // The TCP socket under it, found by the shared key before the handshake's end forgets it.
    const tcpSocket = handshakeSockets.get(key);
    endHandshake(key, 'finished');
    if (tlsSocket.isSessionReused()) tlsHandshakes.resumed += 1;
    else tlsHandshakes.full += 1;
    forgetAlpnCopy(tlsSocket);
    trackUnauthenticated(tlsSocket, tcpSocket === undefined ? undefined : sockets.get(tcpSocket));
  });
  server.on('tlsClientError', (error: Error & { code?: string }, tlsSocket: TLSSocket) => {
    // Node's handshakeTimeout ends a socket that never finished TLS (a slowloris) with this error.
    if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
      options.metrics?.websocketErrors.inc({ code: 'GATEWAY_HANDSHAKE_TIMEOUT' });
      // Too many at once for the CPU we get (or a slow peer): fewer handshakes at once (handshake-admission.ts).
      endHandshake(admissionKeyOf(socketPeerOf(tlsSocket)), 'timedOut');
    }
    logger.info({ err: error }, 'TLS handshake refused');
  });

  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    // An event listener: whatever throws here is an uncaught exception, the end of the gateway
    // process (review h1, F3). So nothing below may throw on what the peer sent.
    try {
      upgrade(request, socket, head);
    } catch (error) {
      logger.error({ err: error }, 'upgrade request failed');
      socket.destroy();
    }
  });

  function upgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const pathname = upgradePathnameOf(request.url);
    if (pathname === undefined) {
      // Node's HTTP parser takes targets the URL parser refuses (`//[`, `http://[`): a peer's mistake, told and counted.
      options.metrics?.websocketErrors.inc({ code: 'GATEWAY_UPGRADE_TARGET_INVALID' });
      logger.info({ code: 'GATEWAY_UPGRADE_TARGET_INVALID', source: request.socket.remoteAddress }, 'upgrade request refused: unreadable target');
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      return;
    }
    if (pathname !== path) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    const tlsSocket = request.socket as TLSSocket;
    // The upgrade came in time: from here the core's authTimeoutMs bounds the wait for AUTH. The
    // socket still counts as unauthenticated until its AUTH is accepted (or it closes).
    const entry = unauthenticated.get(tlsSocket);
    if (entry !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    const peer = entry?.peer ?? tlsSocket.getPeerX509Certificate();
    if (entry !== undefined) entry.peer = undefined;
    wss.handleUpgrade(request, socket, head, (ws) => {
      const agent = new AgentSocket(ws as AgentWebSocket, shared);
      if (unauthenticated.has(tlsSocket)) agent.beforeAuth = tlsSocket;
      void admit(agent, peer).catch((error: unknown) => {
        logger.error({ err: error }, 'connection admission failed');
        ws.terminate();
      });
    });
  }

  async function admit(agent: AgentSocket, peer: X509Certificate | undefined): Promise<void> {
    const der = peer === undefined ? undefined : new Uint8Array(peer.raw);
    try {
      if (peer === undefined || der === undefined) throw new SdcError('GATEWAY_CERT_REFUSED', 'no client certificate');
      // Revocation is the core's check (it answers with AUTH_ERROR TRUST_CERT_REVOKED), so the simulator gets it too.
      // It runs here, at the upgrade, before the challenge: acceptConnection reads the revocation
      // first. Not also as TLS finishes: that would be a second store read for every connection
      // (a reconnect storm's), for a socket the upgrade timeout and the per-certificate bound already limit.
      const verified = await verifyDeviceCertificate({ certDer: der, trustAnchors, now: new Date(clock.nowMs()), isRevoked: () => false });
      // Closed while its certificate was checked: no session for a socket that is gone.
      if (!agent.open) return;
      agent.deviceId = verified.deviceId;
      agent.devicePublicKey = ed25519RawKey(peer);
      agent.certSerialHex = verified.serialHex;
      agent.certNotAfterMs = verified.notAfter.getTime();
      agent.handle = core.acceptConnection(agent);
      agent.forgetAdmission();
    } catch (error) {
      const refusal = SdcError.is(error) ? error : new SdcError('GATEWAY_CERT_REFUSED', 'client certificate check failed');
      // Only a device id that follows the protocol's rule goes into AUTH_ERROR; any other certificate gets the close alone.
      const deviceId = der === undefined ? undefined : unverifiedDeviceIdOf(der);
      if (deviceId !== undefined) core.refuseConnection({ send: (bytes) => agent.send(bytes), close: (code, reason) => agent.close(code, reason), deviceId, error: refusal });
      else agent.close(closeCodes.policyViolation, refusal.code);
    }
  }

  // Every gateway changes keys at the same period boundary (their clocks agreeing), so they keep accepting each other's tickets.
  let rotationTimer: NodeJS.Timeout | undefined;
  const scheduleRotation = (secret: Uint8Array) => {
    rotationTimer = setTimeout(() => {
      server.setTicketKeys(ticketKeysFor(secret, ticketPeriodOf(clock.nowMs(), ticketRotationMs)));
      scheduleRotation(secret);
    }, msUntilNextPeriod(clock.nowMs(), ticketRotationMs) + 1);
    rotationTimer.unref();
  };

  listener.listen(options.port, options.host);
  await new Promise<void>((resolve, reject) => {
    listener.once('listening', resolve);
    listener.once('error', reject);
  });
  if (tickets !== undefined) scheduleRotation(tickets.secret);
  const info = listener.address() as AddressInfo;
  const hostForUrl = info.family === 'IPv6' ? `[${info.address}]` : info.address;
  let closed = false;

  return {
    address: { host: info.address, port: info.port, url: `wss://${hostForUrl}:${info.port}${path}` },
    tlsHandshakes,
    received,
    sockets: () => ({ total: sockets.size, unauthenticated: unauthenticated.size }),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(rotationTimer);
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      // Sockets still waiting for a handshake slot would never get one now.
      for (const socket of waitingSockets.values()) socket.destroy();
      for (const client of wss.clients) client.close(closeCodes.goingAway, 'GATEWAY_SHUTTING_DOWN');
      wss.close();
      // Sockets that do not finish the close handshake promptly are cut.
      const timer = setTimeout(() => { for (const socket of sockets.keys()) socket.destroy(); }, 2_000);
      timer.unref();
      await stopped;
      clearTimeout(timer);
    },
    kill() {
      closed = true;
      clearTimeout(rotationTimer);
      for (const client of wss.clients) {
        client.removeAllListeners();
        // Its events reach the core through its AgentSocket, not a listener (agent-socket.ts): cut that too.
        (client as AgentWebSocket).agent = undefined;
      }
      for (const entry of unauthenticated.values()) clearTimeout(entry.timer);
      for (const socket of sockets.keys()) socket.destroy();
      listener.close();
      server.close();
      wss.close();
    },
  };
}
