import { connect, type Socket } from 'node:net';
import type { RandomSource } from '../../core/ports/ports.js';
import type { ChaosLimits } from './limits.js';
import { Link, type LinkStats } from './link.js';
import type { ChaosLogger } from './logger.js';
import type { ChaosTime } from './time.js';
import type { ToxicState } from './toxic-state.js';
import type { ToxicStream } from './toxics/types.js';

export interface ConnectionEnv {
  readonly time: ChaosTime;
  readonly toxicityRandom: RandomSource;
  readonly toxicRandom: RandomSource;
  readonly limits: ChaosLimits;
  readonly logger: ChaosLogger;
}

export interface ConnectionOptions {
  readonly proxyName: string;
  readonly client: Socket;
  readonly upstream: { readonly host: string; readonly port: number };
  readonly toxics: readonly ToxicState[];
  readonly env: ConnectionEnv;
  readonly onClosed: (connection: ProxyConnection) => void;
}

/**
 * One client connection through a proxy: the client socket, the socket to the upstream, and a
 * link each way. Half-closes pass through (a FIN from one side reaches the other after the bytes
 * before it); an error or reset on either socket destroys both.
 */
export class ProxyConnection {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #links: Record<ToxicStream, Link>;
  #finished = false;

  constructor(private readonly options: ConnectionOptions) {
    this.#client = options.client;
    this.#client.setNoDelay(true);
    this.#upstream = connect({ ...options.upstream, allowHalfOpen: true, noDelay: true });
    this.#watchConnect();
    this.#links = { upstream: this.#link('upstream', this.#client, this.#upstream), downstream: this.#link('downstream', this.#upstream, this.#client) };
    for (const socket of [this.#client, this.#upstream]) {
      socket.on('error', () => this.destroy());
      socket.on('close', () => this.#socketClosed());
    }
  }

  stats(): LinkStats[] {
    return [this.#links.upstream.stats(), this.#links.downstream.stats()];
  }

  addToxic(toxic: ToxicState): void {
    this.#links[toxic.stream].addToxic(toxic);
  }

  removeToxic(toxic: ToxicState): void {
    this.#links[toxic.stream].removeToxic(toxic.name);
  }

  replaceToxic(toxic: ToxicState): void {
    this.#links[toxic.stream].replaceToxic(toxic);
  }

  /** Closes both sockets now (the proxy is disabled or deleted). */
  destroy(): void {
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #link(stream: ToxicStream, source: Socket, sink: Socket): Link {
    const { env } = this.options;
    return new Link({
      stream, source, sink, time: env.time, toxicityRandom: env.toxicityRandom, toxicRandom: env.toxicRandom,
      toxicHeldBytesMax: env.limits.toxicHeldBytesMax,
      onCloseRequested: () => this.#closeGracefully(),
      onResetRequested: () => this.#reset(),
    }, this.options.toxics.filter((t) => t.stream === stream));
  }

  /** Gives up on an upstream that does not answer in time; the client is closed, as Toxiproxy does. */
  #watchConnect(): void {
    const timer = setTimeout(() => this.#upstream.destroy(new Error('connect timed out')), this.options.env.limits.upstreamConnectTimeoutMs);
    timer.unref();
    let connected = false;
    this.#upstream.once('connect', () => {
      connected = true;
      clearTimeout(timer);
    });
    this.#upstream.once('close', () => clearTimeout(timer));
    this.#upstream.once('error', (error) => {
      if (connected) return;
      const { proxyName, upstream } = this.options;
      this.options.env.logger.warn({ code: 'CHAOS_UPSTREAM_UNREACHABLE', proxy: proxyName, upstream: `${upstream.host}:${upstream.port}`, error: error.message },
        'upstream unreachable; client connection closed');
    });
  }

  /** FIN to both sides after what is queued; a side that does not finish in time is destroyed. */
  #closeGracefully(): void {
    for (const socket of [this.#client, this.#upstream]) {
      if (socket.destroyed) continue;
      socket.end(() => socket.destroy());
      setTimeout(() => socket.destroy(), this.options.env.limits.closeGraceMs).unref();
    }
  }

  /** RST to both sides (SO_LINGER 0): queued bytes are dropped, the peers read ECONNRESET. */
  #reset(): void {
    for (const socket of [this.#client, this.#upstream]) {
      if (socket.destroyed) continue;
      if (socket.connecting) socket.destroy();
      else socket.resetAndDestroy();
    }
  }

  /** A side closed: after an error the other goes too; once both are closed, the connection is finished. */
  #socketClosed(): void {
    if (this.#client.closed !== this.#upstream.closed && (this.#client.errored || this.#upstream.errored)) this.destroy();
    if (this.#finished || !this.#client.closed || !this.#upstream.closed) return;
    this.#finished = true;
    this.#links.upstream.dispose();
    this.#links.downstream.dispose();
    this.options.onClosed(this);
  }
}
