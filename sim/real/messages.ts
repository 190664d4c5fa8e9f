/**
 * What the parent of a `--real` run and its worker processes say to each other over the IPC
 * channel. Every list travels in chunks of at most `ipcChunkItemsMax` items, so no message grows
 * with the fleet or the number of commands.
 */

export const ipcChunkItemsMax = 1_000;
/** Violations one worker reports; more are counted, not sent. */
export const workerViolationsMax = 20;

/** One simulated agent a worker runs. Its directory holds the enrollment (ensureEnrolled). */
export interface WorkerAgentSpec {
  readonly deviceId: string;
  readonly dir: string;
  /** Seed of the agent's own SeededRandom (backoff jitter, nonces, telemetry, mock kernel keys and faults). */
  readonly seed: number;
  /** The agent's clock is off by this much (the scenario's clockSkewMsMax). */
  readonly clockSkewMs: number;
  /** Wall ms after start before the agent first connects (spreads the TLS handshakes). */
  readonly startDelayMs: number;
}

export interface WorkerSettings {
  readonly telemetryIntervalMs: number;
  readonly kernelErrors?: { readonly ratio: { readonly numerator: number; readonly denominator: number }; readonly status: 'BUSY' | 'IO_ERROR' };
}

export type ParentMessage =
  | { readonly type: 'agents'; readonly agents: readonly WorkerAgentSpec[] }
  | { readonly type: 'start'; readonly settings: WorkerSettings }
  /** Send executions and connected devices, then `collected`. */
  | { readonly type: 'collect' }
  | { readonly type: 'stop' };

export interface WorkerStatus {
  readonly agents: number;
  readonly started: number;
  readonly connected: number;
  readonly sessionsReady: number;
  readonly sessionsClosed: number;
  readonly executions: number;
  readonly rejections: number;
  readonly kernelCalls: number;
  readonly violations: number;
}

export type WorkerMessage =
  | { readonly type: 'status'; readonly status: WorkerStatus }
  | { readonly type: 'violation'; readonly message: string }
  /** [command id, kernel executions] for every command a journal marked executing. */
  | { readonly type: 'executions'; readonly items: ReadonlyArray<readonly [string, number]> }
  | { readonly type: 'connected'; readonly deviceIds: readonly string[] }
  | { readonly type: 'collected'; readonly status: WorkerStatus }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

export function* chunks<T>(items: readonly T[], size = ipcChunkItemsMax): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
