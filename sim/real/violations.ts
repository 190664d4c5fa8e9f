export type RealCheckerName = 'none_lost' | 'at_most_once' | 'ran_once' | 'not_executed' | 'legal_transitions' | 'audit_chain' | 'presence' | 'liveness';

export interface RealViolation {
  readonly checker: RealCheckerName;
  readonly message: string;
}

export const realCheckerNames: readonly RealCheckerName[] = ['none_lost', 'at_most_once', 'ran_once', 'not_executed', 'legal_transitions', 'audit_chain', 'presence', 'liveness'];

/** A run reports the first violations; a broken run would otherwise print one line per command. */
const violationsKeptMax = 50;

/** The violations every step of a `--real` run reports, bounded. */
export class ViolationLog {
  readonly #kept: RealViolation[] = [];

  add(checker: RealCheckerName, message: string): void {
    if (this.#kept.length < violationsKeptMax) this.#kept.push({ checker, message });
  }

  get all(): readonly RealViolation[] {
    return this.#kept;
  }

  /** Each checker's verdict: fail when it reported a violation. */
  verdicts(): Record<RealCheckerName, 'pass' | 'fail'> {
    const failed = new Set(this.#kept.map((v) => v.checker));
    return Object.fromEntries(realCheckerNames.map((name) => [name, failed.has(name) ? 'fail' : 'pass'])) as Record<RealCheckerName, 'pass' | 'fail'>;
  }
}
