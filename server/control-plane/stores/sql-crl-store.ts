import type { SignedCrl } from '../../../trust/crl.js';
import type { SqlDatabase, SqlExecutor } from '../../stores/sql/sql-port.js';
import { lockCounterRow } from './counters.js';

/** A signed CRL as stored in the `crls` table (migration 026). */
export interface StoredCrl {
  readonly pem: string;
  readonly crlNumber: bigint;
  readonly thisUpdateMs: number;
  readonly nextUpdateMs: number;
}

interface CrlRow { crl_number: number | string; pem: string; this_update_ms: number | string; next_update_ms: number | string }

/** How many stored CRLs are kept: the highest is served; a few below it cover a signer whose insert lands after a higher one. */
export const storedCrlsKeptMax = 4;

/**
 * The CRLs every control plane on the database signed (decision 0021, 2026-12-06 h14). Each
 * insert prunes to the last `storedCrlsKeptMax` under the `crl_store` counter row's lock, so two
 * replicas storing at once queue on one row instead of crossing range locks on MySQL.
 */
export class SqlCrlStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  /** Stores `crl` inside the caller's transaction (the one that took its number, when there is one) and prunes the old rows. */
  async storeIn(tx: SqlExecutor, crl: SignedCrl): Promise<void> {
    await lockCounterRow(tx, 'crl_store');
    await tx.execute('INSERT INTO crls (crl_number, pem, this_update_ms, next_update_ms) VALUES (?, ?, ?, ?)',
      [Number(crl.crlNumber), crl.pem, crl.thisUpdate.getTime(), crl.nextUpdate.getTime()]);
    const [oldestKept] = await tx.query<{ crl_number: number | string }>(
      'SELECT crl_number FROM crls ORDER BY crl_number DESC LIMIT 1 OFFSET ?', [storedCrlsKeptMax - 1]);
    if (oldestKept !== undefined) await tx.execute('DELETE FROM crls WHERE crl_number < ?', [Number(oldestKept.crl_number)]);
  }

  /** `storeIn` in a transaction of its own. */
  async store(crl: SignedCrl): Promise<void> {
    await this.#db.transaction((tx) => this.storeIn(tx, crl));
  }

  /** The highest-numbered stored CRL whose nextUpdate is after `nowMs`; undefined when none is. */
  async highestValid(nowMs: number): Promise<StoredCrl | undefined> {
    const [row] = await this.#db.query<CrlRow>(
      'SELECT crl_number, pem, this_update_ms, next_update_ms FROM crls WHERE next_update_ms > ? ORDER BY crl_number DESC LIMIT 1', [nowMs]);
    if (row === undefined) return undefined;
    return { pem: row.pem, crlNumber: BigInt(row.crl_number), thisUpdateMs: Number(row.this_update_ms), nextUpdateMs: Number(row.next_update_ms) };
  }

  /**
   * Whether a CRL number was taken that no stored CRL reaches: a revocation committed (its
   * transaction took the number) but its CRL was not stored (the process ended in between, or the
   * signing failed). The caller re-signs, so the revocation is served within one republish interval.
   */
  async numberTakenWithoutCrl(): Promise<boolean> {
    const [counter] = await this.#db.query<{ value: number | string }>("SELECT value FROM counters WHERE name = 'crl_number'");
    if (counter === undefined) return false;
    const [stored] = await this.#db.query<{ n: number | string | null }>('SELECT MAX(crl_number) AS n FROM crls');
    return stored?.n === null || stored?.n === undefined || Number(stored.n) < Number(counter.value);
  }
}
