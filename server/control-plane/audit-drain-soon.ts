import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';

/**
 * A deployment's ControlPlaneOptions.commandAuditWindowMs and eventAuditWindowMs: long enough that
 * at tens of commands (or device sessions starting) per second several commits share a drain,
 * short against the 5 s periodic one.
 */
export const auditWindowMsDeployment = 50;

/**
 * One audit outbox drain per instant for the work that need not wait for the chain (issue 17).
 *
 * An event handler that records an audit input (a device's compliance at AUTH, its policy bundle
 * report) commits it with its change through the outbox (docs/audit.md, "Atomicity: the outbox"),
 * and nothing it does next reads the chain. Awaiting a drain after every such commit cost a
 * transaction and five statements per entry at start-up: on sql.js the drain queued right after
 * the commit that asked for it, so each drain found that one input (2,005 drains of one entry for
 * 1,000 agents). `request()` instead arms one timer of `delayMs` on the control plane's scheduler;
 * every input committed before it fires is chained by that one drain, through the same
 * AuditLog writer (group commit, batches of at most 256). On virtual time a delay of 0 is the end
 * of the current instant: the entry is chained at the virtual time it was recorded, after the
 * other timers already due then. The guarantee is the outbox's: an input is chained exactly once,
 * by this drain, a later one, the periodic drain or the next start, and never lost.
 */
export class AuditDrainSoon {
  readonly #scheduler: Scheduler;
  readonly #drain: () => Promise<void>;
  readonly #delayMs: number;
  #timer: TimerHandle | undefined;
  /** The drains the timers started, while they run (sweepsSettled and stop wait for them); at most a few. */
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  /** `drain` must never reject (the control plane's settleAudit logs and swallows a failure). */
  constructor(options: { scheduler: Scheduler; drain: () => Promise<void>; delayMs?: number }) {
    this.#scheduler = options.scheduler;
    this.#drain = options.drain;
    this.#delayMs = options.delayMs ?? 0;
    if (!(Number.isSafeInteger(this.#delayMs) && this.#delayMs >= 0)) throw new RangeError(`delayMs must be a non-negative integer, got ${this.#delayMs}`);
  }

  /** Asks for a drain within `delayMs`; calls before it fires share it. After `stop()`, nothing (the next start drains). */
  request(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = this.#scheduler.schedule(this.#delayMs, () => {
      this.#timer = undefined;
      this.#run();
    });
  }

  /** Resolves when no drain started by the timer is running. */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running]);
  }

  /** Takes requests again after `stop()` (a control plane started anew). */
  start(): void {
    this.#stopped = false;
  }

  /** No more timers; a drain asked for and not yet started runs now, so a clean stop leaves nothing recorded and unchained. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) {
      this.#scheduler.cancel(this.#timer);
      this.#timer = undefined;
      this.#run();
    }
    await this.settled();
  }

  #run(): void {
    const running: Promise<void> = this.#drain().finally(() => this.#running.delete(running));
    this.#running.add(running);
  }
}
