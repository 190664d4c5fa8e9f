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
  /**
   * INSERTs in flight at once. The first always goes; another starts only for a full batch (one
   * that cannot take the next group), so at light load the writer sends the same few, large
   * statements as with one in flight, and with a backlog the real stores' round trips overlap
   * instead of adding up (issue 17: with one INSERT in flight the Redis + MariaDB ingest kept
   * its window full at 0.66-0.94 cores; docs/benchmarks.md, 5 December afternoon). Each INSERT
   * holds a pooled connection (mysql2's default pool is 10, shared with the other handlers), and
   * the rows they hold are within waitingMax. A device's rows never race each other: the telemetry
   * consumer handles a device's entries one after another, each after the previous one's rows
   * were stored (and the rows carry their own sampled_at anyway).
   */
  insertsInFlightMax: 4,
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

/** Where a row (or a frame's rows) went: its INSERT's outcome, shared by every row of it, and its place in it. */
export interface TelemetryRowTicket {
  /** Resolves once the row's INSERT is done (never rejects): undefined when every row was stored, else the failed groups' errors by index. */
  readonly failures: Promise<ReadonlyMap<number, unknown> | undefined>;
  /** The group's index in its INSERT (a group: the rows of one add or addFrame call). */
  readonly index: number;
}

/** The rows of one INSERT (at most rowsPerInsertMax, unless one frame's group is larger) in groups, and the one promise their callers wait on. */
interface Batch {
  readonly groups: (readonly TelemetryRow[])[];
  rowCount: number;
  readonly failures: Promise<ReadonlyMap<number, unknown> | undefined>;
  settle(failures: ReadonlyMap<number, unknown> | undefined): void;
}

function newBatch(): Batch {
  let settle!: (failures: ReadonlyMap<number, unknown> | undefined) => void;
  const failures = new Promise<ReadonlyMap<number, unknown> | undefined>((resolve) => { settle = resolve; });
  return { groups: [], rowCount: 0, failures, settle };
}

/**
 * Group commit for the telemetry writer: the samples that concurrent stream handlers store while
 * an INSERT is in flight go into the next one, many rows per statement (issue 17: one statement
 * per sample was most of the writer's SQL cost). Each caller still awaits its own rows, so the
 * stream entry is acked only after its rows are stored. When a multi-row INSERT fails, its groups
 * are tried one by one, so one bad row cannot fail the samples that shared its statement. The
 * first flush is a microtask: no timer, no added latency, and virtual time is untouched. With a
 * backlog of full batches, up to insertsInFlightMax INSERTs run at once; each batch settles its
 * own callers when its own INSERT is done, so an entry is never acked before its rows are stored,
 * whichever INSERT finishes first, and a failed INSERT fails (and gets redelivered) only the
 * entries whose rows it held.
 *
 * A group is the rows of one stream entry: one sample (`add`), or every sample of a
 * TELEMETRY_BATCH frame (`addFrame`). A group is never split across INSERTs and is retried as one
 * statement, so a frame's samples are stored all together or not at all (one statement is atomic
 * in both dialects), and the entry's redelivery after a failure cannot store a sample twice.
 *
 * The rows of one INSERT wait on one promise (`add`), not a promise and two closures each (issue
 * 17: the telemetry handler's promises per sample); `insert` is the same with a row's own outcome.
 */
export class TelemetryRowWriter {
  /** Rows waiting for an INSERT, in order, each batch at most rowsPerInsertMax rows (only the last one takes more). */
  #batches: Batch[] = [];
  #waitingRows = 0;
  /** INSERTs in flight (at most insertsInFlightMax), and whether a start is already queued for the next microtask. */
  #writing = 0;
  #flushQueued = false;

  constructor(private readonly db: SqlDatabase) {}

  /** INSERTs in flight now (at most telemetryRowLimits.insertsInFlightMax). */
  get insertsInFlight(): number {
    return this.#writing;
  }

  /** Stores the row with the others of its INSERT; resolves once it is stored, or rejects with its own error. */
  async insert(row: TelemetryRow): Promise<void> {
    const ticket = this.add(row);
    const failures = await ticket.failures;
    if (failures !== undefined && failures.has(ticket.index)) throw failures.get(ticket.index);
  }

  /** The row is queued for the next INSERT; throws STORE_LIMIT (nothing queued) when waitingMax rows already wait. */
  add(row: TelemetryRow): TelemetryRowTicket {
    return this.addFrame([row]);
  }

  /**
   * One frame's rows (1 to a TELEMETRY_BATCH's samples), queued for the same INSERT; throws
   * STORE_LIMIT (nothing queued) when they would take the waiting rows past waitingMax.
   */
  addFrame(rows: readonly TelemetryRow[]): TelemetryRowTicket {
    if (rows.length === 0) throw new SdcError('STORE_INVALID_ARGUMENT', 'a telemetry frame has at least one row');
    if (this.#waitingRows + rows.length > telemetryRowLimits.waitingMax) {
      throw new SdcError('STORE_LIMIT', `${telemetryRowLimits.waitingMax} telemetry rows already wait for an INSERT`);
    }
    let batch = this.#batches.at(-1);
    if (batch === undefined || (batch.rowCount > 0 && batch.rowCount + rows.length > telemetryRowLimits.rowsPerInsertMax)) {
      batch = newBatch();
      this.#batches.push(batch);
    }
    const index = batch.groups.push(rows) - 1;
    batch.rowCount += rows.length;
    this.#waitingRows += rows.length;
    if (!this.#flushQueued && this.#mayStart()) {
      this.#flushQueued = true;
      queueMicrotask(() => { this.#flushQueued = false; this.#startReady(); });
    }
    return { failures: batch.failures, index };
  }

  /**
   * Whether the oldest waiting batch may go now: always when no INSERT is in flight (the first
   * flush is a microtask, so the rows added in the same turn join it), else only when it is full
   * (a later batch was opened behind it, or it is at rowsPerInsertMax) and fewer than
   * insertsInFlightMax INSERTs are in flight.
   */
  #mayStart(): boolean {
    const head = this.#batches[0];
    if (head === undefined) return false;
    if (this.#writing === 0) return true;
    return this.#writing < telemetryRowLimits.insertsInFlightMax && (this.#batches.length > 1 || head.rowCount >= telemetryRowLimits.rowsPerInsertMax);
  }

  /** Starts every batch that may go now, oldest first. */
  #startReady(): void {
    while (this.#mayStart()) {
      const batch = this.#batches.shift()!;
      this.#waitingRows -= batch.rowCount;
      this.#writing += 1;
      void this.#write(batch.groups).then((failures) => {
        this.#writing -= 1;
        batch.settle(failures);
        this.#startReady();
      });
    }
  }

  /** Undefined when every row was stored; else the errors of the groups that were not, by index. */
  async #write(groups: readonly (readonly TelemetryRow[])[]): Promise<ReadonlyMap<number, unknown> | undefined> {
    try {
      await this.#insert(groups.length === 1 ? groups[0]! : groups.flat());
      return undefined;
    } catch (error) {
      if (groups.length === 1) return new Map([[0, error]]);
    }
    const failures = new Map<number, unknown>();
    for (const [index, rows] of groups.entries()) {
      try {
        await this.#insert(rows);
      } catch (error) {
        failures.set(index, error);
      }
    }
    return failures.size === 0 ? undefined : failures;
  }

  async #insert(rows: readonly TelemetryRow[]): Promise<void> {
    const params = rows.flatMap((r) => [r.deviceId, r.sampledAtMs, r.metricsJson, r.riskScore]);
    await this.db.execute(`INSERT INTO telemetry (device_id, ts, metrics_json, risk_score) VALUES ${rows.map(() => '(?, ?, ?, ?)').join(', ')}`, params);
  }
}
