import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ChaosLogger } from './logger.js';

/**
 * The chaos API's connections, at most `connectionsMax` at once. At the bound a new connection
 * closes the one idle longest (no request in flight: between requests, or connected and sending
 * nothing yet) instead of being refused; only when every connection is serving a request is the
 * new one closed. Why: refusing new ones let any local caller lock everyone out by opening the
 * bound's worth of keep-alive connections and going quiet (review h1). A client whose idle
 * connection is taken sees it closed, as at the idle timeout, and opens another.
 */
export class ApiConnections {
  /** Each connection and its requests in flight, the least recently active first (re-inserted when a request ends). */
  readonly #sockets = new Map<Socket, { requests: number }>();

  constructor(private readonly connectionsMax: number, private readonly logger: ChaosLogger) {}

  /** The server's 'connection' listener. */
  readonly accepted = (socket: Socket): void => {
    this.#sockets.set(socket, { requests: 0 });
    socket.once('close', () => this.#sockets.delete(socket));
    if (this.#sockets.size <= this.connectionsMax) return;
    const idle = this.#longestIdle(socket);
    const closed = idle ?? socket;
    this.#sockets.delete(closed);
    closed.destroy();
    if (idle === undefined) this.logger.warn({ code: 'CHAOS_CONNECTIONS_FULL', api: true, connectionsMax: this.connectionsMax }, 'API connection limit reached and every connection is serving a request; new client closed');
    else this.logger.info({ api: true, connectionsMax: this.connectionsMax }, 'API connection limit reached; the connection idle longest was closed for a new client');
  };

  /** The server's 'request' listener: the connection is busy until the response is done. */
  readonly requested = (request: IncomingMessage, response: ServerResponse): void => {
    const socket = request.socket;
    const entry = this.#sockets.get(socket);
    if (entry === undefined) return;
    entry.requests += 1;
    response.once('close', () => {
      entry.requests -= 1;
      // Most recently active now: the last to be taken for a new client.
      if (this.#sockets.delete(socket)) this.#sockets.set(socket, entry);
    });
  };

  get size(): number {
    return this.#sockets.size;
  }

  #longestIdle(except: Socket): Socket | undefined {
    for (const [socket, entry] of this.#sockets) if (socket !== except && entry.requests === 0) return socket;
    return undefined;
  }
}
