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
  /** The gateways to try, in turn, instead of trust.json's (`sdc bench connections` spreads a fleet over gateway processes started after enrollment). */
  readonly gatewayUrls?: readonly string[];
}

export interface WorkerSettings {
  readonly telemetryIntervalMs: number;
  /** Telemetry batches (the scenario's telemetrySamplesPerFrame and telemetryBatchDelayMs, AgentCoreOptions); absent: one TELEMETRY per sample. */
  readonly telemetrySamplesPerFrameMax?: number;
  readonly telemetryBatchDelayMs?: number;
  /** The agents' reconnect backoff ceiling (default 8 s). */
  readonly backoffMaxMs?: number;
  readonly kernelErrors?: { readonly ratio: { readonly numerator: number; readonly denominator: number }; readonly status: 'BUSY' | 'IO_ERROR' };
  /**
   * `sdc chaos run`: each agent's journal is a file in its directory, and every kernel call is
   * appended to a log there before it runs, so a worker killed (SIGKILL) and started again resumes
   * from its journal and still counts what the dead process executed.
   */
  readonly durableJournal?: boolean;
  /** `sdc chaos run`: the mock kernels get a status fault that is off until a `kernel_faults` message turns it on. */
  readonly switchableKernelFaults?: boolean;
  /**
   * `sdc chaos run`: the mock kernels have a session manager to lock, so EXEC_LOCK_SCREEN succeeds
   * and a failed command means a fault (default: none, EXEC_LOCK_SCREEN fails KERNEL_NOT_SUPPORTED).
   */
  readonly lockScreenSupported?: boolean;
  /**
   * `sdc chaos run --scenario ota-cut`: each agent runs the real update runner (sim/real/worker-ota.ts)
   * on its mock kernel, which starts at otaFactoryVersion and reads staged artifacts from the agent's directory.
   */
  readonly ota?: boolean;
  /**
   * With `ota`: origins besides the control plane's that the notices' artifact URLs may name (what
   * `runAgent({ ota: { artifactOrigins } })` / `sdc agent --artifact-origin` set). The chaos run's
   * presigned URLs name its `artifacts` proxy, another port than the API's: without it the runner
   * refuses them (AGENT_OTA_URL_REFUSED) and takes the TUF targets route, around the cut.
   */
  readonly otaArtifactOrigins?: readonly string[];
}

/** The worker settings a chaos scenario may ask for. */
export type ChaosWorkerSettings = Pick<WorkerSettings, 'durableJournal' | 'switchableKernelFaults' | 'lockScreenSupported' | 'ota' | 'otaArtifactOrigins'>;

/** What a chaos run asks of one device's update path (ota-cut), from the agent's side; every list bounded in worker-ota.ts. */
export interface OtaDeviceFacts {
  readonly deviceId: string;
  /** Each artifact GET: the offset its Range asked from, the status, the body bytes received, and whether it ended cut. */
  readonly requests: ReadonlyArray<{ offset: number; status: number; bytes: number; cut: boolean }>;
  /** Each completed download, as the runner logged it: its attempts and the offset each started from. */
  readonly downloads: ReadonlyArray<{ readonly attempts: number; readonly start_offsets: readonly number[] }>;
  /** The SHA-256 of the bytes each STAGE read (the mock kernel's artifact source). */
  readonly staged_sha256: readonly string[];
  /** The update's privileged kernel calls. */
  readonly kernel_calls: { readonly stage: number; readonly commit: number; readonly rollback: number };
  readonly kernel: { readonly current_version: string; readonly previous_version: string; readonly commits: number; readonly rollbacks: number; readonly stage_failures: number };
  /** The runner's execution and its state, as its journal holds it. */
  readonly execution: { readonly id: string; readonly state: string } | null;
}

/** What a chaos run asks of one device (bounded: the run asks about a few). */
export interface DeviceFacts {
  readonly deviceId: string;
  readonly ready: boolean;
  /** Commands this device's agent executed or refused, and when the last one was (wall ms). */
  readonly deliveries: number;
  readonly lastDeliveryAtMs: number | null;
  /** The last few reasons its sessions closed for (the agent core's `closed` events). */
  readonly closeReasons: readonly string[];
}

export type ParentMessage =
  | { readonly type: 'agents'; readonly agents: readonly WorkerAgentSpec[] }
  | { readonly type: 'start'; readonly settings: WorkerSettings }
  /** Send executions and connected devices, then `collected`. */
  | { readonly type: 'collect' }
  | { readonly type: 'stop' }
  /** Chaos: the switchable kernel fault's ratio (numerator 0 turns it off) and status. */
  | { readonly type: 'kernel_faults'; readonly numerator: number; readonly denominator: number; readonly status: 'BUSY' | 'IO_ERROR' }
  /** Chaos: these devices' clocks are off by skewMs from now on. */
  | { readonly type: 'clock_skew'; readonly items: ReadonlyArray<readonly [string, number]> }
  /** Chaos: answer `device_facts` for these devices (ours among them). */
  | { readonly type: 'device_facts'; readonly deviceIds: readonly string[] }
  /** Chaos (ota-cut): these devices' health checks fail from now on (their update must roll back). */
  | { readonly type: 'ota_unhealthy'; readonly deviceIds: readonly string[] }
  /** Chaos (ota-cut): answer `ota_facts` for these devices (ours among them). */
  | { readonly type: 'ota_facts'; readonly deviceIds: readonly string[] };

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
  /**
   * Telemetry as the in-process full tier counts it (sim/telemetry-tally.ts), read as frames leave
   * this worker's agents: TELEMETRY and TELEMETRY_BATCH frames, of them batches, and their samples.
   */
  readonly telemetryFramesSent: number;
  readonly telemetryBatchFramesSent: number;
  readonly telemetrySamplesSent: number;
  /** Samples in the agents' buffers now (a batch filling, or kept while disconnected). */
  readonly telemetrySamplesBuffered: number;
  /** Samples the agents dropped past their buffer bound (AgentCore.telemetrySamplesDropped). */
  readonly telemetrySamplesDropped: number;
}

/** Every counter of WorkerStatus, for the sums over workers (worker-pool.ts). */
export const workerStatusKeys = [
  'agents', 'started', 'connected', 'sessionsReady', 'sessionsClosed', 'executions', 'rejections', 'kernelCalls', 'violations',
  'telemetryFramesSent', 'telemetryBatchFramesSent', 'telemetrySamplesSent', 'telemetrySamplesBuffered', 'telemetrySamplesDropped',
] as const satisfies ReadonlyArray<keyof WorkerStatus>;
/** Type-checks only while workerStatusKeys names every counter of WorkerStatus (one added there and not here would not be summed). */
export const workerStatusKeysComplete: [Exclude<keyof WorkerStatus, (typeof workerStatusKeys)[number]>] extends [never] ? true : never = true;

export type WorkerMessage =
  | { readonly type: 'status'; readonly status: WorkerStatus }
  | { readonly type: 'violation'; readonly message: string }
  /** [command id, kernel executions] for every command a journal marked executing. */
  | { readonly type: 'executions'; readonly items: ReadonlyArray<readonly [string, number]> }
  | { readonly type: 'connected'; readonly deviceIds: readonly string[] }
  | { readonly type: 'collected'; readonly status: WorkerStatus }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'device_facts'; readonly items: readonly DeviceFacts[] }
  | { readonly type: 'ota_facts'; readonly items: readonly OtaDeviceFacts[] }
  /** The agents are stopped: their counters are final (telemetry still buffered stays counted as buffered). */
  | { readonly type: 'stopped'; readonly status: WorkerStatus };

export function* chunks<T>(items: readonly T[], size = ipcChunkItemsMax): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
