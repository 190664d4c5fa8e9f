import { requireRevocationReason, revocationEntriesMaxDefault, type RevocationEntry, type RevocationReason, type RevocationStore } from '../../../trust/revocation.js';
import { normalizeSerialHex } from '../../../trust/serial-number.js';
import { SdcError } from '../../../core/errors/index.js';
import type { SqlDatabase, SqlExecutor } from '../../stores/sql/sql-port.js';
import { nextCounterValue } from './counters.js';

interface RevocationRow { serial: string; reason: string; revoked_at: number }

/** Revocations in the `revocations` table; the CRL number is the `crl_number` counter. */
export class SqlRevocationStore implements RevocationStore {
  readonly #db: SqlDatabase;
  readonly #entriesMax: number;

  constructor(db: SqlDatabase, options: { entriesMax?: number } = {}) {
    this.#db = db;
    this.#entriesMax = options.entriesMax ?? revocationEntriesMaxDefault;
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
      throw new SdcError('TRUST_REVOCATION_CAPACITY', `revocation store holds its maximum of ${this.#entriesMax} entries`);
    }
    await tx.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)', [serial, deviceId, reason, at.getTime()]);
    return true;
  }

  async isRevoked(serialHex: string): Promise<boolean> {
    const rows = await this.#db.query('SELECT serial FROM revocations WHERE serial = ?', [normalizeSerialHex(serialHex)]);
    return rows.length > 0;
  }

  async list(): Promise<readonly RevocationEntry[]> {
    const rows = await this.#db.query<RevocationRow>('SELECT serial, reason, revoked_at FROM revocations ORDER BY revoked_at ASC, serial ASC LIMIT ?', [this.#entriesMax]);
    return rows.map((row) => ({ serialHex: row.serial, reason: requireRevocationReason(row.reason), revokedAtMs: Number(row.revoked_at) }));
  }

  async nextCrlNumber(): Promise<bigint> {
    return BigInt(await this.#db.transaction((tx) => this.nextCrlNumberIn(tx)));
  }

  /** `nextCrlNumber` inside the caller's transaction: the number of the CRL that will list what the transaction revokes. */
  async nextCrlNumberIn(tx: SqlExecutor): Promise<bigint> {
    return BigInt(await nextCounterValue(tx, 'crl_number'));
  }
}
