/**
 * Runs async tasks one after another (per device session, so presence, telemetry and results
 * reach the stores in the order the frames arrived), with a bound on queued tasks.
 *
 * Every frame of every session passes through here, so a task costs two promises and no closure:
 * `then(task)` and one `then(done, failed)` with bound methods, not `.catch().finally()` (whose
 * `finally` alone makes two more promises, a closure and two more microtask jobs per task;
 * docs/benchmarks.md, 2026-12-04 morning). The slot is freed in the same job that ends the task.
 */
export class SerialTasks {
  #tail: Promise<void> = Promise.resolve();
  #queued = 0;
  readonly #done = (): void => {
    this.#queued -= 1;
  };
  readonly #failed = (error: unknown): void => {
    this.#queued -= 1;
    this.onError(error);
  };

  constructor(private readonly tasksMax: number, private readonly onError: (error: unknown) => void) {}

  /** False, and the task is not queued, when `tasksMax` tasks are already waiting. */
  push(task: () => Promise<void>): boolean {
    if (this.#queued >= this.tasksMax) return false;
    this.#queued += 1;
    this.#tail = this.#tail.then(task).then(this.#done, this.#failed);
    return true;
  }

  /** Tasks queued or running. */
  get queued(): number {
    return this.#queued;
  }

  /** Resolves when everything queued so far has run. */
  drained(): Promise<void> {
    return this.#tail;
  }
}
