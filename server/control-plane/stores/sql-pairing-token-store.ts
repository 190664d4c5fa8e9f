import { SdcError } from '../../../core/errors/index.js';
import { pairingRecordRetentionMs, pairingTokensMaxDefault, type PairingConsumeResult, type PairingTokenRecord, type PairingTokenStore } from '../../../trust/pairing-tokens.js';
import type { SqlDatabase, SqlExecutor } from '../../stores/sql/sql-port.js';

interface TokenRow { token_hash: string; device_id: string; expires_at: number; used_at: number | null; created_at: number }

/** Pairing tokens in the `pairing_tokens` table; `consume` is one conditional UPDATE, so exactly one caller wins. */
export class SqlPairingTokenStore implements PairingTokenStore {
  readonly #db: SqlDatabase;
  readonly #createdBy: () => string;
  readonly #recordsMax: number;
  readonly #onCreated: ((tx: SqlExecutor, record: PairingTokenRecord) => Promise<void>) | undefined;

  /**
   * `createdBy` names the operator for the row; the port has no such field, so the service sets it per call.
   * `onCreated` runs in the INSERT's transaction (the control plane records the audit entry there).
   */
  constructor(db: SqlDatabase, options: { createdBy?: () => string; recordsMax?: number; onCreated?: (tx: SqlExecutor, record: PairingTokenRecord) => Promise<void> } = {}) {
    this.#db = db;
    this.#createdBy = options.createdBy ?? (() => 'system');
    this.#recordsMax = options.recordsMax ?? pairingTokensMaxDefault;
    this.#onCreated = options.onCreated;
  }

  async create(record: PairingTokenRecord, now: Date): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.execute('DELETE FROM pairing_tokens WHERE expires_at <= ?', [now.getTime() - pairingRecordRetentionMs]);
      const [count] = await tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM pairing_tokens');
      if (Number(count?.n ?? 0) >= this.#recordsMax) {
        throw new SdcError('TRUST_PAIRING_CAPACITY', `pairing token store holds its maximum of ${this.#recordsMax} tokens`);
      }
      await tx.execute(
        'INSERT INTO pairing_tokens (token_hash, device_id, expires_at, used_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        [record.tokenHashHex, record.deviceId, record.expiresAtMs, record.usedAtMs, this.#createdBy(), record.createdAtMs],
      );
      await this.#onCreated?.(tx, record);
    });
  }

  async consume(tokenHashHex: string, now: Date): Promise<PairingConsumeResult> {
    return this.#db.transaction(async (tx) => {
      const updated = await tx.execute('UPDATE pairing_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL', [now.getTime(), tokenHashHex]);
      const [row] = await tx.query<TokenRow>('SELECT * FROM pairing_tokens WHERE token_hash = ?', [tokenHashHex]);
      if (row === undefined) return { outcome: 'unknown' };
      const record: PairingTokenRecord = {
        tokenHashHex: row.token_hash, deviceId: row.device_id, createdAtMs: Number(row.created_at),
        expiresAtMs: Number(row.expires_at), usedAtMs: row.used_at === null ? null : Number(row.used_at),
      };
      return updated.changes === 1 ? { outcome: 'consumed', record } : { outcome: 'already-used', record };
    });
  }
}
