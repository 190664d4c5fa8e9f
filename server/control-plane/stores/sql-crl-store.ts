import { SdcError } from '../../../core/errors/index.js';
import { readVerifiedCrl, type SignedCrl } from '../../../trust/crl.js';
import type { x509 } from '../../../trust/x509-provider.js';
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
  readonly #issuer: x509.X509Certificate;
  readonly #onSkipped: (crlNumber: string, error: unknown) => void;
  /** The row verified last: a re-read of the same row (every read-cache period) is not parsed and verified again. */
  #verified: StoredCrl | undefined;

  /** `issuer`: our intermediate, which signs every stored CRL; `onSkipped` logs a stored row that is not one. */
  constructor(db: SqlDatabase, options: { issuer: x509.X509Certificate; onSkipped: (crlNumber: string, error: unknown) => void }) {
    this.#db = db;
    this.#issuer = options.issuer;
    this.#onSkipped = options.onSkipped;
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

  /**
   * The highest-numbered stored CRL whose nextUpdate is after `nowMs` and that is a CRL our
   * intermediate signed with the row's number; undefined when none is. A row that is not (a damaged
   * or planted row, review h20 finding 2) is skipped and reported to `onSkipped` rather than served
   * by every replica, or failing every read; the next row below is served instead.
   */
  async highestValid(nowMs: number): Promise<StoredCrl | undefined> {
    // The numbers first, the text only of a row not verified already: every replica reads this at
    // most every crlReadCacheMs (2 s) while gateways fetch, and a CRL of 100,000 entries is 6.6 MB of
    // PEM; the rows' text was read whole, up to storedCrlsKeptMax of them (26 MB), at each read.
    const rows = await this.#db.query<Omit<CrlRow, 'pem'>>(
      'SELECT crl_number, this_update_ms, next_update_ms FROM crls WHERE next_update_ms > ? ORDER BY crl_number DESC LIMIT ?', [nowMs, storedCrlsKeptMax]);
    for (const row of rows) {
      try {
        if (!/^[0-9]{1,20}$/.test(String(row.crl_number))) throw new SdcError('TRUST_CRL_INVALID', 'the stored CRL number is not a whole number');
        const crlNumber = BigInt(row.crl_number);
        // A stored CRL is never rewritten (its number is its key): the one verified is the row's.
        if (this.#verified !== undefined && this.#verified.crlNumber === crlNumber) return this.#verified;
        const [text] = await this.#db.query<{ pem: string }>('SELECT pem FROM crls WHERE crl_number = ?', [Number(row.crl_number)]);
        if (text === undefined) continue;
        const verified = await readVerifiedCrl({ pem: text.pem, issuer: this.#issuer });
        if (verified.crlNumber !== crlNumber) throw new SdcError('TRUST_CRL_INVALID', `the stored CRL is numbered ${verified.crlNumber}, its row ${crlNumber}`);
        this.#verified = { pem: text.pem, crlNumber, thisUpdateMs: verified.thisUpdateMs, nextUpdateMs: verified.nextUpdateMs };
        return this.#verified;
      } catch (error) {
        this.#onSkipped(String(row.crl_number), error);
      }
    }
    return undefined;
  }

  /**
   * What a republish pass judges whether to sign on (decision 0021, section "h7"), outside any
   * transaction and without a lock: `numberTakenWithoutCrl`, a CRL number was taken that no stored
   * CRL reaches (a renewal's superseded certificates, or a revocation whose CRL was not stored: the
   * process ended in between, or the signing failed); `lastSignedMs`, the latest thisUpdate of
   * any stored CRL not after `notAfterMs` (see `lastSignedMsIn`).
   */
  async signingState(notAfterMs: number): Promise<{ numberTakenWithoutCrl: boolean; lastSignedMs: number | undefined }> {
    const [counter] = await this.#db.query<{ value: number | string }>("SELECT value FROM counters WHERE name = 'crl_number'");
    const [stored] = await this.#db.query<{ n: number | string | null; t: number | string | null }>(
      'SELECT MAX(crl_number) AS n, MAX(CASE WHEN this_update_ms <= ? THEN this_update_ms END) AS t FROM crls', [notAfterMs]);
    const numberTakenWithoutCrl = counter !== undefined
      && (stored?.n === null || stored?.n === undefined || Number(stored.n) < Number(counter.value));
    return { numberTakenWithoutCrl, lastSignedMs: stored?.t === null || stored?.t === undefined ? undefined : Number(stored.t) };
  }

  /**
   * The latest thisUpdate of any stored CRL not after `notAfterMs`, inside the caller's
   * transaction: the signing election reads it under the CRL-number counter's row lock, so a CRL
   * another replica stored while this one waited for the lock is seen. A row dated later than
   * `notAfterMs` (a clock stepped back, or a damaged row) is not counted: it would hold every
   * replica off signing until that time.
   */
  async lastSignedMsIn(tx: SqlExecutor, notAfterMs: number): Promise<number | undefined> {
    const [row] = await tx.query<{ t: number | string | null }>('SELECT MAX(this_update_ms) AS t FROM crls WHERE this_update_ms <= ?', [notAfterMs]);
    return row?.t === null || row?.t === undefined ? undefined : Number(row.t);
  }
}
