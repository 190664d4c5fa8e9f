// jose's subpath, not its index (which loads all of jose's ~46 modules).
import type { CryptoKey } from 'jose';
import { SignJWT } from 'jose/jwt/sign';
import type { Clock, RandomSource } from '../core/ports/ports.js';
import { SdcError } from '../core/errors/index.js';
import {
  JWT_ALG,
  JWT_TYP,
  generatePrivateJwk,
  importSigningKey,
  jwkThumbprint,
  privateJwkIsConsistent,
  publicJwk,
  systemRandomBytes,
  type Ed25519PublicJwk,
} from './jwt-keys.js';
import type { JwtKeyStore, StoredKeyRing, StoredSigningKey } from './jwt-key-store.js';
import { integerOption, jwtLimits, stringOption } from './jwt-limits.js';

const dayMs = 24 * 60 * 60 * 1000;

export interface JwtAuthorityOptions {
  readonly store: JwtKeyStore;
  readonly clock: Clock;
  readonly issuer: string;
  readonly audience: string;
  /** A new signing key this often; default 7 days, at least the publication overlap. */
  readonly rotationIntervalMs?: number;
  /** Lifetime of a token when `issue` names none; default 15 minutes. */
  readonly tokenTtlMs?: number;
  /** Longest lifetime `issue` accepts; default 1 hour. Sets how long retired keys stay published. */
  readonly tokenTtlMsMax?: number;
  /** Clock skew the verifiers allow; default 30 s, at most 5 minutes. */
  readonly clockSkewMs?: number;
  /** Keys kept in the ring (active + retired within their overlap); default 4, in [2, 16]. */
  readonly keysMax?: number;
  readonly tokenBytesMax?: number;
  /**
   * How often `rotateIfDue` re-reads the store when nothing is due, to adopt a ring another
   * process sharing it wrote (a rotateNow there); default 60 s. A rotation that falls due is
   * always decided on the store's ring as it is then.
   */
  readonly reloadIntervalMs?: number;
  /** Seed source for new keys and jti; default node:crypto. The simulator passes a seeded one. */
  readonly random?: Pick<RandomSource, 'bytes'>;
}

export interface IssueRequest {
  readonly sub: string;
  readonly role: string;
  /** Default: the authority's tokenTtlMs; at most tokenTtlMsMax, at least 1 s. */
  readonly ttlMs?: number;
  /** Sets nbf: the token is refused before this time (allowing for clock skew). */
  readonly notBeforeMs?: number;
  /** Extra claims; JSON values only, and none of the registered names the authority sets. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export interface JwksDocument {
  readonly keys: readonly Ed25519PublicJwk[];
}

/** Claims the authority sets itself; a caller may not override them through `claims`. */
const reservedClaims = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'role']);
const subjectLengthMax = 256;
const roleLengthMax = 64;
const jtiBytes = 16;

interface ActiveSigner {
  readonly kid: string;
  readonly key: CryptoKey;
}

interface AuthorityConfig {
  readonly store: JwtKeyStore;
  readonly clock: Clock;
  readonly random: Pick<RandomSource, 'bytes'>;
  readonly issuer: string;
  readonly audience: string;
  readonly rotationIntervalMs: number;
  readonly tokenTtlMs: number;
  readonly tokenTtlMsMax: number;
  /** How long a retired key stays published: any token it signed has expired by then, skew included. */
  readonly overlapMs: number;
  readonly keysMax: number;
  readonly tokenBytesMax: number;
  readonly reloadIntervalMs: number;
}

function resolveConfig(options: JwtAuthorityOptions): AuthorityConfig {
  const tokenTtlMsMax = integerOption('tokenTtlMsMax', options.tokenTtlMsMax, jwtLimits.tokenTtlMsMax, 1000, dayMs);
  const clockSkewMs = integerOption('clockSkewMs', options.clockSkewMs, jwtLimits.clockSkewMs, 0, jwtLimits.clockSkewMsMax);
  const overlapMs = tokenTtlMsMax + clockSkewMs;
  return {
    store: options.store,
    clock: options.clock,
    random: options.random ?? systemRandomBytes,
    issuer: stringOption('issuer', options.issuer, 512),
    audience: stringOption('audience', options.audience, 512),
    // At least the overlap, so normally two keys are published: the active one and its predecessor.
    rotationIntervalMs: integerOption('rotationIntervalMs', options.rotationIntervalMs, 7 * dayMs, overlapMs, 365 * dayMs),
    tokenTtlMs: integerOption('tokenTtlMs', options.tokenTtlMs, Math.min(15 * 60 * 1000, tokenTtlMsMax), 1000, tokenTtlMsMax),
    tokenTtlMsMax,
    overlapMs,
    keysMax: integerOption('keysMax', options.keysMax, 4, 2, 16),
    tokenBytesMax: integerOption('tokenBytesMax', options.tokenBytesMax, jwtLimits.tokenBytesMax, 512, 64 * 1024),
    reloadIntervalMs: integerOption('reloadIntervalMs', options.reloadIntervalMs, 60_000, 1000, dayMs),
  };
}

function isPublished(key: StoredSigningKey, nowMs: number, overlapMs: number): boolean {
  return key.retiredAtMs === null || nowMs < key.retiredAtMs + overlapMs;
}

/**
 * The control plane's token issuer. It signs with one active Ed25519 key, rotates to a new key
 * every rotationIntervalMs, and keeps each retired key published in the JWKS for
 * tokenTtlMsMax + clockSkewMs, so every token verifies until its own exp. A key is saved to
 * the store before it signs anything, so no issued token names a key the ring could lose.
 *
 * Several authorities (control-plane replicas on one data volume) share one store and so one
 * ring: every change is a `store.update`, decided on the ring as stored at that moment, so the
 * first to find a rotation due makes the new key and the others adopt it instead of making their
 * own; `reload` (which the verifier calls on an unknown kid, rate-limited) and `rotateIfDue`
 * (every reloadIntervalMs) pick up a ring another process wrote.
 */
export class JwtAuthority {
  readonly #config: AuthorityConfig;
  /** Newest first; at most one active key. */
  #keys: readonly StoredSigningKey[] = [];
  #active: ActiveSigner | undefined;
  /** When the ring was last read from the store. */
  #loadedAtMs = 0;
  /** Ring changes run one at a time; callers wait here only while a rotation is due. */
  #tail: Promise<void> = Promise.resolve();

  private constructor(config: AuthorityConfig) {
    this.#config = config;
  }

  /** Loads (and checks) the stored ring, then rotates if the active key is due or missing. */
  static async create(options: JwtAuthorityOptions): Promise<JwtAuthority> {
    const authority = new JwtAuthority(resolveConfig(options));
    await authority.#serial(() => authority.#rotateLocked(authority.#config.clock.nowMs(), false));
    return authority;
  }

  /** kid of the key that signs new tokens. */
  get activeKid(): string {
    const active = this.#active;
    if (active === undefined) throw new SdcError('JWT_ARGUMENT_INVALID', 'authority has no active key');
    return active.kid;
  }

  /**
   * Rotates when the active key is older than rotationIntervalMs, and drops retired keys past
   * their overlap. The owner calls it periodically; `issue` calls it too.
   */
  async rotateIfDue(nowMs: number): Promise<void> {
    if (this.#maintenanceDue(nowMs)) {
      await this.#serial(() => this.#rotateLocked(nowMs, false));
    } else if (nowMs < this.#loadedAtMs || nowMs - this.#loadedAtMs >= this.#config.reloadIntervalMs) {
      // (nowMs < #loadedAtMs: the wall clock was stepped back since the last read; read now rather
      // than when the clock passes that reading again.)
      await this.#serial(() => this.#reloadLocked(nowMs));
    }
  }

  /**
   * Re-reads the store and adopts its ring: keys another process sharing it made verify here
   * from then on. Reads the store every call; the verifier bounds how often it calls.
   */
  async reload(): Promise<void> {
    await this.#serial(() => this.#reloadLocked(this.#config.clock.nowMs()));
  }

  /** Rotates now (for example after a suspected key compromise); returns the new kid. */
  async rotateNow(): Promise<string> {
    await this.#serial(() => this.#rotateLocked(this.#config.clock.nowMs(), true));
    return this.activeKid;
  }

  /** The public keys a verifier needs now: the active key and retired keys within their overlap. */
  jwks(): JwksDocument {
    const nowMs = this.#config.clock.nowMs();
    return {
      keys: this.#keys
        .filter((key) => isPublished(key, nowMs, this.#config.overlapMs))
        .map((key) => publicJwk(key.privateJwk, key.kid)),
    };
  }

  async issue(request: IssueRequest): Promise<string> {
    const config = this.#config;
    const sub = stringOption('sub', request.sub, subjectLengthMax);
    const role = stringOption('role', request.role, roleLengthMax);
    const ttlMs = integerOption('ttlMs', request.ttlMs, config.tokenTtlMs, 1000, config.tokenTtlMsMax);
    const claims = extraClaims(request.claims);
    const nowMs = config.clock.nowMs();
    await this.rotateIfDue(nowMs);
    const signer = this.#active;
    if (signer === undefined) throw new SdcError('JWT_ARGUMENT_INVALID', 'authority has no active key');

    // NumericDate is in seconds; rounding exp down keeps the lifetime at or under ttlMs.
    const iat = Math.floor(nowMs / 1000);
    const exp = iat + Math.floor(ttlMs / 1000);
    const builder = new SignJWT({ ...claims, role })
      .setProtectedHeader({ alg: JWT_ALG, kid: signer.kid, typ: JWT_TYP })
      .setIssuer(config.issuer)
      .setAudience(config.audience)
      .setSubject(sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(Buffer.from(config.random.bytes(jtiBytes)).toString('base64url'));
    if (request.notBeforeMs !== undefined) {
      const nbfMs = integerOption('notBeforeMs', request.notBeforeMs, 0, 0, (exp - 1) * 1000);
      builder.setNotBefore(Math.floor(nbfMs / 1000));
    }
    const token = await builder.sign(signer.key);
    if (token.length > config.tokenBytesMax) {
      throw new SdcError('JWT_ARGUMENT_INVALID', 'issued token would exceed tokenBytesMax', {
        bytes: token.length,
        max: config.tokenBytesMax,
      });
    }
    return token;
  }

  #maintenanceDue(nowMs: number): boolean {
    const active = this.#keys.find((key) => key.retiredAtMs === null);
    if (active === undefined || nowMs - active.createdAtMs >= this.#config.rotationIntervalMs) return true;
    return this.#keys.some((key) => !isPublished(key, nowMs, this.#config.overlapMs));
  }

  /**
   * Rotates (when forced, or the stored ring's active key is missing or due) and drops keys past
   * their overlap, on the ring as stored now; adopts whatever ring the store holds at the end.
   */
  async #rotateLocked(nowMs: number, force: boolean): Promise<void> {
    const config = this.#config;
    let adopted: readonly StoredSigningKey[] = [];
    await config.store.update(async (current) => {
      let keys = current === undefined ? [] : await checkedKeys(current);
      adopted = keys;
      const active = keys.find((key) => key.retiredAtMs === null);
      let changed = false;
      if (force || active === undefined || nowMs - active.createdAtMs >= config.rotationIntervalMs) {
        const privateJwk = generatePrivateJwk(config.random);
        const kid = await jwkThumbprint(privateJwk);
        if (keys.some((key) => key.kid === kid)) {
          throw new SdcError('JWT_ARGUMENT_INVALID', 'random source produced a key that is already in the ring');
        }
        const retired = keys.map((key) =>
          key.retiredAtMs === null ? { ...key, retiredAtMs: Math.max(nowMs, key.createdAtMs) } : key,
        );
        keys = [{ kid, createdAtMs: nowMs, retiredAtMs: null, privateJwk }, ...retired];
        changed = true;
      }
      // Past its overlap every token a key signed has expired. The keysMax cut only bites when
      // rotateNow is called in a burst; it drops the oldest keys, whose tokens are then refused.
      const kept = keys.filter((key) => isPublished(key, nowMs, config.overlapMs)).slice(0, config.keysMax);
      if (!changed && kept.length === keys.length) return undefined;
      adopted = kept;
      const ring: StoredKeyRing = { version: 1, keys: kept };
      return ring;
    });
    await this.#adopt(adopted, nowMs);
  }

  async #reloadLocked(nowMs: number): Promise<void> {
    const ring = await this.#config.store.load();
    // An emptied store (never written by an authority) leaves the ring in memory as it is.
    if (ring === undefined) return;
    await this.#adopt(await checkedKeys(ring), nowMs);
  }

  async #adopt(keys: readonly StoredSigningKey[], nowMs: number): Promise<void> {
    const activeKid = keys.find((key) => key.retiredAtMs === null)?.kid;
    const signer = activeKid !== undefined && activeKid === this.#active?.kid ? this.#active : await activeSigner(keys);
    this.#keys = keys;
    this.#active = signer;
    this.#loadedAtMs = nowMs;
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** Refuses a ring whose keys do not match their kid or whose x does not belong to d. */
async function checkedKeys(ring: StoredKeyRing): Promise<readonly StoredSigningKey[]> {
  for (const key of ring.keys) {
    if (!privateJwkIsConsistent(key.privateJwk) || (await jwkThumbprint(key.privateJwk)) !== key.kid) {
      throw new SdcError('JWT_KEY_STORE_INVALID', 'stored key does not match its kid or public key', { kid: key.kid });
    }
  }
  return [...ring.keys].sort((a, b) => b.createdAtMs - a.createdAtMs);
}

async function activeSigner(keys: readonly StoredSigningKey[]): Promise<ActiveSigner | undefined> {
  const active = keys.find((key) => key.retiredAtMs === null);
  return active === undefined ? undefined : { kid: active.kid, key: await importSigningKey(active.privateJwk) };
}

function extraClaims(claims: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  if (claims === undefined) return {};
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new SdcError('JWT_ARGUMENT_INVALID', 'claims must be a plain object');
  }
  for (const name of Object.keys(claims)) {
    if (reservedClaims.has(name)) {
      throw new SdcError('JWT_ARGUMENT_INVALID', `claim ${name} is set by the authority`, { claim: name });
    }
  }
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(claims));
  } catch {
    throw new SdcError('JWT_ARGUMENT_INVALID', 'claims must be JSON values');
  }
  return copy as Record<string, unknown>;
}
