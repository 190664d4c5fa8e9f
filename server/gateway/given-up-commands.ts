/**
 * The commands this gateway dead-lettered lately, so that a `deliver` entry the control plane
 * appended before it learned of the dead letter is not taken as a new delivery.
 *
 * Why it is needed: the control plane re-appends an unfinished command (its redelivery sweep, or
 * a presence event of the device) while the gateway is still retrying it; the router then sees
 * the command id held and lets its retries carry on. But an append read after the last ACK
 * timeout (the gateway has forgotten the delivery, the control plane has not yet read the
 * `dead_letter` progress) used to start the whole delivery again: another deliveryAttemptsMax
 * COMMAND_DELIVERY frames and a second dead letter. Seen as six deliveries instead of five on a
 * busy machine (test/e2e/dead-letter-retry.test.ts).
 *
 * An operator's retry of a dead letter carries its retry number (bus entry `deliver.retry`), so
 * it is told apart from such a late re-append and always delivered.
 *
 * Bounded both ways: at most `entriesMax` ids (the oldest forgotten first) and each for at most
 * `rememberMs`. Forgetting only brings back the old behaviour (one more round of attempts), and
 * the control plane has long marked the command dead-lettered by then, so its sweeps stop.
 */
export interface GivenUpCommandsOptions {
  readonly entriesMax: number;
  readonly rememberMs: number;
}

export const givenUpCommandsDefaults: GivenUpCommandsOptions = Object.freeze({ entriesMax: 10_000, rememberMs: 10 * 60_000 });

interface GivenUp {
  /** The operator's retry number the gateway gave up on (0: the command's first dispatch). */
  readonly retry: number;
  readonly atMs: number;
}

export class GivenUpCommands {
  readonly #byId = new Map<string, GivenUp>();

  constructor(private readonly options: GivenUpCommandsOptions = givenUpCommandsDefaults) {}

  get size(): number {
    return this.#byId.size;
  }

  /** The gateway dead-lettered `commandId` on its `retry`-th operator retry (0: the first dispatch). */
  remember(commandId: string, retry: number, nowMs: number): void {
    this.#byId.delete(commandId);
    this.#byId.set(commandId, { retry, atMs: nowMs });
    // Insertion order is age order: the first keys are the oldest.
    for (const oldest of this.#byId.keys()) {
      if (this.#byId.size <= this.options.entriesMax) break;
      this.#byId.delete(oldest);
    }
  }

  /**
   * True when a `deliver` entry for `commandId` with this retry number is a late copy of one the
   * gateway already gave up on. A newer retry clears the memory: its delivery starts afresh.
   */
  isStale(commandId: string, retry: number, nowMs: number): boolean {
    const givenUp = this.#byId.get(commandId);
    if (givenUp === undefined) return false;
    if (nowMs - givenUp.atMs >= this.options.rememberMs || retry > givenUp.retry) {
      this.#byId.delete(commandId);
      return false;
    }
    return true;
  }
}
