import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { base64urlFromBytes, bytesFromBase64url } from '../../core/crypto/bytes.js';
import type { AuditLog } from '../../core/protocol/audit-chain.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { actors } from './context.js';

/**
 * Operators' approval signing keys (`user_signing_keys`, migration 012; docs/policy.md
 * "Approvals"). The private key never reaches the server: the CLI creates it in the operator's
 * credentials directory and registers only the public key. One current key per user: registering
 * another retires the previous one in the same transaction (its approvals stay verifiable by kid).
 * The kid is derived from the key, so registering the same key twice changes nothing.
 *
 * Every registration that changes anything needs proof beyond the bearer token (security review
 * 2026-12-05, finding 4, and for a first key the same evening; docs/decisions/0005-approvals.md):
 * the caller has checked the account's current password (`proof: 'password'`), or the
 * registration is refused with APPROVAL_KEY_PROOF_REQUIRED and nothing changes. An approval key is
 * what makes a second person's consent count, so a stolen token alone must not mint one, first or
 * replacement. Only re-stating the current key (nothing changes) needs no proof.
 */
export type SigningKeyProof = 'password' | 'none';
export interface SigningKey {
  readonly kid: string;
  readonly userName: string;
  readonly publicKey: Uint8Array;
  readonly createdAtMs: number;
  readonly retiredAtMs: number | null;
}

interface SigningKeyRow { kid: string; user_name: string; public_key: string; created_at: number; retired_at: number | null }

/** `uk-` and 16 bytes of the key's SHA-256: short, stable, and a different key never gets the same id. */
export function signingKid(publicKey: Uint8Array): string {
  return `uk-${base64urlFromBytes(new Uint8Array(createHash('sha256').update(publicKey).digest()).subarray(0, 16))}`;
}

function keyOf(row: SigningKeyRow): SigningKey {
  return {
    kid: row.kid, userName: row.user_name, createdAtMs: Number(row.created_at), retiredAtMs: row.retired_at === null ? null : Number(row.retired_at),
    publicKey: bytesFromBase64url(row.public_key, { code: 'STORE_CORRUPT', name: `user_signing_keys ${row.kid} public_key`, length: 32 }),
  };
}

function proofRequired(replacing: boolean): SdcError {
  const what = replacing ? 'you already have an approval signing key: replacing it' : 'registering an approval signing key';
  return new SdcError('APPROVAL_KEY_PROOF_REQUIRED', `${what} needs your current password (current_password)`, { path: 'body/current_password' });
}

export class SigningKeyStore {
  readonly #db: SqlDatabase;
  readonly #audit: AuditLog<SqlExecutor>;

  constructor(options: { db: SqlDatabase; audit: AuditLog<SqlExecutor> }) {
    this.#db = options.db;
    this.#audit = options.audit;
  }

  /**
   * Registers `publicKeyText` (base64url, 32 bytes) as the user's current key, audited (with the
   * proof it was given); the same key again is `changed: false`. Anything else (a first key, a
   * replacement, a retired key made current again) needs `proof: 'password'`
   * (APPROVAL_KEY_PROOF_REQUIRED otherwise, nothing changed).
   */
  async register(options: { userName: string; publicKeyText: string; nowMs: number; proof: SigningKeyProof }): Promise<{ key: SigningKey; changed: boolean }> {
    const publicKey = bytesFromBase64url(options.publicKeyText, { code: 'API_VALIDATION', name: 'public_key', length: 32 });
    const kid = signingKid(publicKey);
    return this.#db.transaction(async (tx) => {
      const [existing] = await tx.query<SigningKeyRow>('SELECT * FROM user_signing_keys WHERE kid = ?', [kid]);
      if (existing !== undefined) {
        if (existing.user_name !== options.userName) throw new SdcError('API_VALIDATION', 'this public key is registered to another user', { path: 'body/public_key' });
        if (existing.retired_at === null) return { key: keyOf(existing), changed: false };
      }
      const retired = await tx.execute('UPDATE user_signing_keys SET retired_at = ? WHERE user_name = ? AND retired_at IS NULL', [options.nowMs, options.userName]);
      // Thrown inside the transaction: the retirement above is rolled back with it.
      if (options.proof !== 'password') throw proofRequired(retired.changes > 0);
      if (existing === undefined) {
        await tx.execute('INSERT INTO user_signing_keys (kid, user_name, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)',
          [kid, options.userName, base64urlFromBytes(publicKey), options.nowMs]);
      } else {
        await tx.execute('UPDATE user_signing_keys SET retired_at = NULL WHERE kid = ?', [kid]);
      }
      await this.#audit.record(tx, {
        kind: 'user.signing_key_registered', actor: actors.user(options.userName), subject: `user:${options.userName}`,
        payload: { kid, public_key: base64urlFromBytes(publicKey), retired_previous: retired.changes, proof: options.proof },
      });
      return { key: { kid, userName: options.userName, publicKey, createdAtMs: options.nowMs, retiredAtMs: null }, changed: true };
    });
  }

  /** The user's current (not retired) key, if any. */
  async current(userName: string): Promise<SigningKey | undefined> {
    const [row] = await this.#db.query<SigningKeyRow>('SELECT * FROM user_signing_keys WHERE user_name = ? AND retired_at IS NULL', [userName]);
    return row === undefined ? undefined : keyOf(row);
  }

  /** Any key by kid, retired or not (verifying an approval made with it). */
  async byKid(kid: string): Promise<SigningKey | undefined> {
    const [row] = await this.#db.query<SigningKeyRow>('SELECT * FROM user_signing_keys WHERE kid = ?', [kid]);
    return row === undefined ? undefined : keyOf(row);
  }
}
