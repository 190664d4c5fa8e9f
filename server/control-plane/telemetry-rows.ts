import { SdcError } from '../../core/errors/index.js';
import type { SqlDatabase } from '../stores/sql/sql-port.js';

export interface TelemetryRow {
  readonly deviceId: string;
  readonly sampledAtMs: number;
  readonly metricsJson: string;
  readonly riskScore: number;
}

export const telemetryRowLimits = Object.freeze({
  /** Rows per INSERT: 4 parameters each (2,048 at most), far below either dialect's bound on parameters (32,766 for sql.js's SQLite, 65,535 for MySQL). */
  rowsPerInsertMax: 512,
  /** Rows waiting for the next INSERT: beyond it insert() refuses (STORE_LIMIT) and the entry is retried. */
  waitingMax: 20_000,
});

/**
 * The control plane's telemetry consumer (StreamConsumer options): entries per read, handlers at
 * once and entries read but unfinished. Each handler holds its slot until its row is stored, so
 * the handlers running at once bound the rows of one INSERT: with the events consumer's 64 the
 * writer's INSERTs carried 32-36 rows on Redis + MariaDB in the ingest bench (99-126 with these),
 * each its own autocommit and socket write, and the read of 64 entries per XREADGROUP kept the
 * pipeline short (issue 17; docs/benchmarks.md, 2026-12-04 night). Telemetry
 * handlers are short and independent across devices, so more of them at once cost only memory:
 * at most entriesInFlightMax entries of at most 64 KiB each stay in memory.
 */
export const telemetryConsumerOptions = Object.freeze({ batchSize: 256, partitionsInFlightMax: 256, entriesInFlightMax: 1024 });

interface Waiting {
  readonly row: TelemetryRow;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit for the telemetry writer: the samples that concurrent stream handlers store while
 * an INSERT is in flight go into the next one, many rows per statement (issue 17: one statement
 * per sample was most of the writer's SQL cost). Each caller still awaits its own row, so the
 * stream entry is acked only after its row is stored. When a multi-row INSERT fails, its rows
 * are tried one by one, so one bad row cannot fail the samples that shared its statement. The
 * first flush is a microtask: no timer, no added latency, and virtual time is untouched.
 */
export class TelemetryRowWriter {
  #waiting: Waiting[] = [];
  #writing = false;
  #flushQueued = false;

  constructor(private readonly db: SqlDatabase) {}

  insert(row: TelemetryRow): Promise<void> {
    if (this.#waiting.length >= telemetryRowLimits.waitingMax) {
      return Promise.reject(new SdcError('STORE_LIMIT', `${telemetryRowLimits.waitingMax} telemetry rows already wait for an INSERT`));
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ row, resolve, reject });
      if (!this.#writing && !this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => { void this.#flush(); });
      }
    });
  }

  async #flush(): Promise<void> {
    this.#flushQueued = false;
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, telemetryRowLimits.rowsPerInsertMax);
        await this.#write(batch);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #write(batch: readonly Waiting[]): Promise<void> {
    try {
      await this.#insert(batch.map((w) => w.row));
      for (const waiting of batch) waiting.resolve();
      return;
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
    }
    for (const waiting of batch) {
      try {
        await this.#insert([waiting.row]);
        waiting.resolve();
      } catch (error) {
        waiting.reject(error);
      }
    }
  }

  async #insert(rows: readonly TelemetryRow[]): Promise<void> {
    const params = rows.flatMap((r) => [r.deviceId, r.sampledAtMs, r.metricsJson, r.riskScore]);
    await this.db.execute(`INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES ${rows.map(() => '(?, ?, ?, ?)').join(', ')}`, params);
  }
}
