import { createServer, type Server, type Socket } from 'node:net';
import { SdcError } from '../../core/errors/index.js';
import { formatHostPort, listenExclusive, parseHostPort } from './addresses.js';
import { ProxyConnection, type ConnectionEnv } from './connection.js';
import type { LinkStats } from './link.js';
import type { ProxySpec, ProxyUpdate } from './proxy-requests.js';
import { toxicJson, type ToxicJson, type ToxicState } from './toxic-state.js';

export interface ProxyJson {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: ToxicJson[];
}

/**
 * One proxy: a listening socket, its toxics (upstream ones and downstream ones, each in the order
 * added) and its open connections. A toxic added or removed applies to the open connections too.
 */
export class ChaosProxy {
  readonly name: string;
  #listen: string;
  /** The listen address as asked for (`127.0.0.1:0`), so populate can tell "unchanged". */
  #requestedListen: string;
  #upstream: string;
  #enabled = false;
  #toxics: ToxicState[] = [];
  #server: Server | undefined;
  readonly #connections = new Set<ProxyConnection>();

  constructor(spec: ProxySpec, private readonly env: ConnectionEnv) {
    this.name = spec.name;
    this.#listen = spec.listen;
    this.#requestedListen = spec.listen;
    this.#upstream = spec.upstream;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  get toxics(): readonly ToxicState[] {
    return this.#toxics;
  }

  /** Whether a populate entry asks for this proxy as it is (same addresses). */
  sameAddresses(spec: ProxySpec): boolean {
    return spec.upstream === this.#upstream && (spec.listen === this.#listen || spec.listen === this.#requestedListen);
  }

  toJSON(): ProxyJson {
    const ordered = [...this.#toxics.filter((t) => t.stream === 'upstream'), ...this.#toxics.filter((t) => t.stream === 'downstream')];
    return { name: this.name, listen: this.#listen, upstream: this.#upstream, enabled: this.#enabled, toxics: ordered.map(toxicJson) };
  }

  /** Per connection, both directions: bytes in and out, bytes held by toxics, paused readers. */
  stats(): LinkStats[][] {
    return [...this.#connections].map((c) => c.stats());
  }

  /** Listens; `listen` then names the actual address (a port 0 becomes the port picked). */
  async start(): Promise<void> {
    if (this.#enabled) return;
    const { host, port } = parseHostPort(this.#listen, 'listen', 0);
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
    server.maxConnections = this.env.limits.connectionsPerProxyMax;
    server.on('drop', () => this.env.logger.warn({ code: 'CHAOS_CONNECTIONS_FULL', proxy: this.name }, 'connection limit reached; client closed'));
    const address = await listenExclusive(server, host, port);
    server.on('error', (error) => this.env.logger.error({ code: 'CHAOS_LISTEN_FAILED', proxy: this.name, error: error.message }, 'proxy listener failed'));
    this.#listen = formatHostPort(address.address, address.port);
    this.#server = server;
    this.#enabled = true;
  }

  /** Stops listening and closes every connection (Toxiproxy's "down"). */
  async stop(): Promise<void> {
    if (!this.#enabled) return;
    this.#enabled = false;
    const server = this.#server!;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const connection of this.#connections) connection.destroy();
    await closed;
  }

  /** Toxiproxy's update: new addresses restart the proxy; `enabled` starts or stops it. */
  async update(update: ProxyUpdate): Promise<void> {
    if (update.listen !== this.#listen || update.upstream !== this.#upstream) {
      await this.stop();
      this.#listen = update.listen;
      this.#requestedListen = update.listen;
      this.#upstream = update.upstream;
    }
    if (update.enabled && !this.#enabled) await this.start();
    if (!update.enabled && this.#enabled) await this.stop();
  }

  findToxic(name: string): ToxicState {
    const toxic = this.#toxics.find((t) => t.name === name);
    if (toxic === undefined) throw new SdcError('CHAOS_TOXIC_NOT_FOUND', 'toxic not found', { proxy: this.name, toxic: name });
    return toxic;
  }

  addToxic(toxic: ToxicState): void {
    if (this.#toxics.some((t) => t.name === toxic.name)) throw new SdcError('CHAOS_TOXIC_EXISTS', 'toxic already exists', { proxy: this.name, toxic: toxic.name });
    const max = this.env.limits.toxicsPerProxyMax;
    if (this.#toxics.length >= max) throw new SdcError('CHAOS_LIMIT_REACHED', `a proxy holds at most ${max} toxics`, { proxy: this.name, toxicsPerProxyMax: max });
    this.#toxics.push(toxic);
    for (const connection of this.#connections) connection.addToxic(toxic);
  }

  replaceToxic(toxic: ToxicState): void {
    this.#toxics = this.#toxics.map((t) => (t.name === toxic.name ? toxic : t));
    for (const connection of this.#connections) connection.replaceToxic(toxic);
  }

  removeToxic(name: string): void {
    const toxic = this.findToxic(name);
    this.#toxics = this.#toxics.filter((t) => t !== toxic);
    for (const connection of this.#connections) connection.removeToxic(toxic);
  }

  removeAllToxics(): void {
    for (const toxic of [...this.#toxics]) this.removeToxic(toxic.name);
  }

  #accept(client: Socket): void {
    // Accepted by the kernel before the proxy was disabled: it must not outlive the "down".
    if (!this.#enabled) return void client.destroy();
    const connection = new ProxyConnection({
      proxyName: this.name, client, upstream: parseHostPort(this.#upstream, 'upstream', 1), toxics: this.#toxics, env: this.env,
      onClosed: (closed) => this.#connections.delete(closed),
    });
    this.#connections.add(connection);
  }
}
