/**
 * What the simulator sees of each device's update, for the OTA checkers (sim/ota/ota-checkers.ts):
 * recorded by the simulated devices as they act, never read back by them.
 */
export interface DownloadAttempt {
  readonly startOffset: number;
  readonly status: number | 'unreachable';
  readonly atMs: number;
  /** Bytes held when the connection was cut; null when it was not. */
  cutAtOffset: number | null;
}

export interface DeviceOtaRecord {
  readonly deviceId: string;
  readonly executionId: string;
  readonly wave: number;
  readonly brick: string | null;
  readonly length: number;
  readonly attempts: DownloadAttempt[];
  downloaded: { readonly sha256: string; readonly matched: boolean } | null;
  committed: boolean;
  healthy: boolean | null;
  ended: string | null;
  readonly events: string[];
  /** True when the device's notice came without an artifact URL (the TUF targets route). */
  readonly targetsRoute: boolean;
  /** Requests for the artifact on the TUF targets route. */
  targetFetches: number;
  /** The update's kernel calls that reached the kernel, by name (stageUpdate, commitUpdate, ...). */
  readonly kernelCalls: Record<string, number>;
  /** The agent's crash in this update: at which kernel call, before or after it reached the kernel; and whether the runner was restarted from its journal. */
  crash: { readonly intent: string; readonly beforeCall: boolean; recovered: boolean } | null;
}

/** Bounded by the fleet: one record per device (its latest execution) and the refusals, at most `refusalsMax`. */
export class OtaObserver {
  readonly records = new Map<string, DeviceOtaRecord>();
  readonly refusals: Array<{ deviceId: string; executionId: string; message: string }> = [];
  static readonly refusalsMax = 100;

  taken(deviceId: string, execution: { executionId: string; wave: number; brick: string | null; length: number; targetsRoute: boolean }): void {
    this.records.set(deviceId, { deviceId, ...execution, attempts: [], downloaded: null, committed: false, healthy: null, ended: null, events: [], targetFetches: 0, kernelCalls: {}, crash: null });
  }

  targetFetched(deviceId: string): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.targetFetches += 1;
  }

  kernelCall(deviceId: string, call: string): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.kernelCalls[call] = (record.kernelCalls[call] ?? 0) + 1;
  }

  crashed(deviceId: string, crash: { intent: string; beforeCall: boolean }): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.crash = { ...crash, recovered: false };
  }

  recovered(deviceId: string): void {
    const record = this.records.get(deviceId);
    if (record?.crash != null) record.crash.recovered = true;
  }

  refused(deviceId: string, executionId: string, message: string): void {
    if (this.refusals.length < OtaObserver.refusalsMax) this.refusals.push({ deviceId, executionId, message });
  }

  attempt(deviceId: string, attempt: Omit<DownloadAttempt, 'cutAtOffset'>): void {
    this.records.get(deviceId)?.attempts.push({ ...attempt, cutAtOffset: null });
  }

  cut(deviceId: string, offset: number): void {
    const last = this.records.get(deviceId)?.attempts.at(-1);
    if (last !== undefined) last.cutAtOffset = offset;
  }

  downloaded(deviceId: string, result: { sha256: string; matched: boolean }): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.downloaded = result;
  }

  committed(deviceId: string): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.committed = true;
  }

  healthReported(deviceId: string, healthy: boolean): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.healthy = healthy;
  }

  reported(deviceId: string, event: string): void {
    this.records.get(deviceId)?.events.push(event);
  }

  ended(deviceId: string, how: string): void {
    const record = this.records.get(deviceId);
    if (record !== undefined) record.ended = how;
  }

  /** Cuts seen in all. */
  get cuts(): number {
    let n = 0;
    for (const record of this.records.values()) for (const attempt of record.attempts) if (attempt.cutAtOffset !== null) n += 1;
    return n;
  }
}
