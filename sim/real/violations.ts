/**
 * `live_feed`: the operator's live stream (`/v1/live`) told every terminal state it did not lose,
 * and for what it lost it said `resync`; a command finished by the API but still open on a stream
 * that never said so fails it (the stream is at most once by design; silence is the defect).
 */
export type RealCheckerName = 'none_lost' | 'at_most_once' | 'ran_once' | 'not_executed' | 'legal_transitions' | 'audit_chain' | 'presence' | 'liveness' | 'live_feed';

export interface RealViolation {
  readonly checker: RealCheckerName;
  readonly message: string;
}

export const realCheckerNames: readonly RealCheckerName[] = ['none_lost', 'at_most_once', 'ran_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'liveness', 'live_feed'];

/** A run reports the first violations; a broken run would otherwise print one line per command. */
const violationsKeptMax = 50;

/** The violations every step of a `--real` run reports: the messages bounded, the verdicts complete. */
export class ViolationLog {
  readonly #kept: RealViolation[] = [];
  /** Every checker that reported, also once the messages are full: a dropped message still fails its checker. */
  readonly #failed = new Set<RealCheckerName>();

  add(checker: RealCheckerName, message: string): void {
    this.#failed.add(checker);
    if (this.#kept.length < violationsKeptMax) this.#kept.push({ checker, message });
  }

  /** The first violationsKeptMax violations. */
  get all(): readonly RealViolation[] {
    return this.#kept;
  }

  /** Each checker's verdict: fail when it reported a violation. */
  verdicts(): Record<RealCheckerName, 'pass' | 'fail'> {
    const failed = this.#failed;
    return Object.fromEntries(realCheckerNames.map((name) => [name, failed.has(name) ? 'fail' : 'pass'])) as Record<RealCheckerName, 'pass' | 'fail'>;
  }
}
