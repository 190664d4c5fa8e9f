import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { SdcError } from '../core/errors/index.js';
import { runPaced } from './paced-schedule.js';

/**
 * The baseline for the command round trip: a bare WebSocket echo over the same TLS setup as the
 * gateway (TLS 1.3 only, mutual TLS with the agents' device certificates, the deployment's server
 * certificate, no compression) and the same concurrency shape as the real measurement: every
 * client connected at once, each sending one small message at a time and timing its echo. What
 * remains between this and the real round trip is the system's own work.
 */

export interface WsEchoTls {
  /** The server certificate and key, and the CA chain that client certificates must chain to. */
  server: { certPem: string; keyPem: string; caPem: string };
  /** What clients trust for the server certificate. */
  clientCaPem: string;
  /** Client certificates (certificate followed by its chain) and keys; client i uses entry i mod length. */
  clients: ReadonlyArray<{ certPem: string; keyPem: string }>;
}

export interface WsEchoOptions {
  tls: WsEchoTls;
  clients: number;
  /** Echoes per client, one after another; all clients run at once. */
  roundsPerClient: number;
  /** Unmeasured echoes per client first (JIT, TLS session warm-up). */
  warmupRounds?: number;
  messageBytes?: number;
  host?: string;
  /** Connections opened at once while connecting (TLS handshakes are CPU-bound). */
  connectConcurrency?: number;
  /** Bound on the whole run. */
  timeoutMs?: number;
  /** Called once every client is connected, before the echoes (for example to count open files). */
  onConnected?: () => Promise<void> | void;
  /** High-resolution clock in ms; performance.now() by default. */
  nowMs?: () => number;
  /**
   * Open loop (bench/paced-schedule.ts): every message, warm-up ones first, at this many per
   * second over all clients, message k on client k mod clients, each timed from its due time;
   * a client may have several in flight. Absent: each client sends its next on the last echo.
   */
  ratePerS?: number;
}

export interface WsEchoResult {
  clients: number;
  roundsPerClient: number;
  messageBytes: number;
  /** One sample per measured echo, in ms, in completion order. */
  samplesMs: number[];
  connectMs: number;
}

const clientsMax = 20_000;
const roundsMax = 100_000;
const messageBytesMax = 64 * 1024;

export async function runWsEchoBaseline(options: WsEchoOptions): Promise<WsEchoResult> {
  const nowMs = options.nowMs ?? (() => performance.now());
  const messageBytes = options.messageBytes ?? 256;
  const warmupRounds = options.warmupRounds ?? 1;
  if (!Number.isSafeInteger(options.clients) || options.clients < 1 || options.clients > clientsMax) throw new RangeError(`clients must be 1 to ${clientsMax}`);
  if (!Number.isSafeInteger(options.roundsPerClient) || options.roundsPerClient < 1 || options.roundsPerClient > roundsMax) throw new RangeError(`roundsPerClient must be 1 to ${roundsMax}`);
  if (messageBytes < 1 || messageBytes > messageBytesMax) throw new RangeError(`messageBytes must be 1 to ${messageBytesMax}`);
  if (options.tls.clients.length === 0) throw new RangeError('at least one client certificate is needed');
  const timeoutMs = options.timeoutMs ?? 300_000;
  const deadlineMs = nowMs() + timeoutMs;

  const server = await startEchoServer(options.tls.server, options.host ?? '127.0.0.1', messageBytesMax);
  const sockets: WebSocket[] = [];
  try {
    const url = `wss://${options.host ?? '127.0.0.1'}:${server.port}/echo`;
    const connectStartMs = nowMs();
    const concurrency = Math.max(1, options.connectConcurrency ?? 32);
    for (let i = 0; i < options.clients; i += concurrency) {
      const batch = Array.from({ length: Math.min(concurrency, options.clients - i) }, (_, k) => i + k);
      sockets.push(...await Promise.all(batch.map((index) => {
        const identity = options.tls.clients[index % options.tls.clients.length]!;
        return connect(url, identity, options.tls.clientCaPem, Math.max(1, deadlineMs - nowMs()));
      })));
    }
    const connectMs = nowMs() - connectStartMs;
    await options.onConnected?.();
    const message = Buffer.alloc(messageBytes, 0x61);
    const samplesMs: number[] = [];
    const pipes = sockets.map((ws) => new EchoPipe(ws));
    if (options.ratePerS !== undefined) {
      const warmupCount = warmupRounds * sockets.length;
      await runPaced({
        count: (warmupRounds + options.roundsPerClient) * sockets.length, ratePerS: options.ratePerS, nowMs, deadlineMs,
        start: async (k, dueMs) => {
          await pipes[k % pipes.length]!.echo(message, Math.max(1, deadlineMs - nowMs()));
          if (k >= warmupCount) samplesMs.push(nowMs() - dueMs);
        },
      });
      return { clients: options.clients, roundsPerClient: options.roundsPerClient, messageBytes, samplesMs, connectMs };
    }
    await Promise.all(pipes.map(async (pipe) => {
      for (let round = 0; round < warmupRounds + options.roundsPerClient; round += 1) {
        const sentMs = nowMs();
        await pipe.echo(message, Math.max(1, deadlineMs - sentMs));
        if (round >= warmupRounds) samplesMs.push(nowMs() - sentMs);
      }
    }));
    return { clients: options.clients, roundsPerClient: options.roundsPerClient, messageBytes, samplesMs, connectMs };
  } finally {
    for (const ws of sockets) ws.terminate();
    await server.close();
  }
}

/** TLS options as the gateway sets them (server/gateway/gateway-server.ts): the baseline must pay the same handshake and record costs. */
async function startEchoServer(tls: WsEchoTls['server'], host: string, payloadBytesMax: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({
    cert: tls.certPem, key: tls.keyPem, ca: tls.caPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true,
  }, (_request, response) => {
    response.writeHead(426).end();
  });
  const wss = new WebSocketServer({ server, path: '/echo', maxPayload: payloadBytesMax, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.on('message', (data: WebSocket.RawData, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => ws.terminate());
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function connect(url: string, identity: { certPem: string; keyPem: string }, caPem: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // As the agent's driver connects (agent/ws-transport.ts).
    const ws = new WebSocket(url, {
      cert: identity.certPem, key: identity.keyPem, ca: caPem, minVersion: 'TLSv1.3', perMessageDeflate: false, handshakeTimeout: timeoutMs,
    });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', (error) => reject(new SdcError('HTTP_UNREACHABLE', `echo server: ${error.message}`, {}, { cause: error })));
  });
}

/** Echoes on one socket, one at a time (closed loop) or several in flight (--rate): the server answers in order, so each reply settles the oldest wait. */
export class EchoPipe {
  readonly #ws: WebSocket;
  // Bounded by the schedule: at most the messages given to this client.
  readonly #waiting: Array<{ resolve: () => void; reject: (error: Error) => void; timer: NodeJS.Timeout }> = [];

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', () => {
      const first = this.#waiting.shift();
      if (first === undefined) return;
      clearTimeout(first.timer);
      first.resolve();
    });
  }

  echo(message: Buffer, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A lost echo breaks the order for every later one on this socket: all of them fail.
        const error = new SdcError('HTTP_UNREACHABLE', `no echo within ${Math.round(timeoutMs)} ms`);
        for (const waiting of this.#waiting.splice(0)) {
          clearTimeout(waiting.timer);
          waiting.reject(error);
        }
      }, timeoutMs);
      this.#waiting.push({ resolve, reject, timer });
      this.#ws.send(message, { binary: true });
    });
  }
}
