// Shared by the chaos/proxy tests (not used by production code): an upstream server and clients on
// 127.0.0.1 whose received bytes, ends and resets can be awaited, and a chaos server per test.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Toxiproxy } from 'toxiproxy-node-client';
import type { ChaosLimits } from './limits.js';
import type { ChaosLogger } from './logger.js';
import { startChaosServer, type ChaosServer } from './server.js';
import type { ChaosTime } from './time.js';

/** Generous: a busy machine may be slow, and waiting longer never makes a passing test fail (as the e2e tests' 120 s). */
export const waitMs = 120_000;

/** Polls `check` until it returns something other than undefined. */
export async function eventually<T>(what: string, check: () => T | undefined, timeoutMs = waitMs): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(5);
  }
}

/** One end of a TCP connection in a test: what it received, whether it saw FIN, RST or a close. */
export class Peer {
  readonly chunks: Buffer[] = [];
  ended = false;
  closed = false;
  errorCode: string | undefined;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    socket.on('end', () => { this.ended = true; });
    socket.on('error', (error: NodeJS.ErrnoException) => { this.errorCode = error.code ?? error.message; });
    socket.on('close', () => { this.closed = true; });
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return this.received.toString('utf8');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async receivedAtLeast(bytes: number): Promise<Buffer> {
    await eventually(`${bytes} bytes (have ${this.received.length})`, () => (this.received.length >= bytes ? true : undefined));
    return this.received;
  }

  async untilEnded(): Promise<void> {
    await eventually('FIN', () => (this.ended ? true : undefined));
  }

  async untilClosed(): Promise<void> {
    await eventually('close', () => (this.closed ? true : undefined));
  }
}

export function connectClient(port: number): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new Peer(socket));
    });
  });
}

/** A server that records each accepted connection as a Peer; the test decides what it sends. */
export class Upstream {
  readonly peers: Peer[] = [];

  private constructor(readonly server: Server, readonly port: number) {}

  static async start(options: { echo?: boolean } = {}): Promise<Upstream> {
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const upstream = new Upstream(server, (server.address() as { port: number }).port);
    server.on('connection', (socket) => {
      const peer = new Peer(socket);
      if (options.echo === true) {
        socket.on('data', (chunk) => socket.write(chunk));
        socket.on('end', () => socket.end());
      }
      upstream.peers.push(peer);
    });
    return upstream;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The n-th connection (0-based) once it was accepted. */
  peer(index: number): Promise<Peer> {
    return eventually(`upstream connection ${index}`, () => this.peers[index]);
  }

  async close(): Promise<void> {
    for (const peer of this.peers) peer.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface TestChaos {
  readonly server: ChaosServer;
  readonly toxiproxy: Toxiproxy;
  readonly logged: Array<{ level: string; fields: Record<string, unknown>; message: string }>;
}

export async function startTestChaos(options: { time?: ChaosTime; seed?: number; limits?: Partial<ChaosLimits> } = {}): Promise<TestChaos> {
  const logged: TestChaos['logged'] = [];
  const record = (level: string) => (fields: object, message: string) => void logged.push({ level, fields: fields as Record<string, unknown>, message });
  const logger: ChaosLogger = { info: record('info'), warn: record('warn'), error: record('error') };
  const server = await startChaosServer({ host: '127.0.0.1', port: 0, seed: options.seed ?? 1, logger, ...options });
  return { server, toxiproxy: new Toxiproxy(server.url), logged };
}

/** The port of a proxy's `listen` (host:port). */
export function portOf(listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(':') + 1));
}
