/**
 * Runs async tasks one after another (per device session, so presence, telemetry and results
 * reach the stores in the order the frames arrived), with a bound on queued tasks.
 *
 * Every frame of every session passes through here, so a task costs two promises: `then(task)`
 * and one `then(done, failed)`, not `.catch().finally()` (whose `finally` alone makes two more
 * promises, a closure and two more microtask jobs per task; docs/benchmarks.md, 2026-12-04
 * morning). The slot is freed in the same job that ends the task.
 *
 * And an idle queue costs as little as it can: a gateway holds one per session, tens of thousands
 * of them idle between frames (docs/benchmarks.md, 2026-12-04 night). So `done` and `failed` are
 * made per task (two small closures that live as long as the task), not kept per queue; the error
 * handler is one function for every queue, told which queue's owner failed; and an empty queue
 * lets its last promise go (the shared `idle` one stands for it).
 */
/** The tail of every empty queue: resolved, shared. */
const idle: Promise<void> = Promise.resolve();

export class SerialTasks<O = undefined> {
  #tail: Promise<void> = idle;
  #queued = 0;

  /** `onError(error, owner)`: one function can serve every queue (the owner says whose task failed). */
  constructor(private readonly tasksMax: number, private readonly onError: (error: unknown, owner: O) => void, private readonly owner?: O) {}

  /** False, and the task is not queued, when `tasksMax` tasks are already waiting. */
  push(task: () => Promise<void>): boolean {
    if (this.#queued >= this.tasksMax) return false;
    this.#queued += 1;
    this.#tail = this.#tail.then(task).then(() => this.#settled(), (error: unknown) => {
      this.#settled();
      this.onError(error, this.owner as O);
    });
    return true;
  }

  #settled(): void {
    this.#queued -= 1;
    // The tail is resolved as soon as this returns, and no task can be pushed in between: a push
    // from here on chains on `idle` with the same number of microtask jobs as on the tail.
    if (this.#queued === 0) this.#tail = idle;
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
