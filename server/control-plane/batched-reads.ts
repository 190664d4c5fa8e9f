import { SdcError } from '../../core/errors/index.js';

/**
 * Point reads (or point writes) asked for while one is in flight go together in the next
 * (issue 17: each statement is a socket write to the database and a wake-up of its process, the
 * largest single cost of a command round trip under load). A caller's key joins the batch sent
 * after it asked, never one already sent, so each still sees every change committed before it
 * asked: the batch changes how many statements run, not what any caller reads.
 *
 * `run` answers per key: a value, undefined (nothing there), or an SdcError that is that key's
 * alone (a damaged row); a throw fails the whole batch's callers, as the single statement would.
 */
/** One caller waiting for its key's value. */
interface Waiter<K, V, A> {
  readonly key: K;
  readonly arg: A;
  resolve(value: V | undefined): void;
  reject(error: unknown): void;
}

export class Batched<K extends string, V, A = undefined> {
  readonly #run: (keys: readonly K[], args: ReadonlyMap<K, A>) => Promise<ReadonlyMap<K, V | SdcError>>;
  readonly #keysPerBatchMax: number;
  readonly #waiting: Array<Waiter<K, V, A>> = [];
  #running = false;

  constructor(options: {
    /**
     * One statement (or a few) for the distinct keys of a batch, in the order first asked, with
     * each key's argument (the last one given when a key was asked for twice).
     */
    run(keys: readonly K[], args: ReadonlyMap<K, A>): Promise<ReadonlyMap<K, V | SdcError>>;
    /** Distinct keys per batch at most: the statement's placeholders are bounded too. */
    keysPerBatchMax: number;
  }) {
    if (!(Number.isSafeInteger(options.keysPerBatchMax) && options.keysPerBatchMax >= 1)) {
      throw new SdcError('STORE_INVALID_ARGUMENT', 'keysPerBatchMax must be a positive integer');
    }
    this.#run = options.run;
    this.#keysPerBatchMax = options.keysPerBatchMax;
  }

  /** The value for `key` from the next batch that is sent; `arg` goes with the key (a time, a value to write). */
  get(key: K, arg: A): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ key, arg, resolve, reject });
      if (this.#running) return;
      this.#running = true;
      void this.#drain();
    });
  }

  /** The one sender: what was asked for while a batch ran forms the next. Never throws. */
  async #drain(): Promise<void> {
    try {
      // The keys asked for in the caller's turn join the first batch.
      await Promise.resolve();
      while (this.#waiting.length > 0) await this.#send(this.#takeBatch());
    } finally {
      this.#running = false;
    }
  }

  /** The oldest waiting callers whose keys fit one batch (a key asked twice counts once). */
  #takeBatch(): Array<Waiter<K, V, A>> {
    const keys = new Set<K>();
    let taken = 0;
    for (; taken < this.#waiting.length; taken += 1) {
      const { key } = this.#waiting[taken]!;
      if (!keys.has(key) && keys.size >= this.#keysPerBatchMax) break;
      keys.add(key);
    }
    return this.#waiting.splice(0, taken);
  }

  async #send(batch: ReadonlyArray<Waiter<K, V, A>>): Promise<void> {
    let values: ReadonlyMap<K, V | SdcError>;
    try {
      const args = new Map(batch.map((item) => [item.key, item.arg] as const));
      values = await this.#run([...args.keys()], args);
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    for (const item of batch) {
      const value = values.get(item.key);
      if (value instanceof SdcError) item.reject(value);
      else item.resolve(value);
    }
  }
}
