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
  // Enrollments (review h1 of 32269b0, finding 2; docs/decisions/0020, "Enrollments"). Pairing
  // tokens have 256 random bits, so these limits are about load and noise, not the odds of a
  // guess. The presented token is looked up first (SHA-256, one read by key); counts before that
  // are ones anyone can spend, and ten made-up tokens naming a device used to lock it out.
  // - per address, 20 attempts a minute whose token does not hold (unknown, malformed, used,
  //   expired, another device's: all bound to be refused), counted before they run so a
  //   concurrent burst is cut off too. Attempts with a token that holds never count here and are
  //   never refused by it: one host behind a site's NAT cannot stall the site's enrollments.
  // - per device, 10 refused attempts a minute whose token held (a CSR that does not parse or
  //   names another device, a lost race for the token): only the token's holder spends them.
  //   Made-up tokens naming the device count nowhere but at their address.
  enrollmentFailuresPerSourceMax: 20,
  enrollmentFailuresPerDeviceMax: 10,
  // Renewal attempts (review h1, finding 2; h12's review of it, 2026-12-06). The route accepts
  // TLS connections without a client certificate, so a limit counted before the certificate is
  // verified is one anyone can spend: six anonymous requests a minute naming a device used to
  // lock that device out, and 601 from one address every device. So:
  // - per device, 5 a minute, counted only once the presented certificate verified for that
  //   device (chain, not revoked, CN = the path's id, on record): only the device spends its own
  //   count. An agent renews once per certificate lifetime and retries every 6 h; 5 leaves room
  //   for a lost answer's retry.
  // - per address, 20 refused-before-authentication attempts a minute (no certificate, a foreign
  //   or revoked one, another device's), checked first; a refused attempt touches no other count,
  //   and authenticated renewals never count here, so a fleet behind one gateway or NAT renewing
  //   together is not slowed by its shared address.
  // - no service-wide cap: authenticated renewals are already bounded per device (5 a minute,
  //   renewalLimits' 6 certificates a day), so their total is bounded by the fleet's size; and an
  //   agent does not honour Retry-After but retries at its next check 6 h later, so a service-wide
  //   refusal turns a fleet's shared due date (all restarted after an outage) into refusals for
  //   all but the first few hundred a round; with the former 600 a minute, a fleet of more than
  //   600 x 40 checks in the last 10 days of a 30-day certificate = 24,000 devices let
  //   certificates expire.
  renewalAttemptsPerDeviceMax: 5,
  renewalRefusalsPerSourceMax: 20,
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

  constructor(options: { kv: KeyValueStore; clock: Clock; limits?: Partial<AuthRateLimits> }) {
    this.#limits = { ...authRateLimits, ...options.limits };
    const counter = (scope: string) => new WindowCounter({ kv: options.kv, clock: options.clock, scope, windowMs: this.#limits.windowMs });
    this.#loginSource = counter('login-source');
    this.#loginAccount = counter('login-account');
    this.#enrollSource = counter('enroll-source');
    this.#enrollDevice = counter('enroll-device');
    this.#renewDevice = counter('renew-device');
    this.#renewSource = counter('renew-source');
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
   * Guards a renewal: refused (API_RATE_LIMITED, Retry-After) before anything runs when its address
   * already has renewalRefusalsPerSourceMax refused ones this window. `attempt` gets `authenticated`
   * to call once the presented certificate verified for `who.deviceId`: only then does the attempt
   * count for the device, refused over renewalAttemptsPerDeviceMax. An attempt refused (the
   * caller's fault) before that counts for its address, and for nothing else.
   */
  async guardRenewal<T>(who: { source: string; deviceId: string }, attempt: (authenticated: () => Promise<void>) => Promise<T>): Promise<T> {
    if (await this.#renewSource.current(who.source) >= this.#limits.renewalRefusalsPerSourceMax) {
      throw rateLimited('refused renewals from this address', this.#renewSource);
    }
    let authenticated = false;
    try {
      return await attempt(async () => {
        authenticated = true;
        const byDevice = await this.#renewDevice.add(who.deviceId);
        if (byDevice > this.#limits.renewalAttemptsPerDeviceMax) throw rateLimited('renewal attempts for this device', this.#renewDevice);
      });
    } catch (error) {
      if (!authenticated && SdcError.is(error) && error.fault === 'remote') await this.#renewSource.add(who.source);
      throw error;
    }
  }

  /**
   * Guards an enrollment. `who.tokenHolds`: the presented token is outstanding for `who.deviceId`
   * (exists, names it, unused, unexpired), as looked up before any CSR work. Such an attempt
   * skips the address count; refused over enrollmentFailuresPerDeviceMax of its device's refused
   * ones, and its refusal (the caller's fault) counts for the device. Any other attempt is bound
   * to be refused: it counts for its address before it runs, and is refused (API_RATE_LIMITED,
   * Retry-After) without running beyond enrollmentFailuresPerSourceMax.
   */
  async guardEnrollment<T>(who: { source: string; deviceId: string; tokenHolds: boolean }, attempt: () => Promise<T>): Promise<T> {
    if (!who.tokenHolds) {
      if (await this.#enrollSource.add(who.source) > this.#limits.enrollmentFailuresPerSourceMax) {
        throw rateLimited('refused enrollments from this address', this.#enrollSource);
      }
      return attempt();
    }
    if (await this.#enrollDevice.current(who.deviceId) >= this.#limits.enrollmentFailuresPerDeviceMax) {
      throw rateLimited('refused enrollments with this device\'s pairing token', this.#enrollDevice);
    }
    try {
      return await attempt();
    } catch (error) {
      if (SdcError.is(error) && error.fault === 'remote') await this.#enrollDevice.add(who.deviceId);
      throw error;
    }
  }
}
