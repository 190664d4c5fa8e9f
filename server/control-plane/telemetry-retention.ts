import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';

/**
 * How much telemetry the control plane keeps (docs/api.md, "Telemetry retention"): the newest
 * `rowsPerDeviceMax` samples of each device (a little more between passes, and ties on the oldest
 * kept sample time); older rows are deleted. Telemetry rows are not in the audit chain, so
 * deleting them changes no audit entry and no chain verification. The newest sample of a device
 * is always kept: the device list's risk score and a policy's risk condition read it.
 */
export interface TelemetryRetention {
  readonly rowsPerDeviceMax: number;
}

export const telemetryRetentionDefaults: TelemetryRetention = Object.freeze({
  /** A week of one sample a minute, or about 28 hours of one every 10 s. */
  rowsPerDeviceMax: 10_080,
});

export const telemetryRetentionLimits = Object.freeze({
  /** At least the newest sample (see TelemetryRetention). */
  rowsPerDeviceMin: 1,
  /** Far above any use of one device's history; keeps the OFFSET of the trim statement small enough to plan. */
  rowsPerDeviceCeiling: 10_000_000,
  /** Devices trimmed by one pass: one DELETE each, so a pass holds the database for a bounded time. */
  devicesPerPass: 100,
  /**
   * Rows a device may gain between two of its trims, as a fraction of its bound: a pass starts
   * after devicesPerPass x this many rows stored, so when every device sends alike each is trimmed
   * about every that many of its own rows (10 %, at least one).
   */
  slackFraction: 0.1,
});

/** Refuses a bound outside [rowsPerDeviceMin, rowsPerDeviceCeiling] (STORE_INVALID_ARGUMENT: a caller's bug; sdc serve checks its flag first). */
export function resolveTelemetryRetention(given: Partial<TelemetryRetention> | undefined): TelemetryRetention {
  const rowsPerDeviceMax = given?.rowsPerDeviceMax ?? telemetryRetentionDefaults.rowsPerDeviceMax;
  const { rowsPerDeviceMin, rowsPerDeviceCeiling } = telemetryRetentionLimits;
  if (!Number.isSafeInteger(rowsPerDeviceMax) || rowsPerDeviceMax < rowsPerDeviceMin || rowsPerDeviceMax > rowsPerDeviceCeiling) {
    throw new SdcError('STORE_INVALID_ARGUMENT', `telemetry rows kept per device must be an integer from ${rowsPerDeviceMin} to ${rowsPerDeviceCeiling}, got ${String(rowsPerDeviceMax)}`, { rowsPerDeviceMax: String(rowsPerDeviceMax) });
  }
  return { rowsPerDeviceMax };
}

export interface TelemetryTrimPass {
  readonly devices: number;
  readonly deleted: number;
}

/**
 * Enforces TelemetryRetention in passes off the ingest path: the writer calls noteStored() per
 * stored row (no await, no statement); every so many rows one pass runs in the background and
 * trims the next devicesPerPass devices that have telemetry, in device-id order, wrapping at the
 * end. The passes follow the rows stored, so the table's size stays bounded without a timer
 * (none that virtual time would have to schedule), and an idle control plane does no work.
 * One pass at a time; a failed pass is logged and the next one starts after the same count.
 */
export class TelemetryTrimmer {
  readonly #db: SqlDatabase;
  readonly #logger: Logger | undefined;
  readonly #rowsPerDeviceMax: number;
  /** Rows stored between two passes. */
  readonly #rowsPerPass: number;
  #rowsSincePass = 0;
  /** The last device id trimmed; '' starts from the first. */
  #cursor = '';
  #running: Promise<void> | undefined;
  /** Rows deleted since start (a metric, and for tests). */
  deletedTotal = 0;
  passesTotal = 0;

  constructor(options: { db: SqlDatabase; retention?: Partial<TelemetryRetention>; logger?: Logger }) {
    this.#db = options.db;
    this.#logger = options.logger;
    this.#rowsPerDeviceMax = resolveTelemetryRetention(options.retention).rowsPerDeviceMax;
    const slackRows = Math.max(1, Math.floor(this.#rowsPerDeviceMax * telemetryRetentionLimits.slackFraction));
    this.#rowsPerPass = telemetryRetentionLimits.devicesPerPass * slackRows;
  }

  /** One telemetry row stored: starts a pass in the background once enough rows came in since the last. */
  noteStored(): void {
    this.#rowsSincePass += 1;
    if (this.#rowsSincePass < this.#rowsPerPass || this.#running !== undefined) return;
    this.#rowsSincePass = 0;
    this.#running = this.trimNext()
      .then(() => undefined, (error: unknown) => { this.#logger?.warn({ err: error }, 'telemetry retention pass failed; the next one retries'); })
      .finally(() => { this.#running = undefined; });
  }

  /** Resolves when no pass is running (stop, tests). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** One pass now: the next devices after the cursor, each cut to its newest rowsPerDeviceMax rows. */
  async trimNext(): Promise<TelemetryTrimPass> {
    const devices = await this.#db.query<{ device_id: string }>(
      'SELECT DISTINCT device_id FROM telemetry WHERE device_id > ? ORDER BY device_id LIMIT ?',
      [this.#cursor, telemetryRetentionLimits.devicesPerPass],
    );
    // Past the last device: the next pass starts again from the first.
    this.#cursor = devices.length < telemetryRetentionLimits.devicesPerPass ? '' : devices[devices.length - 1]!.device_id;
    let deleted = 0;
    for (const { device_id: deviceId } of devices) deleted += await this.#trimDevice(deviceId);
    this.deletedTotal += deleted;
    this.passesTotal += 1;
    if (deleted > 0) this.#logger?.debug({ devices: devices.length, deleted }, 'telemetry retention pass');
    return { devices: devices.length, deleted };
  }

  /**
   * Deletes the device's rows older than its rowsPerDeviceMax-th newest sample time; none when it
   * has fewer (the subquery is empty, `ts < NULL` matches nothing). The derived table is what
   * MySQL needs to read the table a DELETE writes (error 1093 otherwise); SQLite takes it as is.
   */
  async #trimDevice(deviceId: string): Promise<number> {
    const result = await this.#db.execute(
      `DELETE FROM telemetry WHERE device_id = ? AND ts < (
        SELECT ts FROM (SELECT ts FROM telemetry WHERE device_id = ? ORDER BY ts DESC LIMIT 1 OFFSET ?) AS oldest_kept
      )`,
      [deviceId, deviceId, this.#rowsPerDeviceMax - 1],
    );
    return result.changes;
  }
}
