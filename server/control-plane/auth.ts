import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { JwtAuthority } from '../../trust/jwt-authority.js';
import { FileJwtKeyStore } from '../../trust/jwt-file-key-store.js';
import { MemoryJwtKeyStore } from '../../trust/jwt-key-store.js';
import { JwtVerifier } from '../../trust/jwt-verifier.js';
import { hasLoneSurrogate } from '../../core/protocol/audit-chain.js';
import { actors, type ServiceContext } from './context.js';
import { LiveTickets } from './live-tickets.js';
import { TokenSubjectCheck } from './token-subjects.js';
import { isRole, roleRank, type Role, UserDirectory } from './users.js';

export interface Principal {
  readonly name: string;
  readonly role: Role;
}

/** A principal from a verified token, with the token's expiry (live streams close then). */
export interface VerifiedPrincipal extends Principal {
  readonly tokenExpiresAtMs: number;
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
    this.#subjects = new TokenSubjectCheck({ roleOf: (name) => users.roleOf(name), clock: ctx.clock });
    this.liveTickets = new LiveTickets({ kv: ctx.kv, clock: ctx.clock, random: ctx.random, requireSubject: (name, role) => this.#subjects.require(name, role) });
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
    const verifier = JwtVerifier.create({
      issuer: options.issuer, audience: options.audience, clock: context.clock, fetchJwks: async () => authority.jwks(),
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
      const token = await this.authority.issue({ sub: user.name, role: user.role });
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
   * The principal of a valid token whose user still exists with at least the token's role
   * (API_TOKEN_SUBJECT_INVALID otherwise, within tokenSubjectLimits.cacheTtlMs of a change);
   * JWT_* errors for a bad token.
   */
  async verify(token: string): Promise<VerifiedPrincipal> {
    const verified = await this.#verifier.verify(token);
    if (!isRole(verified.role)) throw new SdcError('JWT_CLAIMS_INVALID', 'token role is not a known role', { claim: 'role' });
    await this.#subjects.require(verified.sub, verified.role);
    // exp is a number: the verifier required it and checked it against the clock.
    return { name: verified.sub, role: verified.role, tokenExpiresAtMs: Number(verified.claims.exp) * 1000 };
  }

  /** A user was removed or given another role by this process: its tokens are judged afresh at the next request. */
  subjectChanged(name: string): void {
    this.#subjects.forget(name);
  }

  static requireRole(principal: Principal, least: Role): void {
    if (roleRank(principal.role) < roleRank(least)) {
      throw new SdcError('API_FORBIDDEN', `this route needs role ${least} or above`, { role: principal.role, needed: least });
    }
  }
}

