import { SdcError } from '../../core/errors/index.js';

export interface ConcurrencyGateOptions {
  /** Tasks running at once. */
  readonly runningMax: number;
  /** Tasks waiting for a slot; one more is refused with `refusal`. */
  readonly waitingMax: number;
  /** The error for a task refused because the queue is full. */
  readonly refusal: () => SdcError;
}

/**
 * A bounded semaphore: at most runningMax tasks run, at most waitingMax wait (first come, first
 * served), and any more are refused at once instead of piling up memory and latency.
 */
export class ConcurrencyGate {
  readonly #o: ConcurrencyGateOptions;
  readonly #waiting: Array<() => void> = [];
  #running = 0;

  constructor(options: ConcurrencyGateOptions) {
    if (!(Number.isSafeInteger(options.runningMax) && options.runningMax >= 1 && Number.isSafeInteger(options.waitingMax) && options.waitingMax >= 0)) {
      throw new SdcError('API_INTERNAL', 'a concurrency gate needs runningMax >= 1 and waitingMax >= 0');
    }
    this.#o = options;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.#acquire();
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  async #acquire(): Promise<void> {
    if (this.#running < this.#o.runningMax) {
      this.#running += 1;
      return;
    }
    if (this.#waiting.length >= this.#o.waitingMax) throw this.#o.refusal();
    // The slot is handed over by #release, so #running already counts this task when it wakes.
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#running -= 1;
  }
}
