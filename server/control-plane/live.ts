import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { ResyncEvent } from './live-publisher.js';

export interface LiveHubOptions {
  readonly kv: KeyValueStore;
  readonly logger: Logger;
  /** Token expiry is judged on this clock, and the close at expiry is scheduled on this scheduler. */
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Connected SSE clients per process; one more is refused with API_TOO_MANY_CLIENTS. */
  readonly clientsMax?: number;
  /** Streams one user may hold per process; one more is API_TOO_MANY_STREAMS (liveHubLimits). */
  readonly clientsPerUserMax?: number;
  /** Bytes queued in a client's socket before it is considered too slow and dropped. */
  readonly clientBufferBytesMax?: number;
}

/** Who opened a stream, and until when their token allows it. */
export interface LiveViewer {
  readonly user: string;
  readonly tokenExpiresAtMs: number;
}

interface LiveClient {
  readonly id: number;
  readonly response: ServerResponse;
  readonly viewer: LiveViewer;
  expiryTimer: TimerHandle | undefined;
}

const messageBytesMax = 16 * 1024;

/** Defaults of the hub's options (each can be set per hub). */
export const liveHubLimits = Object.freeze({
  // Streams per process: each holds a socket and up to clientBufferBytesMax of memory.
  clientsMax: 100,
  // Streams per user per process: a few browser tabs; without it one user could take all 100.
  clientsPerUserMax: 5,
  // Unsent bytes before a client counts as too slow and is dropped: a client this far behind is not reading.
  clientBufferBytesMax: 256 * 1024,
});

/**
 * Fans out live updates to Server-Sent Events clients. Every control-plane process publishes on
 * the kv channel and every process relays what it hears to its own clients, so an operator sees
 * changes made by any process. A client whose socket cannot keep up (more than
 * clientBufferBytesMax queued) gets a final `dropped` event and is disconnected, and so does a
 * client whose token expires (`token_expired`): at the expiry time, and in any case before it
 * would be sent anything after it.
 */
export class LiveHub {
  readonly #o: Required<LiveHubOptions>;
  readonly #clients = new Map<number, LiveClient>();
  readonly #streamsByUser = new Map<string, number>();
  #nextId = 1;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(options: LiveHubOptions) {
    this.#o = { ...liveHubLimits, ...options };
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  async start(): Promise<void> {
    if (this.#unsubscribe !== undefined) return;
    // Changes published while this process's subscription was down never reach it: its clients
    // are told to read their state again (the publisher's side of this is LivePublisher).
    const resync = (): void => {
      const event: ResyncEvent = { type: 'resync', reason: 'subscription_restored', at_ms: this.#o.clock.nowMs() };
      this.#o.logger.info('live subscription restored; clients told to resync');
      this.#broadcast(JSON.stringify(event));
    };
    this.#unsubscribe = await this.#o.kv.subscribe(liveChannel, (message) => this.#broadcast(message), { onResubscribed: resync });
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe !== undefined) await unsubscribe();
    for (const client of [...this.#clients.values()]) this.#close(client, 'shutdown');
  }

  /** Streams `user` holds on this process. */
  streamsOf(user: string): number {
    return this.#streamsByUser.get(user) ?? 0;
  }

  /** Throws API_TOO_MANY_STREAMS or API_TOO_MANY_CLIENTS when full; call before writing the response head. */
  reserve(user: string): void {
    if (this.streamsOf(user) >= this.#o.clientsPerUserMax) {
      throw new SdcError('API_TOO_MANY_STREAMS', `user holds its maximum of ${this.#o.clientsPerUserMax} live streams`, { streamsPerUserMax: this.#o.clientsPerUserMax });
    }
    if (this.#clients.size >= this.#o.clientsMax) throw new SdcError('API_TOO_MANY_CLIENTS', `live stream has its maximum of ${this.#o.clientsMax} clients`);
  }

  /** Takes over a response: writes the SSE head and keeps it until the client leaves, is dropped or its token expires. */
  attach(response: ServerResponse, viewer: LiveViewer): void {
    this.reserve(viewer.user);
    const client: LiveClient = { id: this.#nextId++, response, viewer, expiryTimer: undefined };
    this.#clients.set(client.id, client);
    this.#streamsByUser.set(viewer.user, this.streamsOf(viewer.user) + 1);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    response.write(`event: hello\ndata: {"client":${client.id}}\n\n`);
    response.on('close', () => this.#forget(client));
    const untilExpiryMs = viewer.tokenExpiresAtMs - this.#o.clock.nowMs();
    if (untilExpiryMs <= 0) this.#close(client, 'token_expired');
    else client.expiryTimer = this.#o.scheduler.schedule(untilExpiryMs, () => this.#onExpiryTimer(client));
  }

  /**
   * Closes every stream `user` holds on this process with a final `dropped` event naming `reason`
   * (their tokens were just revoked or the user removed, here). Streams on other processes are
   * not told: they close at their token's expiry (docs/security/threat-model.md says why).
   */
  closeUser(user: string, reason: 'token_revoked' | 'user_removed'): number {
    const theirs = [...this.#clients.values()].filter((client) => client.viewer.user === user);
    for (const client of theirs) this.#close(client, reason);
    return theirs.length;
  }

  #broadcast(message: string): void {
    if (message.length > messageBytesMax) return;
    let type = 'message';
    try {
      const parsed = JSON.parse(message) as { type?: unknown };
      if (typeof parsed.type === 'string' && /^[a-z_]{1,32}$/.test(parsed.type)) type = parsed.type;
    } catch {
      this.#o.logger.warn('live message is not JSON; dropped');
      return;
    }
    // One line of data: the message is compact JSON, which has no raw newlines.
    const frame = `event: ${type}\ndata: ${message}\n\n`;
    for (const client of [...this.#clients.values()]) {
      if (this.#closeIfExpired(client)) continue;
      if (client.response.writableLength > this.#o.clientBufferBytesMax) {
        this.#close(client, 'slow_client');
        continue;
      }
      client.response.write(frame);
    }
  }

  /** Closes a client whose token has expired by the clock; true if it did (or the client is gone). */
  #closeIfExpired(client: LiveClient): boolean {
    if (!this.#clients.has(client.id)) return true;
    if (client.viewer.tokenExpiresAtMs > this.#o.clock.nowMs()) return false;
    this.#close(client, 'token_expired');
    return true;
  }

  /** The expiry timer; against an injected clock it may fire early, and then waits again. */
  #onExpiryTimer(client: LiveClient): void {
    client.expiryTimer = undefined;
    if (this.#closeIfExpired(client)) return;
    client.expiryTimer = this.#o.scheduler.schedule(client.viewer.tokenExpiresAtMs - this.#o.clock.nowMs(), () => this.#onExpiryTimer(client));
  }

  #forget(client: LiveClient): void {
    if (!this.#clients.delete(client.id)) return;
    if (client.expiryTimer !== undefined) this.#o.scheduler.cancel(client.expiryTimer);
    client.expiryTimer = undefined;
    const left = this.streamsOf(client.viewer.user) - 1;
    if (left > 0) this.#streamsByUser.set(client.viewer.user, left);
    else this.#streamsByUser.delete(client.viewer.user);
  }

  #close(client: LiveClient, reason: string): void {
    this.#forget(client);
    try {
      client.response.end(`event: dropped\ndata: {"reason":"${reason}"}\n\n`);
    } catch (error) {
      this.#o.logger.debug({ err: error }, 'live client already gone');
    }
  }
}
