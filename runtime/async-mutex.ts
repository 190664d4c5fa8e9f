import { SdcError } from '../core/errors/index.js';

/**
 * A FIFO async mutex with a bounded wait queue. sql.js is one connection, so every statement
 * and every transaction runs under it; without it, a query could land inside another caller's
 * open transaction.
 */
export class AsyncMutex {
  private locked = false;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly waitersMax: number) {}

  /**
   * `reserved`: the caller is internal housekeeping that must not be refused (the adapter's one
   * background saver; at most one such waiter at a time), so it skips the waiter limit.
   */
  async run<T>(fn: () => Promise<T>, options: { reserved?: boolean } = {}): Promise<T> {
    await this.acquire(options.reserved === true);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(reserved: boolean): Promise<void> {
    if (!this.locked) {
      this.locked = true;
      return Promise.resolve();
    }
    if (!reserved && this.waiters.length >= this.waitersMax) {
      return Promise.reject(new SdcError('STORE_LIMIT', `more than ${this.waitersMax} callers waiting for the database`));
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next === undefined) this.locked = false;
    else next(); // ownership passes directly to the next waiter; `locked` stays true
  }
}
