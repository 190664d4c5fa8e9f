import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import type { ServiceMetrics } from '../observability/metrics.js';
import { closeCodes } from './close-codes.js';
import type { AcceptConnectionInput, ConnectionHandle } from './gateway-core.js';

/**
 * One agent's WebSocket on the gateway, as compact as it can be: a gateway holds tens of thousands
 * of idle ones, and its memory per session is measured against a bare `ws` server's
 * (docs/benchmarks.md, `sdc bench connections`). So the transport is one object with methods (not
 * an object of closures), the listeners are shared functions that find it through the socket, and
 * the rate budget is two fields of it.
 */

/** What every agent socket of one gateway server shares. */
export interface AgentSocketShared {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics | undefined;
  /** Per connection; a peer above it is disconnected with GATEWAY_RATE_LIMITED. */
  readonly messagesPerSecondMax: number;
  /** ws's maxPayload: a message over it is dropped unread and refused (PROTO_FRAME_TOO_LARGE). */
  readonly maxPayloadBytes: number;
  /**
   * Bytes a socket may hold unsent (ws's bufferedAmount) before the gateway sends it more; past it
   * the device is not reading and the session is closed (GATEWAY_PEER_NOT_READING).
   */
  readonly socketBufferedBytesMax: number;
  /** Messages received on every socket of the server (GatewayServer.received): one increment per message. */
  readonly received: { frames: number };
  /**
   * Called after each message handed to the core while the socket's `beforeAuth` is set: the
   * server's bounds on sockets that have not authenticated (gateway-server.ts) learn here that its
   * AUTH was accepted, the core marking the session authenticated while it receives that frame.
   */
  readonly heardBeforeAuth?: (agent: AgentSocket) => void;
}

/** Before admission: what arrives is dropped, as it was when no listener was attached yet. */
const unadmitted: ConnectionHandle = { receive: () => undefined, transportClosed: () => undefined };

/**
 * The WebSocket class the gateway's server makes (ws's `WebSocket` option). It carries its
 * AgentSocket, and it turns ws's own close for an oversize message into the typed refusal first:
 * ws closes such a connection by calling `close(1009)` itself, before it emits 'error', so the
 * device would get 1009 and no code. Here the core sends PROTO_FRAME_TOO_LARGE (as ERROR or
 * AUTH_ERROR) and then closes with 1009 and the code as the reason. The message is never read.
 */
export class AgentWebSocket extends WebSocket {
  agent: AgentSocket | undefined;
  #refusing = false;

  /**
   * ws's events for an admitted agent go to its AgentSocket from here, not through listeners:
   * four listeners per socket (message, pong, close, error) cost each session about 150 bytes of
   * heap beside ws's own close listener (the emitter's dictionary entries and a two-listener
   * array; docs/benchmarks.md, 2026-12-04 night). Listeners added by others still run ('close':
   * ws's server's first, as when ours was a listener added after it).
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const agent = this.agent;
    if (agent === undefined) return event === 'error' && this.listenerCount('error') === 0 ? false : super.emit(event, ...args);
    switch (event) {
      case 'message':
        agent.message(args[0] as RawData);
        return true;
      case 'pong':
        agent.handle.pong?.();
        return true;
      case 'error':
        agent.shared.logger.info({ err: args[0] }, 'websocket error');
        return true;
      case 'close': {
        const heard = super.emit(event, ...args);
        agent.handle.transportClosed();
        return heard;
      }
      default:
        return super.emit(event, ...args);
    }
  }

  override close(code?: number, reason?: string | Buffer): void {
    const agent = this.agent;
    if (agent === undefined || agent.handle === unadmitted || code !== closeCodes.tooLarge || reason !== undefined || this.#refusing) {
      super.close(code, reason);
      return;
    }
    this.#refusing = true;
    agent.handle.refuse?.(new SdcError('PROTO_FRAME_TOO_LARGE', `a message over ${agent.shared.maxPayloadBytes} bytes was dropped unread`), closeCodes.tooLarge);
    // The core closed through the transport (with the reason); if it had nothing open to close, close as ws meant to.
    if (this.readyState === WebSocket.OPEN) super.close(code, 'PROTO_FRAME_TOO_LARGE');
  }
}

/** The device transport (gateway-core.ts DeviceTransport) and the admission input over one AgentWebSocket. */
export class AgentSocket implements AcceptConnectionInput {
  handle: ConnectionHandle = unadmitted;
  deviceId = '';
  devicePublicKey: Uint8Array = new Uint8Array(0);
  certSerialHex = '';
  certNotAfterMs: number | undefined = undefined;
  /** Set by the server (what it counts the socket under) until the socket authenticates; then undefined, one field per session. */
  beforeAuth: object | undefined = undefined;
  /** Token bucket: messagesPerSecondMax refills per second, the same number as burst. */
  #tokens: number;
  #lastMs: number;

  constructor(readonly ws: AgentWebSocket, readonly shared: AgentSocketShared) {
    this.#tokens = shared.messagesPerSecondMax;
    this.#lastMs = shared.clock.nowMs();
    // From here on ws's events reach this object through AgentWebSocket.emit.
    ws.agent = this;
  }

  /**
   * After admission the session keeps what it needs of the certificate (DeviceSession,
   * GatewayConnection): the socket lets its own copies go, so a session holds no second serial
   * string (the session's is normalized, a new string) and no second notAfter (docs/benchmarks.md,
   * 2026-12-04 night). The device id and key are the session's own objects too, so they stay.
   */
  forgetAdmission(): void {
    this.certSerialHex = '';
    this.certNotAfterMs = undefined;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(bytes: Uint8Array): void {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    // A device that sends (HEARTBEATs are echoed) but never reads would have every answer queued
    // here for the session's life (review h1, F1): past the bound it is closed instead.
    if (ws.bufferedAmount > this.shared.socketBufferedBytesMax) {
      this.#refuseNotReading();
      return;
    }
    ws.send(bytes);
  }

  /**
   * Closes with GATEWAY_PEER_NOT_READING: the close frame waits behind what the device has not
   * read, and ws destroys the socket if no answer comes within its close timeout (30 s), so the
   * held bytes are bounded by socketBufferedBytesMax and one frame for at most that long. Called
   * from within the core's send, so the core learns of the end on the next microtask, not inside it.
   */
  #refuseNotReading(): void {
    const { logger, metrics, socketBufferedBytesMax } = this.shared;
    const code = 'GATEWAY_PEER_NOT_READING';
    logger.warn({ code, device_id: this.deviceId, buffered_bytes: this.ws.bufferedAmount, limit_bytes: socketBufferedBytesMax }, 'device is not reading its socket; closing');
    metrics?.websocketErrors.inc({ code });
    this.ws.close(closeCodes.policyViolation, code);
    queueMicrotask(() => this.handle.transportClosed(code));
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }

  /** The liveness probe: a half-open socket never answers; a live peer's ws answers by itself. */
  ping(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
  }

  /**
   * A message from the device: over the rate budget the connection is closed (GATEWAY_RATE_LIMITED), else it goes to the core.
   * Once the socket is closing (this refusal, the core's close, or the peer's) what still arrives is
   * dropped: ws goes on reading until the peer answers the close or its close timeout (30 s), and a
   * peer that ignores the close had each frame logged and counted again (review h1, F2: 4996 warn
   * lines for 5000 frames). The core drops a closed session's frames anyway.
   */
  message(data: RawData): void {
    this.shared.received.frames += 1;
    const state = this.ws.readyState;
    if (state === WebSocket.CLOSING || state === WebSocket.CLOSED) return;
    if (!this.#takeToken()) {
      this.shared.logger.warn({ code: 'GATEWAY_RATE_LIMITED', device_id: this.deviceId, limit_per_second: this.shared.messagesPerSecondMax }, 'message rate exceeded; closing');
      this.shared.metrics?.websocketErrors.inc({ code: 'GATEWAY_RATE_LIMITED' });
      this.close(closeCodes.policyViolation, 'GATEWAY_RATE_LIMITED');
      this.handle.transportClosed('GATEWAY_RATE_LIMITED');
      return;
    }
    // ws hands over a Buffer of its own (binaryType 'nodebuffer', nothing else writes to it): used as
    // it is, not copied once more per frame (Buffer.from of a Buffer copies).
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    this.handle.receive(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (this.beforeAuth !== undefined) this.shared.heardBeforeAuth?.(this);
  }

  #takeToken(): boolean {
    const nowMs = this.shared.clock.nowMs();
    const ratePerSecond = this.shared.messagesPerSecondMax;
    const elapsedMs = Math.max(0, nowMs - this.#lastMs);
    this.#lastMs = nowMs;
    this.#tokens = Math.min(ratePerSecond, this.#tokens + (elapsedMs * ratePerSecond) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
