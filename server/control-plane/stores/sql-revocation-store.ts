import { requireRevocationReason, revocationEntriesMaxDefault, type RevocationEntry, type RevocationReason, type RevocationStore } from '../../../trust/revocation.js';
import { normalizeSerialHex } from '../../../trust/serial-number.js';
import { SdcError } from '../../../core/errors/index.js';
import type { SqlDatabase, SqlExecutor } from '../../stores/sql/sql-port.js';
import { nextCounterValue } from './counters.js';

interface RevocationRow { serial: string; reason: string; revoked_at: number }

/**
 * How long a revocation stays listed after its certificate expired (RFC 5280 5.1.2.6 lets a CRL
 * drop an entry once the certificate has expired): a day, for relying parties whose clocks lag.
 */
export const revocationExpiredGraceMs = 24 * 60 * 60 * 1000;

/**
 * A revocation is live while its certificate (device_certificates) has not expired, plus the
 * grace; one whose certificate is not on record (revoked by serial alone) is always live.
 */
const liveCondition = 'NOT EXISTS (SELECT 1 FROM device_certificates c WHERE c.serial = r.serial AND c.not_after <= ?)';

/**
 * Revocations in the `revocations` table; the CRL number is the `crl_number` counter. The CRL
 * lists the live revocations only, and `entriesMax` bounds those (review h1, finding 2): at the
 * bound, the revocations of expired certificates are deleted before a new one is refused, and a
 * list of more live entries than the bound is refused, never cut short.
 */
export class SqlRevocationStore implements RevocationStore {
  readonly #db: SqlDatabase;
  readonly #entriesMax: number;
  readonly #nowMs: () => number;

  constructor(db: SqlDatabase, options: { entriesMax?: number; clock?: { nowMs(): number } } = {}) {
    this.#db = db;
    this.#entriesMax = options.entriesMax ?? revocationEntriesMaxDefault;
    const clock = options.clock;
    this.#nowMs = clock === undefined ? () => Date.now() : () => clock.nowMs();
  }

  /** Revocations of certificates that expired before this are no longer listed (nor counted against the bound). */
  #expiredBefore(): number {
    return this.#nowMs() - revocationExpiredGraceMs;
  }

  async revoke(serialHex: string, reason: RevocationReason, at: Date): Promise<boolean> {
    return this.revokeDevice(serialHex, reason, at, '');
  }

  /** Like `revoke`, recording which device the serial belonged to. */
  async revokeDevice(serialHex: string, reason: RevocationReason, at: Date, deviceId: string): Promise<boolean> {
    return this.#db.transaction((tx) => this.revokeDeviceIn(tx, serialHex, reason, at, deviceId));
  }

  /** `revokeDevice` inside the caller's transaction (so the revocation commits with the change and audit entry around it). */
  async revokeDeviceIn(tx: SqlExecutor, serialHex: string, reason: RevocationReason, at: Date, deviceId: string): Promise<boolean> {
    const serial = normalizeSerialHex(serialHex);
    requireRevocationReason(reason);
    const existing = await tx.query('SELECT serial FROM revocations WHERE serial = ?', [serial]);
    if (existing.length > 0) return false;
    const [count] = await tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM revocations');
    if (Number(count?.n ?? 0) >= this.#entriesMax) {
      // Full: the revocations of expired certificates go first (they are no longer listed), and
      // only live ones can refuse a revocation.
      const expiredBefore = this.#expiredBefore();
      await tx.execute('DELETE FROM revocations WHERE serial IN (SELECT c.serial FROM device_certificates c WHERE c.not_after <= ?)', [expiredBefore]);
      const [live] = await tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM revocations');
      if (Number(live?.n ?? 0) >= this.#entriesMax) {
        throw new SdcError('TRUST_REVOCATION_CAPACITY', `revocation store holds its maximum of ${this.#entriesMax} entries of unexpired certificates`);
      }
    }
    await tx.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)', [serial, deviceId, reason, at.getTime()]);
    return true;
  }

  async isRevoked(serialHex: string): Promise<boolean> {
    const rows = await this.#db.query('SELECT serial FROM revocations WHERE serial = ?', [normalizeSerialHex(serialHex)]);
    return rows.length > 0;
  }

  /**
   * The live revocations (certificate not expired beyond the grace, or not on record), in
   * revocation order: what the CRL lists. TRUST_CRL_INCOMPLETE when there are more than
   * `entriesMax`: a CRL leaving some out would quietly un-revoke them.
   */
  async list(): Promise<readonly RevocationEntry[]> {
    return this.listIn(this.#db);
  }

  /**
   * `list` inside the caller's transaction. After the transaction took a CRL number (the counter's
   * row lock), the read sees every revocation whose transaction took a lower one: those committed
   * before the lock was granted, and on MySQL the snapshot starts at this first plain read.
   */
  async listIn(tx: SqlExecutor): Promise<readonly RevocationEntry[]> {
    const rows = await tx.query<RevocationRow>(
      `SELECT r.serial, r.reason, r.revoked_at FROM revocations r WHERE ${liveCondition} ORDER BY r.revoked_at ASC, r.serial ASC LIMIT ?`,
      [this.#expiredBefore(), this.#entriesMax + 1]);
    if (rows.length > this.#entriesMax) {
      throw new SdcError('TRUST_CRL_INCOMPLETE', `more than ${this.#entriesMax} revocations of unexpired certificates: no CRL is signed that would leave some out`, { entriesMax: this.#entriesMax });
    }
    return rows.map((row) => ({ serialHex: row.serial, reason: requireRevocationReason(row.reason), revokedAtMs: Number(row.revoked_at) }));
  }

  async nextCrlNumber(): Promise<bigint> {
    return BigInt(await this.#db.transaction((tx) => this.nextCrlNumberIn(tx)));
  }

  /**
   * `nextCrlNumber` inside the caller's transaction: the number of the CRL that will list what the
   * transaction revokes. Above every stored CRL too, not only the counter: a row numbered above the
   * counter (a counters table restored from an older backup, or rows copied in from another
   * database) would otherwise have the next CRL collide with it (the insert refused for ever) or
   * go below it (signed and stored, never served: the highest stored CRL is). Under the counter's
   * row lock, so two transactions never take the same number.
   */
  async nextCrlNumberIn(tx: SqlExecutor): Promise<bigint> {
    const counted = BigInt(await nextCounterValue(tx, 'crl_number'));
    const [stored] = await tx.query<{ n: number | string | null }>('SELECT MAX(crl_number) AS n FROM crls');
    if (stored?.n === null || stored?.n === undefined || BigInt(stored.n) < counted) return counted;
    const next = BigInt(stored.n) + 1n;
    await tx.execute("UPDATE counters SET value = ? WHERE name = 'crl_number'", [Number(next)]);
    return next;
  }
}
