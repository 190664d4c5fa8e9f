import {
  pairingCapacityError, pairingRecordRetentionMs, pairingRefusalOf, pairingTokensMaxDefault, pairingWrongDeviceTriesMax, type PairingClaim, type PairingConsumeResult, type PairingTokenRecord,
  type PairingTokenStore,
} from '../../../trust/pairing-tokens.js';
import type { SqlDatabase, SqlExecutor } from '../../stores/sql/sql-port.js';

/** Rows per INSERT: 6 parameters each, well under every driver's placeholder limit (SQLite's 32,766, MySQL's 65,535). */
const insertRowsPerStatement = 500;

interface TokenRow { token_hash: string; device_id: string; expires_at: number; used_at: number | null; created_at: number; wrong_device_tries: number }

/**
 * The claim's one UPDATE, on a row unused and unexpired: for its own device it sets used_at; for
 * another it adds one to wrong_device_tries and sets used_at when that reaches the bound. MySQL
 * assigns left to right and a later assignment sees an earlier one's new value, so used_at comes
 * first and neither expression reads a column assigned before it (SQLite reads old values only).
 * Parameters: deviceId, bound, nowMs, deviceId, tokenHash, nowMs.
 */
const consumeOrCountSql = `UPDATE pairing_tokens
  SET used_at = CASE WHEN device_id = ? OR wrong_device_tries + 1 >= ? THEN ? ELSE NULL END,
    wrong_device_tries = wrong_device_tries + CASE WHEN device_id = ? THEN 0 ELSE 1 END
  WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`;

/**
 * Pairing tokens in the `pairing_tokens` table; `consume` is one conditional UPDATE (unused,
 * unexpired; this device's is consumed, another's counted), so exactly one caller wins and no more
 * than pairingWrongDeviceTriesMax tries for other devices are ever refused before it is spent.
 */
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

  /**
   * The whole batch in one transaction: stale rows go, the outstanding tokens (unused, unexpired)
   * are counted against the limit, then the rows are inserted a chunk per statement. Spent and
   * expired rows stay for the retention period but take no place under the limit.
   */
  async createBatch(records: readonly PairingTokenRecord[], now: Date): Promise<void> {
    const nowMs = now.getTime();
    await this.#db.transaction(async (tx) => {
      await tx.execute('DELETE FROM pairing_tokens WHERE expires_at <= ?', [nowMs - pairingRecordRetentionMs]);
      const [count] = await tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM pairing_tokens WHERE used_at IS NULL AND expires_at > ?', [nowMs]);
      const outstanding = Number(count?.n ?? 0);
      if (outstanding + records.length > this.#recordsMax) throw pairingCapacityError({ outstanding, requested: records.length, limit: this.#recordsMax });
      const createdBy = this.#createdBy();
      for (let start = 0; start < records.length; start += insertRowsPerStatement) {
        const chunk = records.slice(start, start + insertRowsPerStatement);
        await tx.execute(
          `INSERT INTO pairing_tokens (token_hash, device_id, expires_at, used_at, created_by, created_at) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
          chunk.flatMap((r) => [r.tokenHashHex, r.deviceId, r.expiresAtMs, r.usedAtMs, createdBy, r.createdAtMs]),
        );
      }
      for (const record of records) await this.#onCreated?.(tx, record);
    });
  }

  /**
   * Unused and unexpired are checked in the UPDATE's WHERE, so a used or expired token is never
   * changed; the row read after it says which refusal it was. A row the UPDATE changed was this
   * claim's (the UPDATE holds its lock until the transaction ends): consumed when it names the
   * claim's device, otherwise counted ('other-device', spent when used_at is now set). A row the
   * UPDATE left but looks usable lost to a concurrent claim: 'already-used'.
   */
  async consume(tokenHashHex: string, claim: PairingClaim): Promise<PairingConsumeResult> {
    const nowMs = claim.now.getTime();
    return this.#db.transaction(async (tx) => {
      const updated = await tx.execute(consumeOrCountSql, [claim.deviceId, pairingWrongDeviceTriesMax, nowMs, claim.deviceId, tokenHashHex, nowMs]);
      const [row] = await tx.query<TokenRow>('SELECT * FROM pairing_tokens WHERE token_hash = ?', [tokenHashHex]);
      if (row === undefined) return { outcome: 'unknown' };
      const record = recordOf(row);
      if (updated.changes === 1) return { outcome: record.deviceId === claim.deviceId ? 'consumed' : 'other-device', record };
      // Never 'other-device' here: that answer is given only with the try counted.
      const refusal = pairingRefusalOf(record, claim);
      return { outcome: refusal === 'expired' ? 'expired' : 'already-used', record };
    });
  }

  /** The record of one token hash, without consuming it (one read by primary key); undefined when unknown. */
  async find(tokenHashHex: string): Promise<PairingTokenRecord | undefined> {
    const [row] = await this.#db.query<TokenRow>('SELECT * FROM pairing_tokens WHERE token_hash = ?', [tokenHashHex]);
    return row === undefined ? undefined : recordOf(row);
  }
}

function recordOf(row: TokenRow): PairingTokenRecord {
  return {
    tokenHashHex: row.token_hash, deviceId: row.device_id, createdAtMs: Number(row.created_at),
    expiresAtMs: Number(row.expires_at), usedAtMs: row.used_at === null ? null : Number(row.used_at),
    wrongDeviceTries: Number(row.wrong_device_tries),
  };
}
