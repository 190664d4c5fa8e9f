import { createHash, type Hash } from 'node:crypto';
import type { Clock } from '../core/ports/ports.js';

/**
 * The run's event trace: one line per significant event (`<virtual ms> <kind> <detail>`), folded
 * into a running SHA-256 (the trace hash) so a run of millions of events needs no memory for
 * it. The last few lines are kept for the failure report.
 */
export class Trace {
  readonly #clock: Clock;
  readonly #hash: Hash = createHash('sha256');
  readonly #recent: string[] = [];
  readonly #recentMax: number;
  readonly #startMs: number;
  #events = 0;
  #digest: string | undefined;

  constructor(clock: Clock, recentMax = 40) {
    this.#clock = clock;
    this.#startMs = clock.nowMs();
    this.#recentMax = recentMax;
  }

  get events(): number {
    return this.#events;
  }

  add(kind: string, detail: string): void {
    if (this.#digest !== undefined) return;
    const line = `${this.#clock.nowMs() - this.#startMs} ${kind} ${detail}`;
    this.#hash.update(`${line}\n`);
    this.#events += 1;
    this.#recent.push(line);
    if (this.#recent.length > this.#recentMax) this.#recent.shift();
  }

  /** The trace hash; the trace is closed after this. */
  digest(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }

  recent(): string[] {
    return [...this.#recent];
  }
}
