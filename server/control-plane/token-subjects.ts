import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import { roleRank, type Role } from './users.js';

/**
 * A signed token says who its user was when it was issued; the user may since have been removed
 * or demoted. Every request checks the token's subject against the users table, through a small
 * cache so a busy client costs one SQL read per cacheTtlMs, not one per request.
 */
export const tokenSubjectLimits = Object.freeze({
  // A removed or demoted user's tokens stop working at most this long after the change (the
  // change may be made by another process, e.g. `sdc user` on MySQL, which cannot tell us).
  cacheTtlMs: 5_000,
  // Users remembered at once; more than the operators of any deployment we plan for. The
  // oldest entry is dropped first.
  cacheEntriesMax: 1_024,
});

interface CachedRole {
  readonly role: Role | undefined;
  readonly checkedAtMs: number;
}

export class TokenSubjectCheck {
  readonly #roleOf: (name: string) => Promise<Role | undefined>;
  readonly #clock: Clock;
  readonly #cache = new Map<string, CachedRole>();

  constructor(options: { roleOf: (name: string) => Promise<Role | undefined>; clock: Clock }) {
    this.#roleOf = options.roleOf;
    this.#clock = options.clock;
  }

  /** Refuses a token whose user does not exist now or holds a lower role than the token claims. */
  async require(name: string, tokenRole: Role): Promise<void> {
    const current = await this.#currentRole(name);
    if (current === undefined || roleRank(current) < roleRank(tokenRole)) {
      throw new SdcError('API_TOKEN_SUBJECT_INVALID', 'the token\'s user no longer exists or no longer holds its role; log in again');
    }
  }

  /** Drops what is remembered of a user this process just removed or re-roled: the change applies at once here. */
  forget(name: string): void {
    this.#cache.delete(name);
  }

  async #currentRole(name: string): Promise<Role | undefined> {
    const nowMs = this.#clock.nowMs();
    const cached = this.#cache.get(name);
    if (cached !== undefined && nowMs - cached.checkedAtMs < tokenSubjectLimits.cacheTtlMs && nowMs >= cached.checkedAtMs) return cached.role;
    const role = await this.#roleOf(name);
    this.#cache.delete(name);
    if (this.#cache.size >= tokenSubjectLimits.cacheEntriesMax) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(name, { role, checkedAtMs: nowMs });
    return role;
  }
}
