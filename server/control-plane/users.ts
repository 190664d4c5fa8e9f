import { SdcError } from '../../core/errors/index.js';
import { policyRoles, type PolicyRole } from '../../core/protocol/policy.js';
import type { RandomSource } from '../../core/ports/ports.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { newId } from './context.js';
import { checkPasswordStrength, hashPassword, scryptConcurrencyLimits, verifyPassword } from './passwords.js';

export type Role = PolicyRole;
export const roles = policyRoles;
const userNamePattern = /^[A-Za-z0-9_.@-]{1,128}$/;

export interface User {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly createdAtMs: number;
}

interface UserRow { id: string; name: string; role: string; password_hash: string; created_at: number }

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}

/** Rank for role checks: viewer < operator < approver < admin. */
export function roleRank(role: Role): number {
  return roles.indexOf(role);
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

  /** The user for a correct name and password; API_LOGIN_FAILED otherwise. */
  async authenticate(name: string, password: string): Promise<User> {
    const [row] = userNamePattern.test(name) ? await this.#db.query<UserRow>('SELECT * FROM users WHERE name = ?', [name]) : [];
    if (row === undefined) {
      this.#dummyHash ??= hashPassword('not-a-real-password', this.#random, this.#scryptParams);
      const dummyHash = await this.#dummyHash;
      await this.#scrypt.run(() => verifyPassword(password, dummyHash));
      throw new SdcError('API_LOGIN_FAILED', 'unknown user or wrong password');
    }
    if (!(await this.#scrypt.run(() => verifyPassword(password, row.password_hash))) || !isRole(row.role)) {
      throw new SdcError('API_LOGIN_FAILED', 'unknown user or wrong password');
    }
    return { id: row.id, name: row.name, role: row.role, createdAtMs: Number(row.created_at) };
  }
}
