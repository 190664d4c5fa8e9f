import { SdcError } from '../../core/errors/index.js';
import { policyRoles, type PolicyRole } from '../../core/protocol/policy.js';
import type { RandomSource } from '../../core/ports/ports.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { newId } from './context.js';
import { pageLimit } from './pagination.js';
import { checkPasswordStrength, hashNeedsUpgrade, hashPassword, passwordHashDefaults, scryptConcurrencyLimits, verifyPassword, verifyPasswordPadded } from './passwords.js';

export type Role = PolicyRole;
export const roles = policyRoles;
const userNamePattern = /^[A-Za-z0-9_.@-]{1,128}$/;

export interface User {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly createdAtMs: number;
}

interface UserRow { id: string; name: string; role: string; password_hash: string; created_at: number; token_generation: number }

/**
 * What a token's check needs of its user: the role now, the generation tokens must carry
 * (migration 022), and which account holds the name (its immutable id and creation time), so a
 * token of a removed account is not taken for one created later under the same name.
 */
export interface TokenSubject {
  readonly role: Role;
  readonly tokenGeneration: number;
  readonly id: string;
  readonly createdAtMs: number;
}

/** A user whose password was just checked, with the generation a token issued now carries. */
export interface AuthenticatedUser extends User {
  readonly tokenGeneration: number;
}

/**
 * Every change that must end a user's existing tokens adds one to users.token_generation in the
 * same UPDATE (docs/security/threat-model.md, "Revoking a user's tokens").
 */
const nextGeneration = 'token_generation = token_generation + 1';

/** A stored row as a User; a role the code does not know reads as viewer, the least one. */
function userOf(row: Pick<UserRow, 'id' | 'name' | 'role' | 'created_at'>): User {
  return { id: row.id, name: row.name, role: isRole(row.role) ? row.role : 'viewer', createdAtMs: Number(row.created_at) };
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}

/** Rank for role checks: viewer < operator < approver < admin. */
export function roleRank(role: Role): number {
  return roles.indexOf(role);
}

/**
 * The last name of the previous page, from its cursor (the name in base64url). Its own format, not
 * pagination.ts's `<integer>.<id>`, whose ids may not hold the `@` a user name may.
 */
function userCursorName(cursor: string): string {
  const name = cursor.length <= 256 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!userNamePattern.test(name)) throw new SdcError('API_CURSOR_INVALID', 'cursor is not one this server issued');
  return name;
}

export function requireUserName(name: string): string {
  if (!userNamePattern.test(name)) throw new SdcError('API_VALIDATION', 'user name must be 1-128 characters of [A-Za-z0-9_.@-]');
  return name;
}

/**
 * Operators in the `users` table. Unknown names and wrong passwords are one answer
 * (API_LOGIN_FAILED), and an unknown name still costs one scrypt, so neither the answer nor the
 * time tells a guesser which names exist. Every scrypt goes through one ConcurrencyGate
 * (scryptConcurrencyLimits), so a flood of logins cannot take the whole thread pool.
 */
export class UserDirectory {
  readonly #db: SqlDatabase;
  readonly #random: RandomSource;
  readonly #scryptParams: { N: number; r: number; p: number } | undefined;
  #dummyHash: Promise<string> | undefined;
  readonly #scrypt = new ConcurrencyGate({
    ...scryptConcurrencyLimits,
    refusal: () => new SdcError('API_AUTH_BUSY', 'too many password checks in progress; retry shortly', { retryAfterS: 1 }),
  });

  constructor(options: { db: SqlDatabase; random: RandomSource; scryptParams?: { N: number; r: number; p: number } }) {
    this.#db = options.db;
    this.#random = options.random;
    this.#scryptParams = options.scryptParams;
  }

  /** `audit`, when given, runs in the INSERT's transaction (the user and its audit entry commit together). */
  async add(options: { name: string; role: string; password: string; nowMs: number; audit?: (tx: SqlExecutor, user: User) => Promise<void> }): Promise<User> {
    const name = requireUserName(options.name);
    if (!isRole(options.role)) throw new SdcError('API_VALIDATION', `role must be one of ${roles.join(', ')}`);
    checkPasswordStrength(options.password);
    const hash = await this.#scrypt.run(() => hashPassword(options.password, this.#random, this.#scryptParams));
    const user: User = { id: newId('u', this.#random), name, role: options.role, createdAtMs: options.nowMs };
    try {
      await this.#db.transaction(async (tx) => {
        await tx.execute('INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', [user.id, name, user.role, hash, user.createdAtMs]);
        await options.audit?.(tx, user);
      });
    } catch (error) {
      if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw new SdcError('API_USER_EXISTS', `user ${name} already exists`, { name });
      throw error;
    }
    return user;
  }

  /** One page of users by name (keyset: the cursor is the last name shown). */
  async list(options: { limit?: number; cursor?: string }): Promise<{ items: User[]; next_cursor: string | null }> {
    const limit = pageLimit(options.limit);
    const after = options.cursor === undefined ? undefined : userCursorName(options.cursor);
    const rows = await this.#db.query<UserRow>(
      `SELECT id, name, role, created_at FROM users${after === undefined ? '' : ' WHERE name > ?'} ORDER BY name ASC LIMIT ${limit + 1}`,
      after === undefined ? [] : [after],
    );
    const items = rows.slice(0, limit).map(userOf);
    const last = items.at(-1);
    return { items, next_cursor: rows.length > limit && last !== undefined ? Buffer.from(last.name, 'utf8').toString('base64url') : null };
  }

  /**
   * Removes a user; API_USER_NOT_FOUND when there is none, API_LAST_ADMIN when it is the only
   * admin (nobody could then manage users without the offline `sdc user add`).
   */
  async remove(options: { name: string; audit?: (tx: SqlExecutor, removed: User) => Promise<void> }): Promise<User> {
    return this.#db.transaction(async (tx) => {
      const { user, admins } = await this.#lockedUser(tx, options.name);
      if (user.role === 'admin' && admins === 1) throw new SdcError('API_LAST_ADMIN', `${user.name} is the last admin and cannot be removed`, { name: user.name });
      await tx.execute('DELETE FROM users WHERE id = ?', [user.id]);
      await options.audit?.(tx, user);
      return user;
    });
  }

  /**
   * Gives a user another role; API_LAST_ADMIN when that would leave no admin. Setting the role
   * a user already holds changes nothing and records nothing (`changed: false`).
   */
  async setRole(options: { name: string; role: string; audit?: (tx: SqlExecutor, change: { user: User; from: Role }) => Promise<void> }): Promise<{ user: User; from: Role; changed: boolean }> {
    const role = options.role;
    if (!isRole(role)) throw new SdcError('API_VALIDATION', `role must be one of ${roles.join(', ')}`);
    return this.#db.transaction(async (tx) => {
      const { user, admins } = await this.#lockedUser(tx, options.name);
      if (user.role === role) return { user, from: user.role, changed: false };
      if (user.role === 'admin' && admins === 1) throw new SdcError('API_LAST_ADMIN', `${user.name} is the last admin and cannot be given another role`, { name: user.name });
      // A new role ends the old tokens either way: a demoted user's would be refused for the role
      // anyway, and a promoted user logs in again for the new one (one rule, nothing to reason about).
      await tx.execute(`UPDATE users SET role = ?, ${nextGeneration} WHERE id = ?`, [role, user.id]);
      const changed: User = { ...user, role };
      await options.audit?.(tx, { user: changed, from: user.role });
      return { user: changed, from: user.role, changed: true };
    });
  }

  /**
   * Sets a new password, hashed as `add` hashes it. With `currentPassword` (a user changing
   * their own), that must be the stored one first: API_CURRENT_PASSWORD_WRONG otherwise. Ends
   * every token the user holds (the caller's own too): the point of a new password is usually
   * that the old one, or a token taken with it, may be in someone else's hands.
   */
  async setPassword(options: { name: string; password: string; currentPassword?: string; audit?: (tx: SqlExecutor, user: User) => Promise<void> }): Promise<User> {
    checkPasswordStrength(options.password);
    const [row] = userNamePattern.test(options.name) ? await this.#db.query<UserRow>('SELECT * FROM users WHERE name = ?', [options.name]) : [];
    if (row === undefined) throw new SdcError('API_USER_NOT_FOUND', `no user named ${options.name}`, { name: options.name });
    if (options.currentPassword !== undefined && !(await this.#scrypt.run(() => verifyPassword(options.currentPassword!, row.password_hash)))) {
      throw new SdcError('API_CURRENT_PASSWORD_WRONG', 'the current password is wrong');
    }
    const hash = await this.#scrypt.run(() => hashPassword(options.password, this.#random, this.#scryptParams));
    return this.#db.transaction(async (tx) => {
      // By id: a user removed and re-created under the same name meanwhile is another account.
      const { changes } = await tx.execute(`UPDATE users SET password_hash = ?, ${nextGeneration} WHERE id = ?`, [hash, row.id]);
      if (changes !== 1) throw new SdcError('API_USER_NOT_FOUND', `no user named ${options.name}`, { name: options.name });
      const user = userOf(row);
      await options.audit?.(tx, user);
      return user;
    });
  }

  /**
   * The named user and the number of admins, read with every admin row locked (MySQL: FOR
   * UPDATE; SQLite runs one writer at a time), so two admins demoting or removing each other at
   * once cannot both see "another admin is left".
   */
  async #lockedUser(tx: SqlExecutor, name: string): Promise<{ user: User; admins: number }> {
    const lockingRead = tx.dialect === 'mysql' ? ' FOR UPDATE' : '';
    const admins = await tx.query<{ id: string }>(`SELECT id FROM users WHERE role = 'admin'${lockingRead}`);
    const [row] = userNamePattern.test(name) ? await tx.query<UserRow>(`SELECT id, name, role, created_at FROM users WHERE name = ?${lockingRead}`, [name]) : [];
    if (row === undefined) throw new SdcError('API_USER_NOT_FOUND', `no user named ${name}`, { name });
    return { user: userOf(row), admins: admins.length };
  }

  /**
   * Ends every token `name` holds now (POST /v1/auth/logout-all): the user's generation goes up
   * by one. API_USER_NOT_FOUND when there is no such user. `audit` runs in the UPDATE's transaction.
   */
  async revokeTokens(options: { name: string; audit?: (tx: SqlExecutor, user: User) => Promise<void> }): Promise<User> {
    return this.#db.transaction(async (tx) => {
      const [row] = userNamePattern.test(options.name) ? await tx.query<UserRow>('SELECT id, name, role, created_at FROM users WHERE name = ?', [options.name]) : [];
      if (row === undefined) throw new SdcError('API_USER_NOT_FOUND', `no user named ${options.name}`, { name: options.name });
      await tx.execute(`UPDATE users SET ${nextGeneration} WHERE id = ?`, [row.id]);
      const user = userOf(row);
      await options.audit?.(tx, user);
      return user;
    });
  }

  async count(): Promise<number> {
    const [row] = await this.#db.query<{ n: number }>('SELECT COUNT(*) AS n FROM users');
    return Number(row?.n ?? 0);
  }

  /** The user's current role, or undefined when no user has this name (token checks). */
  async roleOf(name: string): Promise<Role | undefined> {
    if (!userNamePattern.test(name)) return undefined;
    const [row] = await this.#db.query<{ role: string }>('SELECT role FROM users WHERE name = ?', [name]);
    return row !== undefined && isRole(row.role) ? row.role : undefined;
  }

  /** The user's role, token generation, id and creation time now, or undefined when no user has this name (token checks). */
  async tokenSubjectOf(name: string): Promise<TokenSubject | undefined> {
    if (!userNamePattern.test(name)) return undefined;
    const [row] = await this.#db.query<Pick<UserRow, 'id' | 'role' | 'token_generation' | 'created_at'>>('SELECT id, role, token_generation, created_at FROM users WHERE name = ?', [name]);
    return row !== undefined && isRole(row.role)
      ? { role: row.role, tokenGeneration: Number(row.token_generation), id: row.id, createdAtMs: Number(row.created_at) }
      : undefined;
  }

  /**
   * A hash made with a lower cost than new hashes get (N = 2^15 before 2026-12-06) is replaced
   * after a successful login, while the password is at hand. Best effort: the login stands if
   * this fails (a busy gate), and a hash changed meanwhile (a new password) is left alone.
   */
  async #upgradeHash(row: UserRow, password: string): Promise<void> {
    if (!hashNeedsUpgrade(row.password_hash, this.#scryptParams ?? passwordHashDefaults)) return;
    try {
      const hash = await this.#scrypt.run(() => hashPassword(password, this.#random, this.#scryptParams));
      await this.#db.execute('UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?', [hash, row.id, row.password_hash]);
    } catch {
      // The old hash still verifies; the next login tries again.
    }
  }

  /** The user for a correct name and password, with its token generation; API_LOGIN_FAILED otherwise. */
  async authenticate(name: string, password: string): Promise<AuthenticatedUser> {
    const [row] = userNamePattern.test(name) ? await this.#db.query<UserRow>('SELECT * FROM users WHERE name = ?', [name]) : [];
    if (row === undefined) {
      this.#dummyHash ??= hashPassword('not-a-real-password', this.#random, this.#scryptParams);
      const dummyHash = await this.#dummyHash;
      await this.#scrypt.run(() => verifyPassword(password, dummyHash));
      throw new SdcError('API_LOGIN_FAILED', 'unknown user or wrong password');
    }
    // A wrong password costs about one check at the current cost even for a hash made cheaper
    // before (N = 2^15): the same as the unknown name's dummy above (review h12 finding 4).
    if (!(await this.#scrypt.run(() => verifyPasswordPadded(password, row.password_hash, this.#scryptParams ?? passwordHashDefaults))) || !isRole(row.role)) {
      throw new SdcError('API_LOGIN_FAILED', 'unknown user or wrong password');
    }
    await this.#upgradeHash(row, password);
    return { id: row.id, name: row.name, role: row.role, createdAtMs: Number(row.created_at), tokenGeneration: Number(row.token_generation) };
  }
}
