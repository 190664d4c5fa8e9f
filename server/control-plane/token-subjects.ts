import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import { roleRank, type Role, type TokenSubject } from './users.js';

/**
 * A signed token says who its user was when it was issued; the user may since have been removed
 * or demoted, or had their tokens revoked (a new password, a new role, logout-all: the user's
 * token generation went up). Every request checks the token's subject against the users table,
 * through a small cache so a busy client costs one SQL read per cacheTtlMs, not one per request.
 */
export const tokenSubjectLimits = Object.freeze({
  // A removed, demoted or revoked user's tokens stop working at most this long after the change
  // when another control plane made it (it cannot tell us); the process that made it forgets
  // the user at once.
  cacheTtlMs: 5_000,
  // Users remembered at once; more than the operators of any deployment we plan for. The
  // oldest entry is dropped first.
  cacheEntriesMax: 1_024,
});

interface CachedSubject {
  readonly subject: TokenSubject | undefined;
  readonly checkedAtMs: number;
}

export class TokenSubjectCheck {
  readonly #subjectOf: (name: string) => Promise<TokenSubject | undefined>;
  readonly #clock: Clock;
  readonly #cache = new Map<string, CachedSubject>();

  constructor(options: { subjectOf: (name: string) => Promise<TokenSubject | undefined>; clock: Clock }) {
    this.#subjectOf = options.subjectOf;
    this.#clock = options.clock;
  }

  /**
   * Refuses a token whose user does not exist now or holds a lower role than the token claims
   * (API_TOKEN_SUBJECT_INVALID), or whose generation is older than the user's (API_TOKEN_REVOKED).
   */
  async require(name: string, tokenRole: Role, tokenGeneration: number): Promise<void> {
    const current = await this.#currentSubject(name);
    if (current === undefined || roleRank(current.role) < roleRank(tokenRole)) {
      throw new SdcError('API_TOKEN_SUBJECT_INVALID', 'the token\'s user no longer exists or no longer holds its role; log in again');
    }
    if (tokenGeneration < current.tokenGeneration) {
      throw new SdcError('API_TOKEN_REVOKED', 'the token was revoked (a new password, a new role, or logout-all); log in again');
    }
  }

  /** Drops what is remembered of a user this process just removed or re-roled: the change applies at once here. */
  forget(name: string): void {
    this.#cache.delete(name);
  }

  async #currentSubject(name: string): Promise<TokenSubject | undefined> {
    const nowMs = this.#clock.nowMs();
    const cached = this.#cache.get(name);
    if (cached !== undefined && nowMs - cached.checkedAtMs < tokenSubjectLimits.cacheTtlMs && nowMs >= cached.checkedAtMs) return cached.subject;
    const subject = await this.#subjectOf(name);
    this.#cache.delete(name);
    if (this.#cache.size >= tokenSubjectLimits.cacheEntriesMax) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(name, { subject, checkedAtMs: nowMs });
    return subject;
  }
}
