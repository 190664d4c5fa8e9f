import { SdcError } from '../../core/errors/index.js';
import type { TimerHandle } from '../../core/ports/ports.js';

export interface WindowGateOptions {
  /** The presence refresh window (GatewayCoreOptions.presenceRefreshWindowMs); 0 runs everything at once. */
  readonly windowMs: number;
  /** Callbacks waiting at once; beyond it `defer` refuses (the caller runs at once). Each session has at most one. */
  readonly waitingMax: number;
  readonly schedule: (delayMs: number, run: () => void) => TimerHandle;
  readonly cancel: (timer: TimerHandle) => void;
}

/**
 * Store reads that may wait for the presence refresh window (the session re-check of a HEARTBEAT
 * or TELEMETRY, which waits for its refresh anyway): `release()`, called synchronously when the
 * window closes, runs them in the same turn as the refreshes, so on Redis their commands join the
 * refreshes' pipelined write and their replies the same read. Each one issued on its own was a
 * write and a wake-up of its own for its reply: every session's re-check, once a minute, about a
 * third of the frames at 2,000 agents on the standard profile (docs/benchmarks.md, 2026-12-04
 * morning). If no window closes first, their own timer runs them two windows after the first.
 */
export class WindowGate {
  #waiting: Array<() => void> = [];
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(private readonly options: WindowGateOptions) {
    if (!Number.isSafeInteger(options.windowMs) || options.windowMs < 0) throw new SdcError('GATEWAY_INVALID_ARGUMENT', 'windowMs must be a non-negative integer');
  }

  /** Queues `run` for the next window's close; false (not queued: run it now) without a window or when full. */
  defer(run: () => void): boolean {
    if (this.options.windowMs === 0 || this.#stopped || this.#waiting.length >= this.options.waitingMax) return false;
    this.#waiting.push(run);
    this.#timer ??= this.options.schedule(2 * this.options.windowMs, () => this.release());
    return true;
  }

  /** The gateway is stopping: what waits runs now, and nothing waits any more (a stop must not wait on an unref'd timer). */
  stop(): void {
    this.#stopped = true;
    this.release();
  }

  /** Runs everything waiting, synchronously, in the order it was deferred. */
  release(): void {
    if (this.#timer !== undefined) {
      this.options.cancel(this.#timer);
      this.#timer = undefined;
    }
    const waiting = this.#waiting;
    if (waiting.length === 0) return;
    this.#waiting = [];
    for (const run of waiting) run();
  }
}
