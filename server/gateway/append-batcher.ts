import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import type { Logger } from 'pino';
import type { StreamBus } from '../stores/bus/bus-port.js';

export interface AppendBatcherOptions<T = Record<string, string>> {
  readonly bus: StreamBus;
  readonly stream: string;
  readonly maxLen: number;
  /** Entries per appendBatch (one pipeline); 1 appends one by one, as without a batcher. */
  readonly entriesMax: number;
  /** Entries waiting for the next flush, across all sessions: beyond it append() refuses (STORE_LIMIT). */
  readonly waitingMax: number;
  /**
   * The gateway's presence refresh window: waiting entries are written when a window closes
   * (`flushWindow()`, so their write goes out in the same turn as the refreshes') or, if none
   * closes first, by their own timer two windows after the first of them. Two, not one: the
   * entries mostly come from frames forwarded as one window's refreshes are answered, and the next
   * window (opened by a later frame) closes up to a window after that. 0 (the default, the
   * simulator's) writes at the end of the turn, as before.
   */
  readonly windowMs?: number;
  /** Needed when windowMs > 0 or entriesMax > 1 (the retry after a failed write waits on it). */
  readonly schedule?: (delayMs: number, run: () => void) => TimerHandle;
  readonly cancel?: (timer: TimerHandle) => void;
  /** A crashed gateway (abort) writes nothing more: its waiting entries are refused, not written. */
  readonly aborted?: () => boolean;
  /** Where a held batch (a failed write retried) and its final write are logged; none: not logged (tests). */
  readonly logger?: Logger;
  /**
   * Turns a flush's items, in write order, into the entries appended (decision 0023: the gateway
   * puts several devices' telemetry frames in one entry). Run once per batch, at its first write;
   * a retry writes the same entries. With it only write() is offered (an item has no entry id of
   * its own), and a batch closes at `itemsPerFlushMax` items rather than entriesMax. A packing
   * gives at most one entry per item, so itemsPerFlushMax up to busLimits.batchEntriesMax keeps a
   * flush within one appendBatch. Without it an item is its entry.
   */
  readonly pack?: (items: readonly T[]) => Array<Record<string, string>>;
  /** Items that close a batch when `pack` is given (at most waitingMax); default entriesMax. */
  readonly itemsPerFlushMax?: number;
}

/**
 * The errors a write is held and retried for: those an outage causes, the bus could not be reached
 * or the connection was lost, and that end when it is back. STORE_UNAVAILABLE: refused, reset, timed
 * out, the connection closed (redis-errors.ts mapRedisError). STORE_COMMIT_UNKNOWN: the connection
 * lost with the write in flight (a SQL adapter's code; the bus adapters raise none today): the same
 * case as a lost reply, the write retried whole. Every other error recurs however long we wait
 * (STORE_CORRUPT from a malformed reply, STORE_CLOSED, STORE_INVALID_ARGUMENT and STORE_LIMIT from
 * the adapter's own checks, STORE_CONFLICT, STORE_QUERY_FAILED, an error not ours: a bug), and a
 * held batch would stall every later one behind it for good: it is rejected to its callers at once,
 * whose session task logs it (as before the retry, 200966a).
 */
export const appendRetriedCodes: ReadonlySet<string> = new Set(['STORE_UNAVAILABLE', 'STORE_COMMIT_UNKNOWN']);

const isOutage = (error: unknown): boolean => error instanceof SdcError && appendRetriedCodes.has(error.code);

/**
 * The wait before writing held batches again after a failed write: firstDelayMs, doubling after
 * each failure in a row, at most maxDelayMs. A Redis restart or failover takes seconds; 5 s keeps a
 * long outage to one failed write per 5 s per gateway, and a sample written at most 5 s after the
 * bus is back. No jitter: one writer per gateway, not a crowd of devices retrying together.
 */
export const appendRetryLimits = { firstDelayMs: 250, maxDelayMs: 5_000 } as const;

/** Entries going out in one appendBatch, and the one promise their callers wait on. */
interface Batch {
  /** Creation order: a failed batch goes back among the held ones in this order. */
  readonly seq: number;
  /** appendBatch calls made for it (the log line when a held batch is finally written). */
  attempts: number;
  readonly entries: unknown[];
  /** `entries` as appended (packed once, at the first write: a retry appends the same). */
  packed: Array<Record<string, string>> | undefined;
  /** The ids, in the order of `entries`. */
  readonly ids: Promise<readonly string[]>;
  /** The same outcome without the ids, for callers that need none (write()); settled in the same job as `ids`, as a caller's own promise was. */
  readonly written: Promise<void>;
  settle(outcome: { ids: readonly string[] } | { error: unknown }): void;
}

function newBatch(seq: number): Batch {
  let settleIds!: (outcome: { ids: readonly string[] } | { error: unknown }) => void;
  let settleWritten!: (outcome: { ids: readonly string[] } | { error: unknown }) => void;
  const ids = new Promise<readonly string[]>((resolve, reject) => { settleIds = (o) => ('error' in o ? reject(o.error) : resolve(o.ids)); });
  const written = new Promise<void>((resolve, reject) => { settleWritten = (o) => ('error' in o ? reject(o.error) : resolve()); });
  // Nobody may wait on one of the two (every caller of the batch used the other): not an unhandled rejection.
  ids.catch(() => undefined);
  written.catch(() => undefined);
  return { seq, attempts: 0, entries: [], packed: undefined, ids, written, settle: (outcome) => { settleIds(outcome); settleWritten(outcome); } };
}

/**
 * Collects the appends to one stream (many sessions' telemetry) and writes them with one
 * appendBatch each `entriesMax`. Each caller still awaits its own entry, so a session's frames
 * reach the stream in order and a failure reaches every caller whose entry was in the failed batch.
 *
 * With `windowMs` 0 the appends of one turn of the event loop are joined (a microtask flush: no
 * latency added, the simulator's virtual time untouched). With a window (a deployed gateway) they
 * wait for the presence refresh window to close: at 2,000 agents on the standard profile each
 * telemetry append was otherwise a write of its own and a wake-up of its own for its reply
 * (Redis MONITOR: every XADD alone; docs/benchmarks.md, 2026-12-04 morning).
 *
 * A failed write (the bus is down: appendRetriedCodes, STORE_UNAVAILABLE) is not passed to the
 * callers, and is logged (warn: entries, attempt, next delay; the backoff bounds the rate): its batch is held, in creation order before every later batch, and written again after
 * appendRetryLimits' backoff, the held batches one at a time, oldest first, until the bus takes
 * them; the callers' promises stay pending until their entry is written. The gateway's telemetry
 * has no acknowledgement (the agent never sends a sample again), so an error here was a sample
 * lost to a transient outage (chaos redis-cut, docs/chaos.md 2026-12-05 afternoon). The session
 * waits for its write before its next frame (its serial tasks), so its frames keep their order, and
 * its queued-work bound (sessionTasksMax) still limits what an outage makes it hold; held entries
 * count towards waitingMax. Not retried: an aborted gateway (a crash) writes nothing more, and
 * after stopWaiting() a failure reaches the callers as before (a stop must end); nor any error that
 * is not an outage's (appendRetriedCodes): it reaches the callers at once, and later batches go on.
 *
 * A retry may store an entry twice: Redis runs a batch as scripts of appendScriptEntriesMax XADDs
 * (redis-stream-bus.ts), so a batch whose scripts ran but whose reply was lost (the connection cut
 * after Redis ran them), or whose first script ran and a later one failed, is written again whole.
 * The telemetry writer (control-plane/telemetry-rows.ts) INSERTs every entry it reads, with no
 * unique key on the telemetry table, so such an entry becomes two telemetry rows. A duplicate at
 * the edge of an outage is the price of losing none; the stream consumer is at least once already
 * (an entry redelivered after its INSERT but before its ack is stored twice too).
 *
 * Only the batched path (entriesMax > 1, every deployed gateway: deployment.ts) is retried; with
 * entriesMax 1 (the simulator's default) each append goes to the bus as before and its failure
 * reaches its caller, so the simulator's traces are unchanged.
 */
export class AppendBatcher<T = Record<string, string>> {
  /** The entries waiting for the next flush (at most entriesMax: a full batch is written at once). */
  #waiting: Batch | undefined;
  #flushQueued = false;
  #timer: TimerHandle | undefined;
  #windowMs: number;
  #nextSeq = 0;
  /** Batches whose write failed, and batches formed while they wait (so none overtakes them), oldest first. */
  readonly #held: Batch[] = [];
  /** Entries in #held: with the waiting batch's, bounded by waitingMax. */
  #heldEntries = 0;
  /** Failed writes in a row: the next retry's backoff. 0: not retrying. */
  #failures = 0;
  #retryTimer: TimerHandle | undefined;
  /** A held batch is being written (#drain runs). */
  #draining = false;
  #stopping = false;

  readonly #itemsPerFlushMax: number;

  constructor(private readonly options: AppendBatcherOptions<T>) {
    if (!Number.isSafeInteger(options.entriesMax) || options.entriesMax < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'entriesMax must be a positive integer');
    this.#itemsPerFlushMax = options.pack === undefined ? options.entriesMax : (options.itemsPerFlushMax ?? options.entriesMax);
    if (options.pack !== undefined && (!Number.isSafeInteger(this.#itemsPerFlushMax) || this.#itemsPerFlushMax < 1 || this.#itemsPerFlushMax > options.waitingMax)) {
      throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'itemsPerFlushMax must be a positive integer, at most waitingMax');
    }
    this.#windowMs = options.windowMs ?? 0;
    if (!Number.isSafeInteger(this.#windowMs) || this.#windowMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'windowMs must be a non-negative integer');
    if ((this.#windowMs > 0 || options.entriesMax > 1) && (options.schedule === undefined || options.cancel === undefined)) {
      throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'a window or a batch (its retry) needs schedule and cancel');
    }
  }

  /** Appends the entry with the others of its batch; resolves to its id once the batch is written. */
  append(fields: T): Promise<string> {
    const { bus, stream, maxLen, entriesMax } = this.options;
    if (this.options.pack !== undefined) return Promise.reject(new SdcError('GATEWAY_INVALID_ARGUMENT', 'a packing batcher offers write() only'));
    if (entriesMax === 1) return bus.append(stream, fields as Record<string, string>, { maxLen });
    const added = this.#add(fields);
    if (added instanceof Error) return Promise.reject(added);
    return added.batch.ids.then((ids) => ids[added.index] as string);
  }

  /**
   * append() for a caller that needs no id (the gateway's telemetry): it waits on its batch's one
   * promise, not on a promise of its own, one fewer per sample (issue 17). The same order and outcome.
   */
  write(fields: T): Promise<void> {
    const { bus, stream, maxLen, entriesMax, pack } = this.options;
    if (entriesMax === 1 && pack === undefined) return bus.append(stream, fields as Record<string, string>, { maxLen }).then(() => undefined);
    const added = this.#add(fields);
    return added instanceof Error ? Promise.reject(added) : added.batch.written;
  }

  /** Puts the entry in the waiting batch (written at once when full, else at the end of the turn or the window); STORE_LIMIT beyond waitingMax. */
  #add(fields: T): { batch: Batch; index: number } | SdcError {
    const { stream, waitingMax } = this.options;
    const batch = this.#waiting ??= newBatch(this.#nextSeq++);
    if (batch.entries.length + this.#heldEntries >= waitingMax) return new SdcError('STORE_LIMIT', `${waitingMax} appends to ${stream} already wait for a flush`);
    const index = batch.entries.push(fields) - 1;
    if (batch.entries.length >= this.#itemsPerFlushMax) this.#flush();
    else if (this.#windowMs > 0) this.#timer ??= this.options.schedule!(2 * this.#windowMs, () => this.#flush());
    else if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
    return { batch, index };
  }

  /**
   * The gateway is stopping: what waits goes out now, and later appends (frames its sessions still
   * forward while they close) at the end of their turn, as without a window. A stop must not wait
   * for a window's timer: timers are unref'd, and a stop waited on by nothing else would end the
   * process with the entries unwritten.
   */
  stopWaiting(): void {
    this.#windowMs = 0;
    this.#stopping = true;
    if (this.#waiting !== undefined) this.#flush();
    // Held batches get one more write now, not after the backoff: a stop must not wait on a timer.
    if (this.#retryTimer !== undefined) {
      this.options.cancel!(this.#retryTimer);
      this.#retryTimer = undefined;
      void this.#drain();
    }
  }

  /** Entries held for a retry after a failed write (for tests and gauges). */
  get heldEntries(): number {
    return this.#heldEntries;
  }

  /** The presence window closed: what waits goes out now, in the same turn as the refreshes. */
  flushWindow(): void {
    if (this.#waiting !== undefined) this.#flush();
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#timer !== undefined) {
      this.options.cancel!(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#waiting;
    this.#waiting = undefined;
    if (batch === undefined) return;
    if (this.options.aborted?.() === true) {
      batch.settle({ error: shuttingDown() });
      return;
    }
    // Held batches are written first: this one waits behind them.
    if (this.#failures > 0 || this.#draining) {
      this.#hold(batch);
      return;
    }
    batch.attempts += 1;
    let entries: Array<Record<string, string>>;
    try {
      entries = this.#entriesOf(batch);
    } catch (error) {
      // Not an outage: a packing that fails (items a caller should not have written) fails again on every retry.
      batch.settle({ error });
      return;
    }
    this.options.bus.appendBatch(this.options.stream, entries, { maxLen: this.options.maxLen }).then((ids) => batch.settle({ ids }), (error: unknown) => {
      if (this.options.aborted?.() === true || this.#stopping || !isOutage(error)) batch.settle({ error });
      else {
        this.#hold(batch);
        // A retry already due (another batch failed first) or a drain running writes this one too.
        const delayMs = !this.#draining && this.#retryTimer === undefined ? this.#scheduleRetry() : undefined;
        this.#logHeld(batch, error, delayMs);
      }
    });
  }

  /** The batch's entries as appended: its items, or their packing (made once, so every retry appends the same entries). */
  #entriesOf(batch: Batch): Array<Record<string, string>> {
    const { pack } = this.options;
    if (pack === undefined) return batch.entries as Array<Record<string, string>>;
    return batch.packed ??= pack(batch.entries as T[]);
  }

  /** Puts the batch among the held ones, in creation order (a batch written before the outage may fail after a later one). */
  #hold(batch: Batch): void {
    let at = this.#held.length;
    while (at > 0 && this.#held[at - 1]!.seq > batch.seq) at -= 1;
    this.#held.splice(at, 0, batch);
    this.#heldEntries += batch.entries.length;
  }

  #unhold(batch: Batch): void {
    const at = this.#held.indexOf(batch);
    if (at >= 0) {
      this.#held.splice(at, 1);
      this.#heldEntries -= batch.entries.length;
    }
  }

  /** Schedules the next write of the held batches; returns its delay. */
  #scheduleRetry(): number {
    this.#failures += 1;
    const delayMs = Math.min(appendRetryLimits.maxDelayMs, appendRetryLimits.firstDelayMs * 2 ** Math.min(this.#failures - 1, 30));
    this.#retryTimer = this.options.schedule!(delayMs, () => {
      this.#retryTimer = undefined;
      void this.#drain();
    });
    return delayMs;
  }

  /** A failed write held for a retry: one line per failed write (the backoff bounds their rate). */
  #logHeld(batch: Batch, error: unknown, nextRetryMs: number | undefined): void {
    this.options.logger?.warn({
      err: error, stream: this.options.stream, entries: batch.entries.length, held_entries: this.#heldEntries,
      attempt: batch.attempts, failures_in_a_row: this.#failures, next_retry_ms: nextRetryMs,
    }, 'append batch failed; held and written again after the backoff');
  }

  /** Writes the held batches one at a time, oldest first; a failure holds them all again for the next backoff. */
  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const written = { batches: 0, entries: 0, attemptsMax: 0 };
    try {
      while (this.#held.length > 0) {
        const batch = this.#held[0]!;
        if (this.options.aborted?.() === true) {
          for (const held of this.#held.splice(0)) held.settle({ error: shuttingDown() });
          this.#heldEntries = 0;
          return;
        }
        let ids: string[];
        batch.attempts += 1;
        try {
          ids = await this.options.bus.appendBatch(this.options.stream, this.#entriesOf(batch), { maxLen: this.options.maxLen });
        } catch (error: unknown) {
          // Not an outage's error: it would fail every retry and stall the batches behind it.
          if (this.#stopping || this.options.aborted?.() === true || !isOutage(error)) {
            this.#unhold(batch);
            batch.settle({ error });
            continue;
          }
          this.#logHeld(batch, error, this.#scheduleRetry());
          return;
        }
        this.#unhold(batch);
        batch.settle({ ids });
        written.batches += 1;
        written.entries += batch.entries.length;
        written.attemptsMax = Math.max(written.attemptsMax, batch.attempts);
      }
      this.#failures = 0;
    } finally {
      this.#draining = false;
      // One line per drain, not per batch (an outage may leave thousands): also when a failure cut it short.
      if (written.batches > 0) {
        this.options.logger?.info({ stream: this.options.stream, batches: written.batches, entries: written.entries, attempts_max: written.attemptsMax, held_entries: this.#heldEntries },
          `held append batches written, the oldest after ${written.attemptsMax} attempts`);
      }
    }
  }
}

const shuttingDown = () => new SdcError('GATEWAY_SHUTTING_DOWN', 'the gateway stopped before the entry was written');
