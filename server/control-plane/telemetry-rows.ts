import * as nodeCrypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { ExecuteResult, SqlDatabase } from '../stores/sql/sql-port.js';

/** Node's one-shot hash (20.12 and later), undefined before it: typed loosely so 20.10's module shape also type-checks. */
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

export interface TelemetryRow {
  readonly deviceId: string;
  readonly sampledAtMs: number;
  /** The canonical JSON (RFC 8785, canonicalMetricsJson) of the sample's metrics: equal metrics, equal text, equal digest. */
  readonly metricsJson: string;
  readonly riskScore: number;
}

/** Parameters of one row in the writer's INSERT: device_id, ts, metrics_json, risk_score, sample_digest (tests and the simulator's tally read rows from them). */
export const telemetryInsertParamsPerRow = 5;

/**
 * The canonical JSON (RFC 8785) of a sample's metrics: what the row stores and its digest covers.
 * A flat object of finite numbers whose members come in sorted order already (a frame travels as
 * canonical JSON, so its parse keeps that order: every sample from an agent) is exactly what
 * JSON.stringify writes, since RFC 8785 writes strings and numbers as ECMAScript's JSON.stringify
 * does; that path costs about a quarter of canonicalize's CPU per sample (0.6-0.8 against 2.5-3 µs
 * on this machine, loaded). Anything else (members out of order, a nested value) goes through
 * canonicalize, which also refuses what JCS cannot represent.
 */
export function canonicalMetricsJson(metrics: object): string {
  let previous: string | undefined;
  for (const name in metrics) {
    if (!Object.hasOwn(metrics, name)) continue;
    const value = (metrics as Record<string, unknown>)[name];
    // UTF-16 code unit order, as RFC 8785 sorts members; the loop sees them in JSON.stringify's order.
    if (typeof value !== 'number' || !Number.isFinite(value) || (previous !== undefined && !(previous < name))) return canonicalize(metrics);
    previous = name;
  }
  return JSON.stringify(metrics);
}

/**
 * The sample_digest of a row whose metrics are `metricsJson` (canonical JSON): the first 53 bits of
 * its SHA-256 as a non-negative safe integer (a BIGINT column; migration 020,
 * docs/decisions/0012-telemetry-sample-identity.md). It only has to tell apart two different
 * samples of the same device in the same millisecond; a collision stores one of them only. Per
 * such pair the odds are 2^-53 (about 1e-16): a device sending a batch of 64 samples all in one
 * millisecond (the most one frame holds; agents sample at intervals, so their samples rarely
 * share a millisecond at all) every second, 10,000 such devices for a year, meet one collision
 * at odds of about 7 % (2,016 pairs per batch, 3e11 batches); a real fleet is orders of
 * magnitude below that. A number, not 128 bits in hex (the first form of migration 020, never
 * released): 8 bytes in the key instead of 32, no hex string per sample, and no BigInt, which
 * neither driver returns by default (issue 17: on sql.js the hex form added about 5 µs of CPU per
 * row to the INSERT, the integer about 3; docs/benchmarks.md, 2026-12-05 evening (later)). The
 * one-shot crypto.hash (Node 20.12) costs about a third of a createHash object per sample;
 * createHash where it is missing (engines allows 20.10).
 */
export function sampleDigestOf(metricsJson: string): number {
  const hex = oneShotHash === undefined ? createHash('sha256').update(metricsJson, 'utf8').digest('hex') : oneShotHash('sha256', metricsJson, 'hex');
  // 13 hex digits are 52 bits, exact in a double; the 14th digit's top bit makes the 53rd.
  return Number.parseInt(hex.slice(0, 13), 16) * 2 + (Number.parseInt(hex[13]!, 16) >>> 3);
}

/**
 * Samples of a statement that were there already (a duplicate delivery): skipped by the INSERT's
 * ON DUPLICATE KEY UPDATE / ON CONFLICT DO NOTHING. SQLite leaves them out of `changes`; MySQL
 * (mysql2 asks for found rows) counts them in `changes` and names them in `duplicates`, a
 * multi-row statement's only. A one-row statement met a duplicate iff it answers an insert id:
 * the table has no AUTO_INCREMENT column (migration 024), so only the update's
 * `LAST_INSERT_ID(1)`, which runs for a duplicate alone, sets one.
 */
function duplicatesOf(db: SqlDatabase, rowCount: number, result: ExecuteResult): number {
  if (db.dialect === 'sqlite') return rowCount - result.changes;
  if (rowCount === 1) return result.lastInsertId === undefined ? 0 : 1;
  return result.duplicates ?? 0;
}

/**
 * The MySQL form's no-op update: `ts` keeps its value (0 times anything), and LAST_INSERT_ID(1)
 * makes a one-row statement that met a duplicate answer insert id 1 (duplicatesOf). Checked on
 * MariaDB 10.11: a stored sample answers no insert id, a duplicate 1, the row unchanged.
 */
const mysqlOnDuplicate = 'ON DUPLICATE KEY UPDATE ts = ts + 0 * LAST_INSERT_ID(1)';
const sqliteOnConflict = 'ON CONFLICT (device_id, ts, sample_digest) DO NOTHING';

/** The INSERT's text per row count and dialect (the same few counts recur: 1, a frame's K, the batch bound). */
const insertTexts = new Map<string, string>();
const insertTextsMax = 1_024;

function insertText(dialect: SqlDatabase['dialect'], rowCount: number): string {
  const key = `${dialect} ${rowCount}`;
  let text = insertTexts.get(key);
  if (text === undefined) {
    text = `INSERT INTO telemetry (device_id, ts, metrics_json, risk_score, sample_digest) VALUES (?, ?, ?, ?, ?)${', (?, ?, ?, ?, ?)'.repeat(rowCount - 1)} ${dialect === 'sqlite' ? sqliteOnConflict : mysqlOnDuplicate}`;
    if (insertTexts.size >= insertTextsMax) insertTexts.clear();
    insertTexts.set(key, text);
  }
  return text;
}

export const telemetryRowLimits = Object.freeze({
  /** Rows per INSERT: 5 parameters each (2,560 at most), far below either dialect's bound on parameters (32,766 for sql.js's SQLite, 65,535 for MySQL). */
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
 * Nor can any other second delivery (migration 020): a sample already stored (same device, ts and
 * metrics digest) is skipped by the statement itself and counted (`onDuplicates`), so a frame
 * whose samples were all stored before still resolves as stored.
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

  readonly #onDuplicates: (duplicates: number, rows: number) => void;

  /**
   * `onDuplicates`: called after an INSERT that met samples stored already (skipped, not stored
   * again), with their count and the statement's rows (the duplicates counter and its log line).
   */
  constructor(private readonly db: SqlDatabase, options: { onDuplicates?: (duplicates: number, rows: number) => void } = {}) {
    this.#onDuplicates = options.onDuplicates ?? (() => undefined);
  }

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

  /**
   * A sample stored already (same device, ts and sample_digest: a retried append, a redelivered
   * entry, a resend) is skipped, not stored again and not an error, so a statement's other rows
   * are stored and the entry is acked. Only that key's conflict is skipped: MySQL's INSERT IGNORE
   * (and SQLite's OR IGNORE) would also turn other refusals (a truncated value, a NULL in a NOT
   * NULL column) into warnings and silently drop or change the row, so the MySQL form is a no-op
   * ON DUPLICATE KEY UPDATE and the SQLite one names the key's columns.
   */
  async #insert(rows: readonly TelemetryRow[]): Promise<void> {
    const params = new Array<string | number>(rows.length * telemetryInsertParamsPerRow);
    let at = 0;
    for (const r of rows) {
      params[at++] = r.deviceId;
      params[at++] = r.sampledAtMs;
      params[at++] = r.metricsJson;
      params[at++] = r.riskScore;
      params[at++] = sampleDigestOf(r.metricsJson);
    }
    const result = await this.db.execute(insertText(this.db.dialect, rows.length), params);
    const duplicates = duplicatesOf(this.db, rows.length, result);
    if (duplicates > 0) this.#onDuplicates(duplicates, rows.length);
  }
}
