// jose's subpaths, not its index (which loads all of jose's ~46 modules).
import type { CryptoKey, JWTPayload } from 'jose';
import { decodeProtectedHeader } from 'jose/decode/protected_header';
import { jwtVerify } from 'jose/jwt/verify';
import type { Clock } from '../core/ports/ports.js';
import { BoundedLru } from '../core/crypto/bounded-lru.js';
import { SdcError } from '../core/errors/index.js';
import { JWT_ALG, JWT_TYP, canonicalBase64url, importVerificationKey, isKey32 } from './jwt-keys.js';
import { sdcErrorFromJose } from './jwt-error-map.js';
import { integerOption, jwtLimits, stringOption } from './jwt-limits.js';

export interface JwtVerifierOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly clock: Clock;
  /** Default 30 s, at most 5 minutes. */
  readonly clockSkewMs?: number;
  /** Fetches the authority's JWKS. Called only by the rate-limited refresh below. */
  readonly fetchJwks: () => Promise<{ readonly keys: readonly unknown[] }>;
  /** At most one JWKS fetch per interval, whatever tokens arrive; default 30 s. */
  readonly minRefreshIntervalMs?: number;
  /** A key set older than this is refetched (still rate-limited), so keys the authority dropped stop verifying; default 10 min. */
  readonly jwksMaxAgeMs?: number;
  /** Longest token lifetime (exp - iat) accepted; default 1 hour. */
  readonly tokenTtlMsMax?: number;
  /** Keys accepted from one JWKS; default 16. */
  readonly jwksKeysMax?: number;
  readonly tokenBytesMax?: number;
  /**
   * Tokens kept after a full verification, so that the same token's next requests skip the
   * signature and claim checks while its time claims are clearly current (default 1,024; 0 keeps
   * none). An operator's token is sent with every request of its hour: without this, each API
   * request cost one Ed25519 verify on the thread pool (about 3 % of the control plane's CPU per
   * command round trip in `sdc bench roundtrip`, issue 17).
   */
  readonly verifiedTokensMax?: number;
}

export interface VerifiedToken {
  readonly sub: string;
  readonly role: string;
  /** The whole verified payload, registered claims included. */
  readonly claims: Readonly<JWTPayload>;
}

interface VerifierConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly clock: Clock;
  readonly clockSkewMs: number;
  readonly fetchJwks: JwtVerifierOptions['fetchJwks'];
  readonly minRefreshIntervalMs: number;
  readonly jwksMaxAgeMs: number;
  readonly tokenTtlMsMax: number;
  readonly jwksKeysMax: number;
  readonly tokenBytesMax: number;
  readonly verifiedTokensMax: number;
}

/** A token that passed the full verification, with the key and kid it passed under. */
interface KeptToken {
  readonly kid: string;
  readonly key: CryptoKey;
  readonly verified: VerifiedToken;
}

interface KeySet {
  readonly keysByKid: ReadonlyMap<string, CryptoKey>;
  readonly fetchedAtMs: number;
}

const kidLengthMax = 128;
/** 64 signature bytes in unpadded base64url. */
const signatureChars = 86;
const segmentPattern = /^[A-Za-z0-9_-]+$/;

/**
 * Verifies the authority's tokens for the gateway and the API: one allowed alg (Ed25519),
 * explicit typ, issuer, audience, exp (required), nbf, iat (required, not in the future), all
 * against the injected clock. The JWKS is cached; an unknown kid or a stale set triggers a
 * refresh, but at most one fetch runs at a time and at most one starts per minRefreshIntervalMs,
 * so a flood of tokens with made-up kids costs the authority one request per interval.
 * Only SdcError escapes.
 */
export class JwtVerifier {
  readonly #config: VerifierConfig;
  #keySet: KeySet | undefined;
  #lastAttemptMs: number | undefined;
  #lastAttemptFailed = false;
  #lastFailure: unknown;
  #inFlight: Promise<void> | undefined;
  readonly #kept: BoundedLru<string, KeptToken>;

  private constructor(config: VerifierConfig) {
    this.#config = config;
    this.#kept = new BoundedLru(config.verifiedTokensMax);
  }

  static create(options: JwtVerifierOptions): JwtVerifier {
    const minRefreshIntervalMs = integerOption('minRefreshIntervalMs', options.minRefreshIntervalMs, 30_000, 1000, 60 * 60 * 1000);
    if (typeof options.fetchJwks !== 'function') {
      throw new SdcError('JWT_ARGUMENT_INVALID', 'fetchJwks must be a function', { option: 'fetchJwks' });
    }
    return new JwtVerifier({
      issuer: stringOption('issuer', options.issuer, 512),
      audience: stringOption('audience', options.audience, 512),
      clock: options.clock,
      clockSkewMs: integerOption('clockSkewMs', options.clockSkewMs, jwtLimits.clockSkewMs, 0, jwtLimits.clockSkewMsMax),
      fetchJwks: options.fetchJwks,
      minRefreshIntervalMs,
      jwksMaxAgeMs: integerOption('jwksMaxAgeMs', options.jwksMaxAgeMs, 10 * 60 * 1000, minRefreshIntervalMs, 24 * 60 * 60 * 1000),
      tokenTtlMsMax: integerOption('tokenTtlMsMax', options.tokenTtlMsMax, jwtLimits.tokenTtlMsMax, 1000, 24 * 60 * 60 * 1000),
      jwksKeysMax: integerOption('jwksKeysMax', options.jwksKeysMax, 16, 1, 256),
      tokenBytesMax: integerOption('tokenBytesMax', options.tokenBytesMax, jwtLimits.tokenBytesMax, 512, 64 * 1024),
      verifiedTokensMax: integerOption('verifiedTokensMax', options.verifiedTokensMax, 1024, 0, 65_536),
    });
  }

  async verify(token: string): Promise<VerifiedToken> {
    try {
      return await this.#verify(token);
    } catch (error) {
      throw sdcErrorFromJose(error);
    }
  }

  async #verify(token: string): Promise<VerifiedToken> {
    const kept = typeof token === 'string' ? this.#kept.get(token) : undefined;
    if (kept !== undefined) {
      // The same string verified before; the key lookup runs as for any token (a refreshed set
      // whose key for this kid is another object, or has none, sends it through the full check).
      const key = await this.#keyFor(kept.kid);
      if (key === kept.key && this.#clearlyCurrent(kept.verified.claims)) return kept.verified;
    }
    const config = this.#config;
    const kid = this.#checkedKid(token);
    const key = await this.#keyFor(kid);
    const { payload } = await jwtVerify(token, key, {
      algorithms: [JWT_ALG],
      typ: JWT_TYP,
      issuer: config.issuer,
      audience: config.audience,
      requiredClaims: ['exp', 'iat', 'sub'],
      // jose checks an iat in the future only when maxTokenAge is set.
      maxTokenAge: config.tokenTtlMsMax / 1000,
      clockTolerance: config.clockSkewMs / 1000,
      currentDate: new Date(config.clock.nowMs()),
    });
    const { sub, role, iat, exp } = payload;
    if (typeof sub !== 'string' || sub.length === 0) throw claimsInvalid('sub');
    if (typeof role !== 'string' || role.length === 0) throw claimsInvalid('role');
    // jose has checked both are numbers; the authority never issues a longer lifetime.
    if (iat === undefined || exp === undefined || (exp - iat) * 1000 > config.tokenTtlMsMax) {
      throw new SdcError('JWT_CLAIMS_INVALID', 'token lifetime exceeds the maximum', { claim: 'exp' });
    }
    // Frozen: a kept token's answer is handed to every later request that sends it.
    const verified: VerifiedToken = Object.freeze({ sub, role, claims: Object.freeze(payload) });
    this.#kept.set(token, { kid, key, verified });
    return verified;
  }

  /**
   * Whether a kept token's time claims pass jose's checks with no clock tolerance at all (a
   * stricter test than the full one, which allows clockSkewMs): exp after now, nbf and iat not
   * after now, iat within the maximum age. Everything else the full check judged (signature,
   * alg, typ, issuer, audience, required claims, lifetime) depends on the string and the key
   * only. A token near any bound goes through the full check again, which gives its exact error.
   */
  #clearlyCurrent(claims: Readonly<JWTPayload>): boolean {
    const nowS = Math.floor(this.#config.clock.nowMs() / 1000);
    const { exp, nbf, iat } = claims;
    return typeof exp === 'number' && exp > nowS
      && (nbf === undefined || (typeof nbf === 'number' && nbf <= nowS))
      && typeof iat === 'number' && iat <= nowS && nowS - iat <= this.#config.tokenTtlMsMax / 1000;
  }

  /**
   * Structural checks before any key lookup, so a malformed or foreign-alg token never costs a
   * JWKS fetch. The signature segment must be canonical base64url: jose ignores the 4 spare
   * bits of its last character, which would let 15 altered strings verify as the same token.
   */
  #checkedKid(token: unknown): string {
    if (typeof token !== 'string' || token.length > this.#config.tokenBytesMax) {
      throw new SdcError('JWT_MALFORMED', 'token is not a string within the size limit');
    }
    const segments = token.split('.');
    if (segments.length !== 3 || !segments.every((segment) => segmentPattern.test(segment))) {
      throw new SdcError('JWT_MALFORMED', 'token is not three base64url segments');
    }
    const signature = segments[2] ?? '';
    if (signature.length !== signatureChars || !canonicalBase64url(signature)) {
      throw new SdcError('JWT_MALFORMED', 'token signature segment is not a canonical 64-byte encoding');
    }
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new SdcError('JWT_MALFORMED', 'token header is not a base64url JSON object');
    }
    if (header.alg !== JWT_ALG) {
      throw new SdcError('JWT_ALG_NOT_ALLOWED', `token alg must be ${JWT_ALG}`, { alg: String(header.alg).slice(0, 32) });
    }
    const { kid } = header;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > kidLengthMax) {
      throw new SdcError('JWT_MALFORMED', 'token header has no valid kid');
    }
    return kid;
  }

  async #keyFor(kid: string): Promise<CryptoKey> {
    const cached = this.#keySet;
    const nowMs = this.#config.clock.nowMs();
    // A set fetched "after now" (the wall clock was stepped back since) is not fresh: its age is
    // unknown, and a key dropped from the JWKS would otherwise verify for as long as the step.
    const fresh = cached !== undefined && nowMs >= cached.fetchedAtMs && nowMs - cached.fetchedAtMs < this.#config.jwksMaxAgeMs;
    const known = cached?.keysByKid.get(kid);
    if (known !== undefined && fresh) return known;

    await this.#refresh(nowMs);
    // After a failed refresh a stale set still serves the kids it has: availability over freshness,
    // and the keys it holds were the authority's within jwksMaxAgeMs + one refresh interval.
    const key = this.#keySet?.keysByKid.get(kid);
    if (key !== undefined) return key;
    if (this.#keySet === undefined || this.#lastAttemptFailed) {
      throw new SdcError('JWT_JWKS_UNAVAILABLE', 'signing key set could not be fetched', {}, { cause: this.#lastFailure });
    }
    throw new SdcError('JWT_UNKNOWN_KID', 'token kid is not in the signing key set', { kid: kid.slice(0, 64) });
  }

  /** Joins the fetch in flight, or starts one if the interval since the last attempt has passed. */
  #refresh(nowMs: number): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    const last = this.#lastAttemptMs;
    // Too soon only when the last attempt is behind us by less than the interval. A last attempt
    // "after now" means the wall clock was stepped back: refresh now (and count the interval from
    // this reading), or a key rotated in meanwhile is JWT_UNKNOWN_KID until the clock passes the
    // old reading (review h2, finding 6).
    if (last !== undefined && nowMs >= last && nowMs - last < this.#config.minRefreshIntervalMs) return Promise.resolve();
    this.#lastAttemptMs = nowMs;
    const run = this.#fetchKeySet(nowMs).finally(() => {
      this.#inFlight = undefined;
    });
    this.#inFlight = run;
    return run;
  }

  async #fetchKeySet(nowMs: number): Promise<void> {
    try {
      const keysByKid = await importJwks(await this.#config.fetchJwks(), this.#config.jwksKeysMax);
      this.#keySet = { keysByKid, fetchedAtMs: nowMs };
      this.#lastAttemptFailed = false;
      this.#lastFailure = undefined;
    } catch (error) {
      this.#lastAttemptFailed = true;
      this.#lastFailure = error;
    }
  }
}

function claimsInvalid(claim: string): SdcError {
  return new SdcError('JWT_CLAIMS_INVALID', `token ${claim} claim must be a non-empty string`, { claim });
}

/**
 * Keeps the Ed25519 signing keys of a JWKS, imported from their public members only. Keys of
 * other types are skipped (a set may carry keys for other uses); an Ed25519 key that does not
 * import, a duplicate kid or too many keys makes the whole set invalid.
 */
async function importJwks(document: unknown, keysMax: number): Promise<Map<string, CryptoKey>> {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { keys?: unknown }).keys)) {
    throw new SdcError('JWT_JWKS_UNAVAILABLE', 'JWKS is not an object with a keys array');
  }
  const entries: unknown[] = (document as { keys: unknown[] }).keys;
  if (entries.length > keysMax) {
    throw new SdcError('JWT_JWKS_UNAVAILABLE', 'JWKS has too many keys', { count: entries.length, max: keysMax });
  }
  const keysByKid = new Map<string, CryptoKey>();
  for (const entry of entries) {
    if (typeof entry !== 'object' || entry === null) continue;
    const jwk = entry as Record<string, unknown>;
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') continue;
    if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== JWT_ALG)) continue;
    if (typeof jwk.kid !== 'string' || jwk.kid.length === 0 || jwk.kid.length > kidLengthMax || !isKey32(jwk.x)) {
      throw new SdcError('JWT_JWKS_UNAVAILABLE', 'JWKS has an Ed25519 key without a valid kid or x');
    }
    if (keysByKid.has(jwk.kid)) throw new SdcError('JWT_JWKS_UNAVAILABLE', 'JWKS has a duplicate kid');
    keysByKid.set(jwk.kid, await importVerificationKey({ x: jwk.x }));
  }
  return keysByKid;
}
