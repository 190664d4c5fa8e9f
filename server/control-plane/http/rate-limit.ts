import { SdcError } from '../../../core/errors/index.js';
import type { Clock } from '../../../core/ports/ports.js';
import type { KeyValueStore } from '../../stores/kv/kv-port.js';
import { WindowCounter } from '../window-counter.js';

/**
 * Limits on guessing: logins (passwords) and enrollments (pairing tokens), and on certificate
 * renewals (each one signs a certificate and a CRL), per source address
 * and per account or device, counted in the key/value store so control planes sharing one
 * Redis share the limits. Each limit is a count per fixed window of `windowMs`.
 */
export const authRateLimits = Object.freeze({
  // One minute: long enough that a guesser gets a few dozen tries an hour per address and
  // account, short enough that a user who mistyped a few times waits at most a minute.
  windowMs: 60_000,
  // Every login attempt counts (before its scrypt runs), so a burst of concurrent attempts is
  // cut off at the limit instead of all being processed. 30 per address covers an office
  // behind one NAT logging in at the start of a shift.
  loginAttemptsPerSourceMax: 30,
  // Per account name, whatever the address: a distributed guess at one account. A successful
  // login clears the account's count, so the owner is only locked out while a guesser is busy.
  loginAttemptsPerAccountMax: 10,
  // Enrollment guesses: only refused enrollments count (a fleet enrolling from one address
  // with valid tokens is never slowed). Pairing tokens have 256 random bits, so this limit is
  // about load and noise, not about the odds of a guess.
  enrollmentFailuresPerSourceMax: 20,
  enrollmentFailuresPerDeviceMax: 10,
  // Renewal attempts (review h1, finding 2): each one verifies a certificate chain and may sign
  // a certificate and a CRL, so every attempt counts, accepted or not. An agent renews once per
  // certificate lifetime and retries every 6 h; per device 5 a minute leaves room for a lost
  // answer's retry. Per address 120 (gateways or NATs in front of a fleet), and 600 a minute over
  // every control plane sharing the store, so a fleet whose certificates fall due together
  // renews over minutes (agents retry at their next check) instead of all at once.
  renewalAttemptsPerDeviceMax: 5,
  renewalAttemptsPerSourceMax: 120,
  renewalAttemptsMax: 600,
});
export type AuthRateLimits = typeof authRateLimits;

/** The failed check as the API answers it: 429 with Retry-After in whole seconds. */
function rateLimited(scope: string, counter: WindowCounter): SdcError {
  const retryAfterS = Math.ceil(counter.msUntilWindowEnds() / 1000);
  return new SdcError('API_RATE_LIMITED', `too many ${scope}; retry in ${retryAfterS} s`, { scope, retryAfterS });
}

export class AuthRateLimiter {
  readonly #limits: AuthRateLimits;
  readonly #loginSource: WindowCounter;
  readonly #loginAccount: WindowCounter;
  readonly #enrollSource: WindowCounter;
  readonly #enrollDevice: WindowCounter;
  readonly #renewDevice: WindowCounter;
  readonly #renewSource: WindowCounter;
  readonly #renewAll: WindowCounter;

  constructor(options: { kv: KeyValueStore; clock: Clock; limits?: Partial<AuthRateLimits> }) {
    this.#limits = { ...authRateLimits, ...options.limits };
    const counter = (scope: string) => new WindowCounter({ kv: options.kv, clock: options.clock, scope, windowMs: this.#limits.windowMs });
    this.#loginSource = counter('login-source');
    this.#loginAccount = counter('login-account');
    this.#enrollSource = counter('enroll-source');
    this.#enrollDevice = counter('enroll-device');
    this.#renewDevice = counter('renew-device');
    this.#renewSource = counter('renew-source');
    this.#renewAll = counter('renew-all');
  }

  /**
   * Counts a login attempt for its source and account, refuses it over either limit, and runs
   * it otherwise. A success clears the account's count.
   */
  async guardLogin<T>(who: { source: string; account: string }, attempt: () => Promise<T>): Promise<T> {
    const [bySource, byAccount] = await Promise.all([this.#loginSource.add(who.source), this.#loginAccount.add(who.account)]);
    if (bySource > this.#limits.loginAttemptsPerSourceMax) throw rateLimited('login attempts from this address', this.#loginSource);
    if (byAccount > this.#limits.loginAttemptsPerAccountMax) throw rateLimited('login attempts for this account', this.#loginAccount);
    const result = await attempt();
    await this.#loginAccount.reset(who.account);
    return result;
  }

  /**
   * Counts a renewal attempt for its device, its source and all renewals, and refuses it over any
   * of the three limits (API_RATE_LIMITED, Retry-After) before its certificate is even verified.
   */
  async guardRenewal<T>(who: { source: string; deviceId: string }, attempt: () => Promise<T>): Promise<T> {
    const [byDevice, bySource, all] = await Promise.all([this.#renewDevice.add(who.deviceId), this.#renewSource.add(who.source), this.#renewAll.add('all')]);
    if (byDevice > this.#limits.renewalAttemptsPerDeviceMax) throw rateLimited('renewal attempts for this device', this.#renewDevice);
    if (bySource > this.#limits.renewalAttemptsPerSourceMax) throw rateLimited('renewal attempts from this address', this.#renewSource);
    if (all > this.#limits.renewalAttemptsMax) throw rateLimited('renewal attempts on this service', this.#renewAll);
    return attempt();
  }

  /** Refuses an enrollment once its source or device has too many refused ones; counts a refusal. */
  async guardEnrollment<T>(who: { source: string; deviceId: string }, attempt: () => Promise<T>): Promise<T> {
    const [bySource, byDevice] = await Promise.all([this.#enrollSource.current(who.source), this.#enrollDevice.current(who.deviceId)]);
    if (bySource >= this.#limits.enrollmentFailuresPerSourceMax) throw rateLimited('refused enrollments from this address', this.#enrollSource);
    if (byDevice >= this.#limits.enrollmentFailuresPerDeviceMax) throw rateLimited('refused enrollments for this device', this.#enrollDevice);
    try {
      return await attempt();
    } catch (error) {
      if (SdcError.is(error) && error.fault === 'remote') await Promise.all([this.#enrollSource.add(who.source), this.#enrollDevice.add(who.deviceId)]);
      throw error;
    }
  }
}
