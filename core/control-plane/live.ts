import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { SdcError } from '../errors/index.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';

export interface LiveHubOptions {
  readonly kv: KeyValueStore;
  readonly logger: Logger;
  /** Connected SSE clients per process; one more is refused with API_TOO_MANY_CLIENTS. */
  readonly clientsMax?: number;
  /** Bytes queued in a client's socket before it is considered too slow and dropped. */
  readonly clientBufferBytesMax?: number;
}

interface LiveClient {
  readonly id: number;
  readonly response: ServerResponse;
}

const messageBytesMax = 16 * 1024;

/**
 * Fans out live updates to Server-Sent Events clients. Every control-plane process publishes on
 * the kv channel and every process relays what it hears to its own clients, so an operator sees
 * changes made by any process. A client whose socket cannot keep up (more than
 * clientBufferBytesMax queued) gets a final `dropped` event and is disconnected.
 */
export class LiveHub {
  readonly #o: Required<LiveHubOptions>;
  readonly #clients = new Map<number, LiveClient>();
  #nextId = 1;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(options: LiveHubOptions) {
    this.#o = { clientsMax: 100, clientBufferBytesMax: 256 * 1024, ...options };
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  async start(): Promise<void> {
    if (this.#unsubscribe !== undefined) return;
    this.#unsubscribe = await this.#o.kv.subscribe(liveChannel, (message) => this.#broadcast(message));
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe !== undefined) await unsubscribe();
    for (const client of [...this.#clients.values()]) this.#close(client, 'shutdown');
  }

  /** Throws API_TOO_MANY_CLIENTS when full; call before writing the response head. */
  reserve(): void {
    if (this.#clients.size >= this.#o.clientsMax) throw new SdcError('API_TOO_MANY_CLIENTS', `live stream has its maximum of ${this.#o.clientsMax} clients`);
  }

  /** Takes over a response: writes the SSE head and keeps it until the client leaves or is dropped. */
  attach(response: ServerResponse): void {
    this.reserve();
    const client: LiveClient = { id: this.#nextId++, response };
    this.#clients.set(client.id, client);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    response.write(`event: hello\ndata: {"client":${client.id}}\n\n`);
    response.on('close', () => this.#clients.delete(client.id));
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
      if (client.response.writableLength > this.#o.clientBufferBytesMax) {
        this.#close(client, 'slow_client');
        continue;
      }
      client.response.write(frame);
    }
  }

  #close(client: LiveClient, reason: string): void {
    this.#clients.delete(client.id);
    try {
      client.response.end(`event: dropped\ndata: {"reason":"${reason}"}\n\n`);
    } catch (error) {
      this.#o.logger.debug({ err: error }, 'live client already gone');
    }
  }
}
