/**
 * Runs async tasks one after another (per device session, so presence, telemetry and results
 * reach the stores in the order the frames arrived), with a bound on queued tasks.
 */
export class SerialTasks {
  #tail: Promise<void> = Promise.resolve();
  #queued = 0;

  constructor(private readonly tasksMax: number, private readonly onError: (error: unknown) => void) {}

  /** False, and the task is not queued, when `tasksMax` tasks are already waiting. */
  push(task: () => Promise<void>): boolean {
    if (this.#queued >= this.tasksMax) return false;
    this.#queued += 1;
    this.#tail = this.#tail.then(task).catch(this.onError).finally(() => { this.#queued -= 1; });
    return true;
  }

  /** Resolves when everything queued so far has run. */
  drained(): Promise<void> {
    return this.#tail;
  }
}
