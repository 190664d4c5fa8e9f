/**
 * What `sdc bench connections` / `sdc bench reconnect` and their child processes say over the IPC
 * channel. Lists travel in chunks of at most `ipcChunkItemsMax` items (sim/real/messages.ts).
 */
import type { WorkerAgentSpec } from '../sim/real/messages.js';

export interface ServerMemory {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Every other V8 and Buffer allocation: external plus array buffers. */
  readonly externalBytes: number;
  /**
   * Resident bytes of V8's young generation (new space, physical). V8 shrinks it in a process
   * that has gone quiet (the bare server) and keeps it at its grown size in a busy one (a gateway
   * with heartbeats), about 32 MiB here: a fixed cost, not a per-connection one.
   */
  readonly youngGenerationBytes: number;
  /** Open WebSocket connections (bare server), or every TCP socket of the process (gateway: its Redis connections too; the bench subtracts the idle count). */
  readonly connections: number;
}

/** To a server child (a gateway process, or the bare mutual-TLS ws server). */
export type ServerRequest =
  | {
    readonly type: 'start'; readonly dataDir: string; readonly redisUrl: string; readonly keyPrefix: string; readonly gatewayId: string;
    readonly heartbeatIntervalMs: number; readonly tls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
    /** The gateway's TLS ticket secret (hex) instead of the data directory's (deployment.ts gatewayTicketSecret): gateways with other secrets do not resume each other's sessions. */
    readonly ticketSecretHex?: string;
    /** The gateway's bound on handshakes in flight per source address, instead of its default (64): every bench agent comes from 127.0.0.1. */
    readonly pendingHandshakesPerSourceMax?: number;
    /** The gateway's bound on TLS handshakes running at once (later sockets wait their turn), instead of its default. */
    readonly handshakesInFlightMax?: number;
  }
  /** Answered with `memory`, after a full garbage collection (the child runs with --expose-gc). */
  | { readonly type: 'memory' }
  /** Answered with `tlsHandshakes`: the gateway's full and resumed TLS handshakes since it started. */
  | { readonly type: 'tlsHandshakes' }
  /** Answered with `cpu`: the process's CPU so far and the agents' messages it received so far. */
  | { readonly type: 'cpu' }
  | { readonly type: 'stop' };

/**
 * A process's CPU since it started (process.cpuUsage(): every thread of it, user and system, µs)
 * and, from a gateway, the WebSocket messages its agents sent it (GatewayServer.received; 0 from
 * any other process). The bench takes the difference of two readings.
 */
export interface CpuReading {
  readonly userUs: number;
  readonly systemUs: number;
  readonly framesReceived: number;
}

export type ServerReport =
  | { readonly type: 'listening'; readonly url: string; readonly pid: number }
  | ({ readonly type: 'memory' } & ServerMemory)
  /** `dropped`: sockets the gateway dropped before or during TLS, by code (GATEWAY_SOURCE_LIMIT, GATEWAY_HANDSHAKE_TIMEOUT...). */
  | { readonly type: 'tlsHandshakes'; readonly full: number; readonly resumed: number; readonly dropped: Readonly<Record<string, number>> }
  | ({ readonly type: 'cpu' } & CpuReading)
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

export interface AgentWorkerStatus {
  readonly agents: number;
  readonly connected: number;
  readonly executions: number;
  readonly violations: number;
}

/** To an agent child (bench/connections-agent-worker.ts, the simulator's real agents). */
export type AgentWorkerRequest =
  | { readonly type: 'agents'; readonly agents: readonly WorkerAgentSpec[] }
  /** `window`: agents of this process started but not yet authenticated, at most (connections-agent-worker.ts). */
  | { readonly type: 'start'; readonly telemetryIntervalMs: number; readonly backoffMaxMs: number; readonly window: number }
  /** The agents whose session closed at or after `sinceMs`: how long after `sinceMs` each was ready again. */
  | { readonly type: 'returns'; readonly sinceMs: number }
  /** [command id, kernel executions] of every command a journal marked executing. */
  | { readonly type: 'executions' }
  /** Answered with `cpu` (framesReceived 0). */
  | { readonly type: 'cpu' }
  | { readonly type: 'stop' };

export type AgentWorkerReport =
  | { readonly type: 'status'; readonly status: AgentWorkerStatus }
  /** [device id, ms from `sinceMs` until its session was ready again]. */
  | { readonly type: 'returns'; readonly items: ReadonlyArray<readonly [string, number]> }
  | { readonly type: 'returnsDone'; readonly closed: number; readonly notBack: number }
  | { readonly type: 'executions'; readonly items: ReadonlyArray<readonly [string, number]> }
  | { readonly type: 'executionsDone' }
  | ({ readonly type: 'cpu' } & CpuReading)
  | { readonly type: 'violation'; readonly message: string }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

/** To a bare client child: plain mutual-TLS ws clients with the agents' certificates, no protocol. */
export type BareClientRequest =
  | { readonly type: 'dirs'; readonly dirs: readonly string[] }
  /** Open one connection per directory to `url`, each after a delay uniform in [0, jitterMs]; retried with the agents' backoff. */
  | { readonly type: 'open'; readonly url: string; readonly caPem: string; readonly jitterMs: number; readonly backoffMaxMs: number }
  /**
   * Send `messages` messages of `bytes` bytes on every open connection, one round over all of them
   * every `intervalMs` (the bare server echoes each): the baseline with traffic (connections.ts).
   */
  | { readonly type: 'traffic'; readonly messages: number; readonly bytes: number; readonly intervalMs: number }
  | { readonly type: 'close' };

export type BareClientReport =
  | { readonly type: 'status'; readonly open: number; readonly failures: number }
  /** Per connection, ms from `open` until it was open. */
  | { readonly type: 'opened'; readonly afterMs: readonly number[] }
  | { readonly type: 'openedDone' }
  /** The traffic was sent: `sent` messages over all connections. */
  | { readonly type: 'trafficDone'; readonly sent: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'closed' };
