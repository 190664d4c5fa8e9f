import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../../runtime/atomic-file.js';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { BoundedValue, KeyValueStore } from '../stores/kv/kv-port.js';
import { CrlRecordStore, crlRecordCharsMax, crlRecordHead, crlRecordPartCharsMax, type CrlRecordHead, type CrlRecordHeadRead } from './crl-record.js';
import type { EnrollmentCheck } from '../gateway/enrollment-check.js';
import { readVerifiedCrl, type VerifiedCrl } from '../../trust/crl.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { fetchCrlText, type CrlFetchFailureCode, type CrlFetchOptions } from './crl-fetch.js';

/** How often the gateway reads the CRL file again; the kv revoked keys carry a revocation sooner. */
export const crlReloadIntervalMsDefault = 60_000;

/**
 * How long past its nextUpdate a CRL still counts as current (decision 0021). The control plane
 * re-signs with a third of the validity left (8 h of the default 24 h), so a CRL past nextUpdate
 * has missed every re-signing for 8 h; the grace only covers the hosts' clocks disagreeing (the 5
 * minutes certificates are backdated for) and one reload interval, not a late CA.
 */
export const crlStaleGraceMsDefault = 10 * 60_000;

/**
 * What a gateway does while its CRL is not current (decision 0021): `fail-open` (the default)
 * admits on the kv revoked keys and the CRL it holds, with an error logged at each reload and
 * sdc_gateway_crl_state; `fail-closed` refuses every new AUTH with TRUST_CRL_STALE (sessions
 * already open are kept: their re-checks and the revocation notices still run).
 */
export type CrlStalePolicy = 'fail-open' | 'fail-closed';
export const crlStalePolicies: readonly CrlStalePolicy[] = ['fail-open', 'fail-closed'];

/** `fresh`: within nextUpdate + grace; `stale`: past it; `none`: no CRL taken (no file, or only refused ones). */
export type CrlState = 'fresh' | 'stale' | 'none';

export interface CrlFreshness {
  readonly state: CrlState;
  readonly crlNumber: bigint | null;
  readonly nextUpdateMs: number | null;
}

/**
 * Where the highest CRL taken is kept across restarts: the signed CRL itself (PEM), one record for
 * the whole deployment under `key` (kvKeys.gatewayCrl): a head at `<key>:head` and the PEM in parts
 * at `<key>:part:<sha256>:<index>` (crl-record.ts), so it holds a CRL of the revocation store's
 * maximum of 100,000 entries; `key` itself holds the whole PEM as builds before 2026-12-06 wrote it,
 * read (bounded at legacyRecordCharsMax) only while no head exists. Its number is a floor only once
 * it verifies as our intermediate's CRL, so a writer of the store can neither raise the floor past
 * every CRL our CA will sign nor lower it without our CA's key (decision 0021, review h9).
 */
export interface CrlRecord {
  readonly kv: KeyValueStore;
  readonly key: string;
}

/** The record's head and parts under the deployment's key (see CrlRecord). */
export function crlRecordKeysOf(key: string): { head: string; part: (sha256: string, index: number) => string } {
  return { head: `${key}:head`, part: (sha256, index) => `${key}:part:${sha256}:${index}` };
}

export interface CrlFileWatchOptions {
  readonly path: string;
  readonly intermediateCaPem: string;
  readonly scheduler: Scheduler;
  /** Judges nextUpdate: the deployment's clock, virtual in tests. */
  readonly clock: Clock;
  readonly logger: Logger;
  readonly reloadIntervalMs?: number;
  /** Default crlStaleGraceMsDefault. */
  readonly staleGraceMs?: number;
  /** Without one, the highest CRL is remembered for the process's life only. */
  readonly record?: CrlRecord;
  /**
   * Also fetch the CRL from the control plane at each reload (`--crl-url`, decision 0021 of
   * 2026-12-06): for a gateway whose file is a copy nobody refreshes. Verified exactly as the file.
   */
  readonly fetch?: CrlFetchOptions;
}

/**
 * The largest CRL recorded: that of the revocation store's maximum entries (crl-record.ts,
 * 7,588,928 characters for 100,000), in parts of crlRecordPartCharsMax, within the stores' 1 MiB
 * value limit. A CRL larger than that is held but not recorded (logged). A larger value found in
 * the record is not one we wrote: it is never read (getBounded answers its size only) nor sent back
 * (deleteIfLarger removes an oversized head), so a store writer cannot make every gateway load up
 * to Redis's 512 MB at each reload (review h13, finding 1). PEM is ASCII: characters are bytes.
 */
export { crlRecordCharsMax, crlRecordPartCharsMax };
/** The single-key record of earlier builds (`key` itself): their bound, the stores' value limit. */
const legacyRecordCharsMax = 1024 * 1024;
/** Compare-and-set rounds when another process moves the record between our read and write. */
const recordWriteAttemptsMax = 4;

/** TRUST_CRL_RECORD_INVALID: the kv record holds something that is not a CRL of our intermediate (ignored, overwritten). */
type RefusalCode = 'TRUST_CRL_INVALID' | 'TRUST_CRL_ROLLED_BACK' | 'TRUST_CRL_RECORD_INVALID';
/** Why a fetch gave no CRL to judge: its transport, or a text that is not a CRL of our intermediate. */
export type CrlFetchFailure = CrlFetchFailureCode | 'TRUST_CRL_INVALID';

/**
 * The CRL file (written by the control plane from SQL) as a set of revoked serials for the
 * gateway's revocation check, so a revocation holds even when the key/value store lost its keys.
 * Read at start and every `reloadIntervalMs`; a missing file keeps what is held (a gateway on
 * another host may not have one); a file that does not verify against our intermediate is ignored
 * and the last good CRL kept.
 *
 * A CRL numbered below the highest number taken is refused (TRUST_CRL_ROLLED_BACK): an older CRL
 * our CA really signed, put back in the file, would otherwise take back the revocations made since
 * (review h16). The highest CRL taken is kept in `record` (the shared key/value store) as the
 * signed CRL itself, one for the deployment: a restarted or new gateway verifies it and takes it
 * when it is the highest it has, so it starts with every revocation any gateway took and refuses
 * an older file too. A record that does not verify as our intermediate's CRL is ignored (logged at
 * error, TRUST_CRL_RECORD_INVALID, counted) and written over with the CRL held: a writer of the
 * store cannot move the floor without our CA's key (review h9). The refused CRL's entries still
 * count as revocations (a serial our CA listed was revoked; none of our reasons is
 * certificateHold), so a gateway given an older file holds at least those.
 *
 * freshness() judges the CRL held against its nextUpdate on the injected clock (decision 0021).
 *
 * With `fetch`, each reload also GETs the CRL from the control plane; the file and the fetched CRL
 * are both read, and the higher-numbered of those that verify is judged as above (the other is
 * not refused: a copied file behind the control plane is expected). A failed fetch is logged and
 * counted (fetchFailures) and changes nothing held: no revocation is dropped, and a CRL that stops
 * being re-fetched goes stale by its nextUpdate like a file nobody refreshes.
 */
export class CrlFileWatch {
  #taken: VerifiedCrl | undefined;
  /** The text the CRL held was read from (what the record is written with). */
  #takenText: string | undefined;
  /** The highest-numbered CRL refused as older since the last take: its entries count beside the one taken. */
  #older: VerifiedCrl | undefined;
  /** The highest CRL number this gateway took from its own file or fetch (not from the record): what a file rolls back from. */
  #highestOwnNumber: bigint | undefined;
  /** The number of the CRL held that was too large to record, once logged. */
  #unrecordedNumber: bigint | undefined;
  /** The record's head for the CRL held. */
  #takenHead: CrlRecordHead | undefined;
  /** The record's text verified last (when not the CRL held): a head naming it again is not read again. */
  #recordVerified: { sha256: string; crl: VerifiedCrl; text: string } | undefined;
  /** The last file or fetched text verified, by source: an unchanged file is not parsed and verified again at each reload. */
  readonly #verifiedTexts = new Map<'file' | 'url', ReadCrl>();
  /** The head's parts were found missing: written again even when the head already names the CRL held. */
  #partsMissing = false;
  /** The CRL file could not be written with a fetched CRL: logged once (tried again at each newer one). */
  #fileUnwritableLogged = false;
  #serials: ReadonlySet<string> = new Set();
  readonly #refusals = new Map<RefusalCode, number>();
  readonly #fetchFailures = new Map<CrlFetchFailure, number>();
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(private readonly options: CrlFileWatchOptions) {}

  /** The serials of the last CRL read and verified, with those of the last older one refused. */
  serials(): ReadonlySet<string> {
    return this.#serials;
  }

  /** The CRL held against its nextUpdate + grace, at the clock's now. */
  freshness(): CrlFreshness {
    const taken = this.#taken;
    if (taken === undefined) return { state: 'none', crlNumber: null, nextUpdateMs: null };
    const stale = this.options.clock.nowMs() > taken.nextUpdateMs + (this.options.staleGraceMs ?? crlStaleGraceMsDefault);
    return { state: stale ? 'stale' : 'fresh', crlNumber: taken.crlNumber, nextUpdateMs: taken.nextUpdateMs };
  }

  /** CRL files refused since start, by code (for sdc_gateway_crl_files_refused_total). */
  refusals(): ReadonlyMap<RefusalCode, number> {
    return this.#refusals;
  }

  /** Fetches from the control plane that gave no CRL, by code (for sdc_gateway_crl_fetch_failures_total). */
  fetchFailures(): ReadonlyMap<CrlFetchFailure, number> {
    return this.#fetchFailures;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.reload();
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.options.scheduler.cancel(this.#timer);
    this.#timer = undefined;
  }

  async reload(): Promise<void> {
    const [fromFile, fetched, recorded] = await Promise.all([this.#readFile(), this.#fetch(), this.#readRecord()]);
    const read = fetched !== undefined && (fromFile === undefined || fetched.crl.crlNumber >= fromFile.crl.crlNumber) ? fetched : fromFile;
    const from = read === fetched ? 'url' : 'file';
    const held = this.#taken;
    // The record counts only once verified (#readRecord): a CRL our CA signed, so its number is one
    // the CA reached, and taking it never drops a revocation the CRL held listed.
    const floor = maxNumber(held?.crlNumber, recorded?.crl.crlNumber);
    if (read !== undefined && (floor === undefined || read.crl.crlNumber >= floor)) {
      this.#take(read);
      this.#highestOwnNumber = maxNumber(this.#highestOwnNumber, read.crl.crlNumber);
      if (read === fetched && (fromFile === undefined || fetched.crl.crlNumber > fromFile.crl.crlNumber)) await this.#keepOnDisk(fetched);
    } else {
      // The record's CRL is taken when it is the highest this gateway has: a restarted gateway
      // whose file is older, or whose fetch landed on an API replica that has not re-signed since,
      // holds the newest CRL any gateway took, never none (review h9, finding 3).
      if (recorded !== undefined && (held === undefined || recorded.crl.crlNumber > held.crlNumber)) this.#take(recorded);
      if (read !== undefined) this.#refuseOlder(read.crl, floor!, from);
    }
    await this.#raiseRecord();
    this.#reportStale();
  }

  async #readFile(): Promise<ReadCrl | undefined> {
    const { path, logger } = this.options;
    let pem: string;
    try {
      // Not read past the largest CRL our CA signs (that of the revocation store's maximum entries):
      // a file that size is no CRL of ours, and reading it whole at each reload could fill the heap.
      const { size } = await stat(path);
      if (size > crlRecordCharsMax) {
        this.#count('TRUST_CRL_INVALID');
        logger.error({ code: 'TRUST_CRL_INVALID', path, bytes: size, bytesMax: crlRecordCharsMax }, 'CRL file refused: larger than the largest CRL our CA signs, not read; keeping the last one');
        return undefined;
      }
      pem = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err: error, path }, 'CRL file unreadable; keeping the last one');
      return undefined;
    }
    try {
      return await this.#verifyText('file', pem);
    } catch (error) {
      this.#count('TRUST_CRL_INVALID');
      logger.error({ err: error, code: SdcError.is(error) ? error.code : undefined, path }, 'CRL file refused; keeping the last one');
      return undefined;
    }
  }

  /** The control plane's CRL, verified as the file's; undefined (logged, counted) when the fetch or the check fails. */
  async #fetch(): Promise<ReadCrl | undefined> {
    const fetch = this.options.fetch;
    if (fetch === undefined) return undefined;
    let pem: string;
    try {
      pem = await fetchCrlText(fetch);
    } catch (error) {
      const code: CrlFetchFailure = SdcError.is(error) && isFetchFailureCode(error.code) ? error.code : 'TRUST_CRL_FETCH_FAILED';
      this.#fetchFailures.set(code, (this.#fetchFailures.get(code) ?? 0) + 1);
      this.options.logger.warn({ err: error, code, url: fetch.url.href }, 'CRL not fetched from the control plane; keeping the one held');
      return undefined;
    }
    try {
      return await this.#verifyText('url', pem);
    } catch (error) {
      this.#fetchFailures.set('TRUST_CRL_INVALID', (this.#fetchFailures.get('TRUST_CRL_INVALID') ?? 0) + 1);
      this.options.logger.error({ err: error, code: 'TRUST_CRL_INVALID', url: fetch.url.href }, 'CRL fetched from the control plane refused: not a CRL of our intermediate CA; keeping the one held');
      return undefined;
    }
  }

  /**
   * `pem` verified as our intermediate's CRL; not again when it is the text this source gave last
   * (a CRL of 100,000 entries takes about 0.4 s of CPU to parse and verify, measured 2026-12-06,
   * morning, and an unchanged file was verified at every reload, once a minute).
   */
  async #verifyText(source: 'file' | 'url', pem: string): Promise<ReadCrl> {
    const last = this.#verifiedTexts.get(source);
    if (last !== undefined && last.text === pem) return last;
    this.#verifiedTexts.delete(source);
    const read = this.#takenText === pem && this.#taken !== undefined
      ? { crl: this.#taken, text: pem }
      : { crl: await readVerifiedCrl({ pem, issuer: parseCertificate(this.options.intermediateCaPem) }), text: pem };
    this.#verifiedTexts.set(source, read);
    return read;
  }

  /**
   * A fetched CRL taken, numbered above the file's (or the file absent or refused), written to the
   * file atomically (a temp file renamed over it, the file's mode kept, else 0644): a gateway
   * restarted while the control plane is down starts from it, not from a copy made at install or
   * none. A file that cannot be written (a read-only mount) is logged once and otherwise left
   * alone: the record and the fetch still carry the CRL.
   */
  async #keepOnDisk({ crl, text }: ReadCrl): Promise<void> {
    const { path, logger } = this.options;
    try {
      const mode = await stat(path).then((found) => found.mode & 0o777, (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return 0o644;
        throw error;
      });
      await writeFileAtomic(path, text, { mode });
      this.#verifiedTexts.set('file', { crl, text });
    } catch (error) {
      if (this.#fileUnwritableLogged) return;
      this.#fileUnwritableLogged = true;
      logger.warn({ err: error, path, crlNumber: crl.crlNumber.toString() }, 'the CRL file cannot be written with the CRL fetched from the control plane (logged once): a restart starts from the file as it is, the record and the fetch');
    }
  }

  #take({ crl, text }: ReadCrl): void {
    if (this.#takenText !== text) this.#takenHead = crlRecordHead(text, crl.crlNumber);
    this.#taken = crl;
    this.#takenText = text;
    // Every entry of an older CRL is in this one unless its certificate expired meanwhile.
    this.#older = undefined;
    this.#serials = crl.serials;
  }

  /**
   * A file is rolled back only when older than a CRL this gateway took from its own file (or
   * fetch): a file merely older than the shared record is a copy behind another gateway's (or one
   * this gateway had before a restart), and the record's CRL, verified, is held instead (review
   * h13, finding 2: every reload of such a gateway logged TRUST_CRL_ROLLED_BACK and counted it).
   */
  #refuseOlder(crl: VerifiedCrl, floor: bigint, from: 'file' | 'url'): void {
    const ownHighest = this.#highestOwnNumber;
    const rolledBack = from === 'file' && this.options.fetch === undefined && ownHighest !== undefined && crl.crlNumber < ownHighest;
    if (rolledBack) this.#refuseRolledBack(crl, floor, from);
    else if (from === 'file' && this.options.fetch === undefined) this.#olderThanRecord(crl, floor);
    else this.#olderExpected(crl, floor, from);
    // One older CRL is kept, the highest numbered: a lower one lists nothing more but for expired certificates.
    if (this.#older === undefined || crl.crlNumber > this.#older.crlNumber) this.#older = crl;
    const held = this.#taken?.serials;
    this.#serials = held === undefined ? this.#older.serials : new Set([...held, ...this.#older.serials]);
  }

  /**
   * With --crl-url an older CRL is not taken either, but it is no alarm. From the URL: the answer
   * came over TLS verified against our root, and the API's replicas each serve the CRL they signed
   * last (each re-signs on its own schedule; a revocation re-signs at the replica that made it), so
   * a fetch that lands on the other replica gets a lower number. From the file (the fetch failed
   * this time): the file is a copy made before the CRLs fetched since. Logged at info, not counted.
   */
  #olderExpected(crl: VerifiedCrl, floor: bigint, from: 'file' | 'url'): void {
    this.options.logger.info({ from, path: this.options.path, url: this.options.fetch?.url.href, crlNumber: crl.crlNumber.toString(), highestCrlNumber: floor.toString() },
      from === 'url'
        ? 'CRL fetched from the control plane is older than the highest this gateway has taken (an API replica that has not re-signed since); keeping the one held'
        : 'CRL file is older than the highest CRL this gateway has taken (a copy made before the CRLs fetched since); keeping the one held');
  }

  /** Logged at info, not counted: the file is behind the deployment's record, not behind what this gateway read from it. */
  #olderThanRecord(crl: VerifiedCrl, floor: bigint): void {
    this.options.logger.info({ from: 'file', path: this.options.path, crlNumber: crl.crlNumber.toString(), highestCrlNumber: floor.toString(), highestFromFile: this.#highestOwnNumber?.toString() ?? null },
      'CRL file is older than the deployment\'s CRL record (another gateway took a newer CRL, or this one did before a restart); holding the record\'s CRL');
  }

  #refuseRolledBack(crl: VerifiedCrl, floor: bigint, from: 'file'): void {
    this.#count('TRUST_CRL_ROLLED_BACK');
    this.options.logger.error({ code: 'TRUST_CRL_ROLLED_BACK', from, path: this.options.path, url: this.options.fetch?.url.href, crlNumber: crl.crlNumber.toString(), highestCrlNumber: floor.toString() },
      'CRL refused: numbered below the highest CRL this gateway has taken; keeping the one held, and counting its entries as revocations');
  }

  /**
   * The record's CRL once it verifies; undefined when there is none, it cannot be read (logged, the
   * CRL held still holds), it names a CRL below the one held (not read: #raiseRecord writes the CRL
   * held over it), or it does not verify: then it is ignored, logged at error
   * (TRUST_CRL_RECORD_INVALID) and counted, and #raiseRecord writes the CRL held over it.
   */
  async #readRecord(): Promise<ReadCrl | undefined> {
    const record = this.options.record;
    if (record === undefined) return undefined;
    const store = new CrlRecordStore(record.kv, crlRecordKeysOf(record.key));
    try {
      for (let attempt = 0; attempt < recordWriteAttemptsMax; attempt += 1) {
        const head = await store.readHead();
        if (head.state === 'absent') return await this.#readLegacyRecord(record);
        if (head.state === 'invalid') {
          this.#recordInvalid({ reason: head.reason, bytes: head.bytes, bytesMax: crlRecordCharsMax }, `the highest CRL record's head is ${head.reason === 'too-large' ? `${head.bytes} bytes, above its bound: not read` : 'not one this build writes'}`);
          return undefined;
        }
        const known = this.#knownRecord(head.head);
        if (known !== undefined) return known;
        // Its number is not trusted yet, but a head below the CRL held has nothing to give: not read.
        if (this.#taken !== undefined && head.head.crlNumber < this.#taken.crlNumber) return undefined;
        const body = await store.readBody(head.head);
        if (body.state === 'missing') {
          // A newer head removed these parts meanwhile (read the head again), or they expired.
          const again = await store.readHead();
          if (again.state === 'head' && again.head.text !== head.head.text) continue;
          this.#partsMissing = true;
          this.options.logger.warn({ key: record.key, crlNumber: head.head.crlNumber.toString() }, 'the highest CRL record names parts that are gone; written again from the CRL held');
          return undefined;
        }
        if (body.state === 'invalid') {
          this.#recordInvalid({ reason: body.reason, bytes: body.bytes, bytesMax: crlRecordPartCharsMax }, `the highest CRL record's parts are ${body.reason === 'too-large' ? `above their bound (${body.bytes} bytes): not read` : 'not the text its head names'}`);
          return undefined;
        }
        const verified = await this.#verifyRecord(body.text);
        if ('crl' in verified && verified.crl.crlNumber === head.head.crlNumber) {
          this.#recordVerified = { sha256: head.head.sha256, crl: verified.crl, text: body.text };
          return { crl: verified.crl, text: body.text };
        }
        this.#recordInvalid({ err: 'error' in verified ? verified.error : undefined, reason: 'not-our-crl', bytes: body.text.length },
          'error' in verified ? 'the highest CRL record is not a CRL of our intermediate CA' : `the highest CRL record's head says CRL ${head.head.crlNumber}, its CRL is ${verified.crl.crlNumber}`);
        return undefined;
      }
      return undefined;
    } catch (error) {
      this.options.logger.warn({ err: error, key: record.key }, 'the highest CRL record cannot be read; judged on the CRL held until the next reload');
      return undefined;
    }
  }

  /** The CRL a head names when this gateway verified that text already (the CRL held, or the record's last). */
  #knownRecord(head: CrlRecordHead): ReadCrl | undefined {
    if (this.#taken !== undefined && this.#takenText !== undefined && this.#takenHead?.text === head.text) return { crl: this.#taken, text: this.#takenText };
    const last = this.#recordVerified;
    if (last !== undefined && last.sha256 === head.sha256 && last.crl.crlNumber === head.crlNumber) return { crl: last.crl, text: last.text };
    return undefined;
  }

  /**
   * The single-key record of builds before 2026-12-06 (the whole PEM at `key`), read only while no
   * head exists (a deployment part way through its upgrade): a floor once it verifies, as before.
   */
  async #readLegacyRecord(record: CrlRecord): Promise<ReadCrl | undefined> {
    const read: BoundedValue = await record.kv.getBounded(record.key, legacyRecordCharsMax);
    if (read.state !== 'value') return undefined;
    const verified = await this.#verifyRecord(read.value);
    return 'crl' in verified ? { crl: verified.crl, text: read.value } : undefined;
  }

  /** The record set no floor: logged at error with its code and counted, at each reload that finds it so. */
  #recordInvalid(fields: Record<string, unknown>, what: string): void {
    this.#count('TRUST_CRL_RECORD_INVALID');
    this.options.logger.error({ ...fields, code: 'TRUST_CRL_RECORD_INVALID', key: this.options.record?.key },
      `${what}: ignored (it sets no floor and drops nothing held) and written over with the CRL held`);
  }

  /** A record's text as our intermediate's CRL: the CRL held when the text is the one it was read from (no second verification). */
  async #verifyRecord(text: string): Promise<{ crl: VerifiedCrl } | { error: unknown }> {
    if (this.#taken !== undefined && text === this.#takenText) return { crl: this.#taken };
    try {
      return { crl: await readVerifiedCrl({ pem: text, issuer: parseCertificate(this.options.intermediateCaPem) }) };
    } catch (error) {
      return { error };
    }
  }

  /**
   * Raises the record to the CRL held (compare-and-set of the head, never lowered): after each
   * take, and at each reload, so a record the store lost (a wipe, parts expired) or one that does
   * not verify is written again while the gateway runs. Only a head naming a verified CRL numbered
   * at or above the one held is left in place. The parts go first, then the head; the parts of the
   * head replaced are removed. A failure is logged and tried again at the next reload.
   */
  async #raiseRecord(): Promise<void> {
    const record = this.options.record;
    const taken = this.#taken;
    const text = this.#takenText;
    const mine = this.#takenHead;
    if (record === undefined || taken === undefined || text === undefined || mine === undefined) return;
    if (text.length > crlRecordCharsMax) {
      // Once per CRL taken: the same CRL is not recorded at the next reload either.
      if (this.#unrecordedNumber !== taken.crlNumber) {
        this.#unrecordedNumber = taken.crlNumber;
        this.options.logger.warn({ key: record.key, crlNumber: taken.crlNumber.toString(), chars: text.length, charsMax: crlRecordCharsMax },
          'the CRL held is larger than the highest CRL record may be: not recorded (the record keeps the last one that fitted; a restart holds at least that)');
      }
      return;
    }
    const store = new CrlRecordStore(record.kv, crlRecordKeysOf(record.key));
    try {
      let partsWritten = false;
      for (let attempt = 0; attempt < recordWriteAttemptsMax; attempt += 1) {
        const read = await store.readHead();
        if (read.state === 'invalid' && read.reason === 'too-large') {
          // Removed by size on the server, never sent back as a compareAndSet's `expected`; the
          // next round finds the key absent and writes only if no other gateway did meanwhile.
          await store.removeOversizedHead();
          continue;
        }
        const current = read.state === 'head' ? read.head : undefined;
        if (current?.text === mine.text && !this.#partsMissing) return;
        if (current !== undefined && current.text !== mine.text && await this.#recordAtOrAbove(store, current, taken.crlNumber)) return;
        if (!partsWritten) {
          await store.writeParts(text, mine);
          partsWritten = true;
          this.#partsMissing = false;
        }
        if (current?.text === mine.text) return;
        if (await store.writeHead(mine, headTextOf(read))) {
          if (current !== undefined && current.sha256 !== mine.sha256) await store.removeParts(current);
          return;
        }
      }
      this.options.logger.warn({ key: record.key }, 'the highest CRL record kept moving; written at the next reload');
    } catch (error) {
      this.options.logger.warn({ err: error, key: record.key }, 'the highest CRL record not written; tried again at the next reload');
    }
  }

  /** Whether `head` names a CRL of our intermediate numbered at least `crlNumber` (verified, not merely claimed). */
  async #recordAtOrAbove(store: CrlRecordStore, head: CrlRecordHead, crlNumber: bigint): Promise<boolean> {
    if (head.crlNumber < crlNumber) return false;
    const known = this.#knownRecord(head);
    if (known !== undefined) return known.crl.crlNumber >= crlNumber;
    const body = await store.readBody(head);
    if (body.state !== 'text') return false;
    const verified = await this.#verifyRecord(body.text);
    if (!('crl' in verified) || verified.crl.crlNumber !== head.crlNumber) return false;
    this.#recordVerified = { sha256: head.sha256, crl: verified.crl, text: body.text };
    return verified.crl.crlNumber >= crlNumber;
  }

  /**
   * One error line per reload while the CRL held is past nextUpdate + grace, or none is held: the
   * loud part of fail-open, and under fail-closed the reason every new AUTH is refused.
   */
  #reportStale(): void {
    const freshness = this.freshness();
    if (freshness.state === 'none') {
      this.options.logger.error({ code: 'TRUST_CRL_STALE', state: 'none', path: this.options.path, url: this.options.fetch?.url.href },
        'the gateway holds no CRL (no file, no fetch and no record that verify, or only older ones refused): revocations reach it only through the key/value store, and under fail-closed every new AUTH is refused');
      return;
    }
    if (freshness.state !== 'stale') return;
    this.options.logger.error({
      code: 'TRUST_CRL_STALE', path: this.options.path, crlNumber: freshness.crlNumber?.toString(),
      nextUpdate: new Date(freshness.nextUpdateMs!).toISOString(), pastNextUpdateMs: this.options.clock.nowMs() - freshness.nextUpdateMs!,
    }, 'the CRL held is past its nextUpdate: revocations made since may be missing from it (the control plane is not re-signing it, or the file is not reaching this gateway)');
  }

  #count(code: RefusalCode): void {
    this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + 1);
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.options.scheduler.schedule(this.options.reloadIntervalMs ?? crlReloadIntervalMsDefault, () => {
      void this.reload().finally(() => this.#schedule());
    });
  }
}

const fetchFailureCodes: ReadonlySet<string> = new Set<CrlFetchFailureCode>(['TRUST_CRL_FETCH_FAILED', 'TRUST_CRL_FETCH_TIMEOUT', 'TRUST_CRL_FETCH_REFUSED', 'TRUST_CRL_FETCH_TOO_LARGE']);
function isFetchFailureCode(code: string): code is CrlFetchFailureCode {
  return fetchFailureCodes.has(code);
}

/** What a compare-and-set of the head expects: its text as read (null: absent). */
function headTextOf(read: CrlRecordHeadRead): string | null {
  if (read.state === 'head') return read.head.text;
  if (read.state === 'invalid') return read.text ?? null;
  return null;
}

/** A verified CRL and the text it was read from. */
interface ReadCrl {
  readonly crl: VerifiedCrl;
  readonly text: string;
}

function maxNumber(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

/**
 * The gateway's admission check with the CRL's freshness in front (decision 0021): under
 * `fail-closed`, a new AUTH is refused TRUST_CRL_STALE while the CRL held is not current (stale,
 * or none taken); under `fail-open` it goes straight to `next` (the stale CRL is reported by the
 * watch's log and sdc_gateway_crl_state instead). Runs after the revocation check, so a revoked
 * certificate is still refused as revoked.
 */
export function crlFreshAdmission(options: { watch: Pick<CrlFileWatch, 'freshness'>; policy: CrlStalePolicy; next: EnrollmentCheck }): EnrollmentCheck {
  if (options.policy === 'fail-open') return options.next;
  return (deviceId, serialHex) => {
    const freshness = options.watch.freshness();
    if (freshness.state !== 'fresh') {
      return new SdcError('TRUST_CRL_STALE', freshness.state === 'none'
        ? 'the gateway holds no CRL, and its CRL policy is fail-closed'
        : `the gateway's CRL ${freshness.crlNumber?.toString() ?? ''} is past its nextUpdate ${new Date(freshness.nextUpdateMs!).toISOString()}, and its CRL policy is fail-closed`);
    }
    return options.next(deviceId, serialHex);
  };
}

/** sdc_gateway_crl_* on a process's metrics: gauges from freshness(), the refusal counter brought up to refusals(). */
export function crlMetricsCollector(watch: CrlFileWatch, metrics: {
  crlState: { set(labels: { state: CrlState }, value: number): void };
  crlNumber: { set(value: number): void };
  crlNextUpdate: { set(value: number): void };
  crlFilesRefused: { inc(labels: { code: string }, value: number): void };
  crlFetchFailures: { inc(labels: { code: string }, value: number): void };
}): () => Promise<void> {
  const exported = new Map<string, number>();
  const fetchExported = new Map<string, number>();
  return async () => {
    const freshness = watch.freshness();
    for (const state of ['fresh', 'stale', 'none'] as const) metrics.crlState.set({ state }, freshness.state === state ? 1 : 0);
    metrics.crlNumber.set(freshness.crlNumber === null ? 0 : Number(freshness.crlNumber));
    metrics.crlNextUpdate.set(freshness.nextUpdateMs === null ? 0 : freshness.nextUpdateMs / 1000);
    for (const [code, count] of watch.refusals()) {
      const added = count - (exported.get(code) ?? 0);
      if (added > 0) metrics.crlFilesRefused.inc({ code }, added);
      exported.set(code, count);
    }
    for (const [code, count] of watch.fetchFailures()) {
      const added = count - (fetchExported.get(code) ?? 0);
      if (added > 0) metrics.crlFetchFailures.inc({ code }, added);
      fetchExported.set(code, count);
    }
  };
}
