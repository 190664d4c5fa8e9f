import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { JwtAuthority } from '../../trust/jwt-authority.js';
import { FileJwtKeyStore } from '../../trust/jwt-file-key-store.js';
import { MemoryJwtKeyStore } from '../../trust/jwt-key-store.js';
import { JwtVerifier } from '../../trust/jwt-verifier.js';
import { hasLoneSurrogate } from '../../core/protocol/audit-chain.js';
import { userChangeChannel, type UserChangeNotice } from '../bus-contract/streams.js';
import { actors, type ServiceContext } from './context.js';
import { LiveTickets } from './live-tickets.js';
import { TokenSubjectCheck } from './token-subjects.js';
import { isRole, roleRank, type Role, UserDirectory } from './users.js';

export interface Principal {
  readonly name: string;
  readonly role: Role;
}

/** A principal from a verified token, with the token's expiry (live streams close then) and generation. */
export interface VerifiedPrincipal extends Principal {
  readonly tokenExpiresAtMs: number;
  /** The user's token generation when the token was issued (claim `gen`; 0 without one). */
  readonly tokenGeneration: number;
  /** The id of the account the token was issued to (claim `uid`; absent in a token from before it). */
  readonly tokenUserId?: string | undefined;
  /** The token's `iat`, in seconds (absent only in a principal from a live ticket from before it). */
  readonly tokenIssuedAtS?: number | undefined;
}

/**
 * The private claim that carries the user's token generation (migration 022). A token issued
 * before it existed has none and counts as generation 0: it keeps working until the user's first
 * revocation, so an upgrade logs nobody out, and a revocation after the upgrade ends it too.
 */
export const tokenGenerationClaim = 'gen';

/** The token's generation: absent is 0; anything but a non-negative safe integer is JWT_CLAIMS_INVALID. */
function tokenGenerationOf(claims: Readonly<Record<string, unknown>>): number {
  const value = claims[tokenGenerationClaim];
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new SdcError('JWT_CLAIMS_INVALID', 'token generation is not a non-negative integer', { claim: tokenGenerationClaim });
  }
  return value;
}

/**
 * The private claim that binds a token to its account: the user's id (users.id, never reused or
 * changed). The subject is a name, and a name can be taken again after its account is removed;
 * a token whose `uid` is not the id of the account holding the name now is
 * API_TOKEN_SUBJECT_INVALID (token-subjects.ts). A token without it is judged by its `iat`
 * against the account's creation time instead.
 */
export const tokenUserIdClaim = 'uid';
// users.id is VARCHAR(64); a longer claim cannot be an id of ours.
const tokenUserIdCharsMax = 64;

/** The token's account id: absent is undefined; anything but a non-empty string of at most 64 characters is JWT_CLAIMS_INVALID. */
function tokenUserIdOf(claims: Readonly<Record<string, unknown>>): string | undefined {
  const value = claims[tokenUserIdClaim];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > tokenUserIdCharsMax) {
    throw new SdcError('JWT_CLAIMS_INVALID', 'token user id is not a user id', { claim: tokenUserIdClaim });
  }
  return value;
}

// A notice names one user: users.name is at most 128 characters; anything much longer is not ours.
const userChangeNoticeBytesMax = 1_024;

function userOfNotice(text: string): string | undefined {
  if (text.length > userChangeNoticeBytesMax) return undefined;
  try {
    const notice = JSON.parse(text) as Partial<UserChangeNotice> | null;
    const user = notice?.user;
    return typeof user === 'string' && user.length > 0 && user.length <= 128 ? user : undefined;
  } catch {
    return undefined;
  }
}

/** Characters of a login name kept in the audit subject (`user:` + name stays within the chain's 256). */
const shownLoginNameCharsMax = 128;

/**
 * A login name as the audit subject shows it: control characters as `?`, a lone surrogate as
 * the text `\uXXXX`, cut to 128 characters without splitting a surrogate pair, so every name,
 * however malformed, has an entry that can be hashed.
 */
export function shownLoginName(name: string): string {
  const escaped = name.replace(/[\u0000-\u001f\u007f]/g, '?')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const cut = escaped.slice(0, shownLoginNameCharsMax).replace(/[\ud800-\udbff]$/, '');
  return cut === '' ? '?' : cut;
}

export interface AuthServiceOptions {
  readonly context: ServiceContext;
  readonly issuer: string;
  readonly audience: string;
  /** Key ring file under `<dataDir>/jwt/keys.json`; in memory when absent. */
  readonly dataDir?: string;
  readonly tokenTtlMs?: number;
  readonly rotationIntervalMs?: number;
  readonly tokenTtlMsMax?: number;
  /** Clock skew the verifier allows, and the authority keeps retired keys for (default 30 s). */
  readonly clockSkewMs?: number;
  readonly scryptParams?: { N: number; r: number; p: number };
}

/** The shortest interval between two reads of the JWT key ring file by the token verifier. */
export const jwksReloadIntervalMsMin = 5_000;

/**
 * Logins and token checks. Tokens come from trust's JwtAuthority and are checked by a
 * JwtVerifier reading the authority's own JWKS, exactly as a gateway in another process does.
 */
export class AuthService {
  readonly users: UserDirectory;
  readonly authority: JwtAuthority;
  readonly #verifier: JwtVerifier;
  readonly #ctx: ServiceContext;
  readonly #subjects: TokenSubjectCheck;
  /** One-time tickets that open the live stream in place of a token in its URL; checked against the users like a token. */
  readonly liveTickets: LiveTickets;

  private constructor(ctx: ServiceContext, users: UserDirectory, authority: JwtAuthority, verifier: JwtVerifier) {
    this.#ctx = ctx;
    this.users = users;
    this.authority = authority;
    this.#verifier = verifier;
    this.#subjects = new TokenSubjectCheck({ subjectOf: (name) => users.tokenSubjectOf(name), clock: ctx.clock });
    this.liveTickets = new LiveTickets({
      kv: ctx.kv, clock: ctx.clock, random: ctx.random,
      requireSubject: (name, role, tokenGeneration, binding) => this.#subjects.require(name, role, tokenGeneration, binding),
    });
  }

  static async create(options: AuthServiceOptions): Promise<AuthService> {
    const { context } = options;
    const store = options.dataDir === undefined ? new MemoryJwtKeyStore() : new FileJwtKeyStore({ path: join(options.dataDir, 'jwt', 'keys.json') });
    const authority = await JwtAuthority.create({
      store, clock: context.clock, issuer: options.issuer, audience: options.audience, random: context.random,
      ...(options.tokenTtlMs === undefined ? {} : { tokenTtlMs: options.tokenTtlMs }),
      ...(options.rotationIntervalMs === undefined ? {} : { rotationIntervalMs: options.rotationIntervalMs }),
      ...(options.tokenTtlMsMax === undefined ? {} : { tokenTtlMsMax: options.tokenTtlMsMax }),
      ...(options.clockSkewMs === undefined ? {} : { clockSkewMs: options.clockSkewMs }),
    });
    // Other control planes on the data volume share the ring (decision 0017): on an unknown kid
    // (a key one of them rotated to) the verifier re-reads the ring file, at most once per
    // jwksReloadIntervalMsMin, so made-up kids cannot make it read the disk per request. A failed
    // read still answers with the keys this process holds.
    const verifier = JwtVerifier.create({
      issuer: options.issuer, audience: options.audience, clock: context.clock,
      minRefreshIntervalMs: jwksReloadIntervalMsMin,
      fetchJwks: async () => {
        try {
          await authority.reload();
        } catch (error) {
          context.logger.warn({ err: error }, 'JWT key ring not re-read; verifying with the keys this process holds');
        }
        return authority.jwks();
      },
      ...(options.clockSkewMs === undefined ? {} : { clockSkewMs: options.clockSkewMs }),
    });
    const users = new UserDirectory({ db: context.db, random: context.random, ...(options.scryptParams === undefined ? {} : { scryptParams: options.scryptParams }) });
    return new AuthService(context, users, authority, verifier);
  }

  /**
   * Checks the password, audits success and failure, returns a signed token. A name or password
   * with a lone surrogate (no user name can hold one, and no text encoding can carry it) is
   * refused with API_LOGIN_NOT_UNICODE and audited as a failed login with the name escaped.
   */
  async login(name: string, password: string): Promise<{ token: string; role: Role }> {
    if (hasLoneSurrogate(name) || hasLoneSurrogate(password)) {
      await this.#ctx.audit.append({ kind: 'auth.login_failed', actor: 'anonymous', subject: `user:${shownLoginName(name)}`, payload: { reason: 'not_unicode' } });
      throw new SdcError('API_LOGIN_NOT_UNICODE', 'name and password must be well-formed Unicode text');
    }
    try {
      const user = await this.users.authenticate(name, password);
      // The generation read with the password: a revocation between the two makes this token old at once.
      const token = await this.authority.issue({ sub: user.name, role: user.role, claims: { [tokenGenerationClaim]: user.tokenGeneration, [tokenUserIdClaim]: user.id } });
      await this.#ctx.audit.append({ kind: 'auth.login', actor: actors.user(user.name), subject: `user:${user.name}`, payload: { role: user.role } });
      return { token, role: user.role };
    } catch (error) {
      if (SdcError.is(error, 'API_LOGIN_FAILED')) {
        await this.#ctx.audit.append({ kind: 'auth.login_failed', actor: 'anonymous', subject: `user:${shownLoginName(name)}`, payload: {} });
      }
      throw error;
    }
  }

  /**
   * The principal of a valid token whose user still exists with at least the token's role, and
   * is the account the token was issued to, not a later one of the same name
   * (API_TOKEN_SUBJECT_INVALID otherwise) and whose generation is the user's current one
   * (API_TOKEN_REVOKED otherwise), within tokenSubjectLimits.cacheTtlMs of a change made by
   * another process (at once for one made by this one); JWT_* errors for a bad token.
   */
  async verify(token: string): Promise<VerifiedPrincipal> {
    const verified = await this.#verifier.verify(token);
    if (!isRole(verified.role)) throw new SdcError('JWT_CLAIMS_INVALID', 'token role is not a known role', { claim: 'role' });
    const tokenGeneration = tokenGenerationOf(verified.claims);
    const tokenUserId = tokenUserIdOf(verified.claims);
    // exp and iat are numbers: the verifier required them and checked them against the clock.
    const tokenIssuedAtS = Number(verified.claims.iat);
    await this.#subjects.require(verified.sub, verified.role, tokenGeneration, { userId: tokenUserId, issuedAtS: tokenIssuedAtS });
    return { name: verified.sub, role: verified.role, tokenExpiresAtMs: Number(verified.claims.exp) * 1000, tokenGeneration, tokenUserId, tokenIssuedAtS };
  }

  /**
   * Ends every token `name` holds (POST /v1/auth/logout-all), audited as auth.logout_all in the
   * same transaction (the caller settles the audit). Every process refuses them at once
   * (subjectChanged); the caller closes the user's live streams here at once, before anything
   * else awaits, so that it counts them (the other processes' re-checks follow the notice).
   */
  async revokeTokens(name: string, actor: string): Promise<void> {
    await this.users.revokeTokens({
      name,
      audit: (tx, user) => this.#ctx.audit.record(tx, { kind: 'auth.logout_all', actor: actors.user(actor), subject: `user:${user.name}`, payload: {} }),
    });
    this.subjectChanged(name);
  }

  /**
   * A user was removed, given another role or a new password, or had their tokens revoked, by
   * this process: its tokens are judged afresh at the next request here, and every control plane
   * is told on the kv channel (userChangeChannel) to do the same and re-check the user's live
   * streams. Never throws and never waits: a lost notice costs the other processes at most the
   * subject cache's 5 s (their periodic stream re-check), not the change.
   */
  subjectChanged(name: string): void {
    this.#subjects.forget(name);
    const notice: UserChangeNotice = { user: name };
    void this.#ctx.kv.publish(userChangeChannel, JSON.stringify(notice)).catch((error: unknown) => {
      this.#ctx.logger.warn({ err: error, user: name }, 'user change notice not published; other control planes notice within the subject cache TTL');
    });
  }

  /**
   * Follows the user changes every control plane announces (subjectChanged): forgets the user's
   * cached subject and calls `onChanged` with the name. When the subscription was lost for a while
   * (notices may have been missed), forgets every user and calls `onChanged(undefined)`: re-check
   * everyone. A notice that is not ours (not JSON, no valid name) is logged and dropped.
   */
  async watchSubjectChanges(onChanged: (name: string | undefined) => void): Promise<() => Promise<void>> {
    return this.#ctx.kv.subscribe(userChangeChannel, (text) => {
      const name = userOfNotice(text);
      if (name === undefined) {
        this.#ctx.logger.warn({ code: 'API_VALIDATION', bytes: text.length }, 'user change notice malformed; dropped');
        return;
      }
      this.#subjects.forget(name);
      onChanged(name);
    }, {
      onResubscribed: () => {
        this.#subjects.forgetAll();
        onChanged(undefined);
      },
    });
  }

  /**
   * Throws as verify() would for the token `principal` came from (API_TOKEN_REVOKED,
   * API_TOKEN_SUBJECT_INVALID) if its user has changed since: a live stream opened with it is
   * re-checked so. With `fresh`, the users table is read now, not the cache.
   */
  async recheck(principal: VerifiedPrincipal, options: { fresh?: boolean } = {}): Promise<void> {
    await this.#subjects.require(principal.name, principal.role, principal.tokenGeneration, { userId: principal.tokenUserId, issuedAtS: principal.tokenIssuedAtS }, options);
  }

  static requireRole(principal: Principal, least: Role): void {
    if (roleRank(principal.role) < roleRank(least)) {
      throw new SdcError('API_FORBIDDEN', `this route needs role ${least} or above`, { role: principal.role, needed: least });
    }
  }
}

