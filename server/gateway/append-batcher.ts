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

interface Waiting {
  readonly fields: Record<string, string>;
  readonly resolve: (id: string) => void;
  readonly reject: (error: unknown) => void;
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
  #waiting: Waiting[] = [];
  #flushQueued = false;
  #timer: TimerHandle | undefined;
  #windowMs: number;

  constructor(private readonly options: AppendBatcherOptions) {
    if (!Number.isSafeInteger(options.entriesMax) || options.entriesMax < 1) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'entriesMax must be a positive integer');
    this.#windowMs = options.windowMs ?? 0;
    if (!Number.isSafeInteger(this.#windowMs) || this.#windowMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'windowMs must be a non-negative integer');
    if (this.#windowMs > 0 && (options.schedule === undefined || options.cancel === undefined)) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'a window needs schedule and cancel');
  }

  append(fields: Record<string, string>): Promise<string> {
    const { bus, stream, maxLen, entriesMax, waitingMax } = this.options;
    if (entriesMax === 1) return bus.append(stream, fields, { maxLen });
    if (this.#waiting.length >= waitingMax) return Promise.reject(new SdcError('STORE_LIMIT', `${waitingMax} appends to ${stream} already wait for a flush`));
    return new Promise<string>((resolve, reject) => {
      this.#waiting.push({ fields, resolve, reject });
      if (this.#waiting.length >= entriesMax) this.#flush();
      else if (this.#windowMs > 0) this.#timer ??= this.options.schedule!(2 * this.#windowMs, () => this.#flush());
      else if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * The gateway is stopping: what waits goes out now, and later appends (frames its sessions still
   * forward while they close) at the end of their turn, as without a window. A stop must not wait
   * for a window's timer: timers are unref'd, and a stop waited on by nothing else would end the
   * process with the entries unwritten.
   */
  stopWaiting(): void {
    this.#windowMs = 0;
    if (this.#waiting.length > 0) this.#flush();
  }

  /** The presence window closed: what waits goes out now, in the same turn as the refreshes. */
  flushWindow(): void {
    if (this.#waiting.length > 0) this.#flush();
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#timer !== undefined) {
      this.options.cancel!(this.#timer);
      this.#timer = undefined;
    }
    if (this.options.aborted?.() === true) {
      const dropped = this.#waiting;
      this.#waiting = [];
      for (const waiting of dropped) waiting.reject(new SdcError('GATEWAY_SHUTTING_DOWN', 'the gateway stopped before the entry was written'));
      return;
    }
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.options.entriesMax);
      void this.#write(batch);
    }
  }

  async #write(batch: readonly Waiting[]): Promise<void> {
    try {
      const ids = await this.options.bus.appendBatch(this.options.stream, batch.map((w) => w.fields), { maxLen: this.options.maxLen });
      batch.forEach((waiting, index) => waiting.resolve(ids[index] as string));
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
