import type { TimerHandle } from '../../../core/ports/ports.js';
import type { ChaosTime } from '../time.js';

/** At most one pending timer of a stage, on the injected time, cancellable when the stage goes. */
export class OneTimer {
  #handle: TimerHandle | undefined;

  constructor(private readonly time: ChaosTime) {}

  get pending(): boolean {
    return this.#handle !== undefined;
  }

  /** Schedules `callback` unless a timer is already pending. */
  start(delayMs: number, callback: () => void): void {
    if (this.#handle !== undefined) return;
    this.#handle = this.time.schedule(delayMs, () => {
      this.#handle = undefined;
      callback();
    });
  }

  cancel(): void {
    if (this.#handle !== undefined) this.time.cancel(this.#handle);
    this.#handle = undefined;
  }
}
