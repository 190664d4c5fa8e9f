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

/**
 * Which account a token (or a live ticket asked for with it) was issued to: the account's id (claim
 * `uid`) and the token's `iat` in seconds. Either may be unknown (a token or ticket from before).
 */
export interface TokenBinding {
  readonly userId?: string | undefined;
  readonly issuedAtS?: number | undefined;
}

/** Whether the account holding the name now is not the one the token was issued to. */
function otherAccount(current: TokenSubject, binding: TokenBinding): boolean {
  if (binding.userId !== undefined) return binding.userId !== current.id;
  // Without an id: an account created after the token's issue second cannot be the token's.
  return binding.issuedAtS !== undefined && binding.issuedAtS * 1000 + 999 < current.createdAtMs;
}

interface CachedSubject {
  readonly subject: TokenSubject | undefined;
  readonly checkedAtMs: number;
  /** Order in which the read that produced the entry began (#readsBegun). */
  readonly readSeq: number;
}

/** A read of the users table in flight; `stale` once its user was forgotten after it began. */
interface InFlightRead {
  stale: boolean;
}

export class TokenSubjectCheck {
  readonly #subjectOf: (name: string) => Promise<TokenSubject | undefined>;
  readonly #clock: Clock;
  readonly #cache = new Map<string, CachedSubject>();
  /**
   * Reads in flight per user. A read begun before a change (its SELECT may see the old token
   * generation) and ended after forget() must not put its answer in the cache: the revoked token
   * would work here again for up to cacheTtlMs (review h11, F1). forget() marks them stale. Holds
   * only reads in flight (each a request waiting on it), so it is bounded as requests are.
   */
  readonly #inFlight = new Map<string, Set<InFlightRead>>();
  #readsBegun = 0;

  constructor(options: { subjectOf: (name: string) => Promise<TokenSubject | undefined>; clock: Clock }) {
    this.#subjectOf = options.subjectOf;
    this.#clock = options.clock;
  }

  /**
   * Refuses a token whose user does not exist now or holds a lower role than the token claims, or
   * whose user is another account than the one it was issued to (API_TOKEN_SUBJECT_INVALID), or
   * whose generation is older than the user's (API_TOKEN_REVOKED).
   *
   * Another account: a user removed and one created under the same name. A token names its user
   * by name, so it binds to the account by `binding`: the account's immutable id when the token
   * carries one (claim `uid`, every login since), else its issue time, which must not be before
   * the account's creation (a token without `uid`: from before the claim, or one issued by other
   * code). `iat` is in whole seconds, so a token issued in the second the account was created
   * counts as after it (`issuedAtS * 1000 + 999`).
   *
   * With `fresh`, the users table is read now whatever the cache holds (a live stream's re-check,
   * which must not trust an entry up to cacheTtlMs old).
   */
  async require(name: string, tokenRole: Role, tokenGeneration: number, binding: TokenBinding = {}, options: { fresh?: boolean } = {}): Promise<void> {
    let current = await this.#currentSubject(name, options);
    // No account, or one other than the token's, remembered from before the token was issued:
    // the token may be a new account's (created, or removed and re-created, on another control
    // plane within cacheTtlMs). Read again once; only then, so an old token cannot make every
    // request a read (after the read, the entry is newer than the token).
    const cachedAtMs = this.#cache.get(name)?.checkedAtMs;
    if ((current === undefined || otherAccount(current, binding)) && binding.issuedAtS !== undefined
      && cachedAtMs !== undefined && cachedAtMs <= binding.issuedAtS * 1000 + 999) {
      current = await this.#currentSubject(name, { fresh: true });
    }
    if (current === undefined || roleRank(current.role) < roleRank(tokenRole)) {
      throw new SdcError('API_TOKEN_SUBJECT_INVALID', 'the token\'s user no longer exists or no longer holds its role; log in again');
    }
    if (otherAccount(current, binding)) {
      throw new SdcError('API_TOKEN_SUBJECT_INVALID', 'the token\'s user was removed (an account of that name was created since); log in again');
    }
    if (tokenGeneration < current.tokenGeneration) {
      throw new SdcError('API_TOKEN_REVOKED', 'the token was revoked (a new password, a new role, or logout-all); log in again');
    }
  }

  /** Drops what is remembered of a user this process just removed or re-roled: the change applies at once here. */
  forget(name: string): void {
    this.#cache.delete(name);
    for (const read of this.#inFlight.get(name) ?? []) read.stale = true;
  }

  /** Drops every entry: notices of changes made elsewhere may have been missed (a lost subscription). */
  forgetAll(): void {
    this.#cache.clear();
    for (const reads of this.#inFlight.values()) for (const read of reads) read.stale = true;
  }

  async #currentSubject(name: string, options: { fresh?: boolean } = {}): Promise<TokenSubject | undefined> {
    const nowMs = this.#clock.nowMs();
    const cached = this.#cache.get(name);
    if (options.fresh !== true && cached !== undefined && nowMs - cached.checkedAtMs < tokenSubjectLimits.cacheTtlMs && nowMs >= cached.checkedAtMs) return cached.subject;
    // The answer of a read is the caller's either way (its request began before the change);
    // it is remembered only if no forget() came after the read began, and never over the
    // answer of a read begun later (a fresh re-check's).
    const read: InFlightRead = { stale: false };
    const readSeq = ++this.#readsBegun;
    const reads = this.#inFlight.get(name) ?? new Set<InFlightRead>();
    reads.add(read);
    this.#inFlight.set(name, reads);
    let subject: TokenSubject | undefined;
    try {
      subject = await this.#subjectOf(name);
    } finally {
      reads.delete(read);
      if (reads.size === 0 && this.#inFlight.get(name) === reads) this.#inFlight.delete(name);
    }
    const newer = this.#cache.get(name);
    if (read.stale || (newer !== undefined && newer.readSeq > readSeq)) return subject;
    this.#cache.delete(name);
    if (this.#cache.size >= tokenSubjectLimits.cacheEntriesMax) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(name, { subject, checkedAtMs: nowMs, readSeq });
    return subject;
  }
}
