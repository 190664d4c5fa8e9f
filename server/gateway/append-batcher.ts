import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import type { StreamBus } from '../stores/bus/bus-port.js';

export interface AppendBatcherOptions {
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
  /** Needed when windowMs > 0. */
  readonly schedule?: (delayMs: number, run: () => void) => TimerHandle;
  readonly cancel?: (timer: TimerHandle) => void;
  /** A crashed gateway (abort) writes nothing more: its waiting entries are refused, not written. */
  readonly aborted?: () => boolean;
}

/** Entries going out in one appendBatch, and the one promise their callers wait on. */
interface Batch {
  readonly entries: Array<Record<string, string>>;
  /** The ids, in the order of `entries`. */
  readonly ids: Promise<readonly string[]>;
  /** The same outcome without the ids, for callers that need none (write()); settled in the same job as `ids`, as a caller's own promise was. */
  readonly written: Promise<void>;
  settle(outcome: { ids: readonly string[] } | { error: unknown }): void;
}

function newBatch(): Batch {
  let settleIds!: (outcome: { ids: readonly string[] } | { error: unknown }) => void;
  let settleWritten!: (outcome: { ids: readonly string[] } | { error: unknown }) => void;
  const ids = new Promise<readonly string[]>((resolve, reject) => { settleIds = (o) => ('error' in o ? reject(o.error) : resolve(o.ids)); });
  const written = new Promise<void>((resolve, reject) => { settleWritten = (o) => ('error' in o ? reject(o.error) : resolve()); });
  // Nobody may wait on one of the two (every caller of the batch used the other): not an unhandled rejection.
  ids.catch(() => undefined);
  written.catch(() => undefined);
  return { entries: [], ids, written, settle: (outcome) => { settleIds(outcome); settleWritten(outcome); } };
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
 */
export class AppendBatcher {
  /** The entries waiting for the next flush (at most entriesMax: a full batch is written at once). */
  #waiting: Batch | undefined;
  #flushQueued = false;
  #timer: TimerHandle | undefined;
  #windowMs: number;

  constructor(private readonly options: AppendBatcherOptions) {
    if (!Number.isSafeInteger(options.entriesMax) || options.entriesMax < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'entriesMax must be a positive integer');
    this.#windowMs = options.windowMs ?? 0;
    if (!Number.isSafeInteger(this.#windowMs) || this.#windowMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'windowMs must be a non-negative integer');
    if (this.#windowMs > 0 && (options.schedule === undefined || options.cancel === undefined)) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'a window needs schedule and cancel');
  }

  /** Appends the entry with the others of its batch; resolves to its id once the batch is written. */
  append(fields: Record<string, string>): Promise<string> {
    const { bus, stream, maxLen, entriesMax } = this.options;
    if (entriesMax === 1) return bus.append(stream, fields, { maxLen });
    const added = this.#add(fields);
    if (added instanceof Error) return Promise.reject(added);
    return added.batch.ids.then((ids) => ids[added.index] as string);
  }

  /**
   * append() for a caller that needs no id (the gateway's telemetry): it waits on its batch's one
   * promise, not on a promise of its own, one fewer per sample (issue 17). The same order and outcome.
   */
  write(fields: Record<string, string>): Promise<void> {
    const { bus, stream, maxLen, entriesMax } = this.options;
    if (entriesMax === 1) return bus.append(stream, fields, { maxLen }).then(() => undefined);
    const added = this.#add(fields);
    return added instanceof Error ? Promise.reject(added) : added.batch.written;
  }

  /** Puts the entry in the waiting batch (written at once when full, else at the end of the turn or the window); STORE_LIMIT beyond waitingMax. */
  #add(fields: Record<string, string>): { batch: Batch; index: number } | SdcError {
    const { stream, entriesMax, waitingMax } = this.options;
    const batch = this.#waiting ??= newBatch();
    if (batch.entries.length >= waitingMax) return new SdcError('STORE_LIMIT', `${waitingMax} appends to ${stream} already wait for a flush`);
    const index = batch.entries.push(fields) - 1;
    if (batch.entries.length >= entriesMax) this.#flush();
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
    if (this.#waiting !== undefined) this.#flush();
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
      batch.settle({ error: new SdcError('GATEWAY_SHUTTING_DOWN', 'the gateway stopped before the entry was written') });
      return;
    }
    this.options.bus.appendBatch(this.options.stream, batch.entries, { maxLen: this.options.maxLen }).then((ids) => batch.settle({ ids }), (error: unknown) => batch.settle({ error }));
  }
}
