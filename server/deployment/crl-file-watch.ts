import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import type { BoundedValue, KeyValueStore } from '../stores/kv/kv-port.js';
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
 * Where the highest CRL taken is kept across restarts: the signed CRL itself (PEM), one key for
 * the whole deployment (kvKeys.gatewayCrl). Its number is a floor only once it verifies as our
 * intermediate's CRL, so a writer of the store can neither raise the floor past every CRL our CA
 * will sign nor lower it without our CA's key (decision 0021, 2026-12-06, review h9).
 */
export interface CrlRecord {
  readonly kv: KeyValueStore;
  readonly key: string;
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
 * The largest record read or written: the key/value stores' value limit (1 MiB by default,
 * STORE_LIMIT past it). About 14,000 entries as PEM: a CRL larger than that is held but not
 * recorded (logged), and the record keeps the last one that fitted, still a verified floor. A
 * larger value found there is not one we wrote: it is never read (getBounded answers its size
 * only) nor sent back (deleteIfLarger removes it), so a store writer cannot make every gateway
 * load up to Redis's 512 MB at each reload (review h13, finding 1). PEM is ASCII: characters are bytes.
 */
export const crlRecordCharsMax = 1024 * 1024;
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
      pem = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err: error, path }, 'CRL file unreadable; keeping the last one');
      return undefined;
    }
    try {
      return { crl: await readVerifiedCrl({ pem, issuer: parseCertificate(this.options.intermediateCaPem) }), text: pem };
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
      return { crl: await readVerifiedCrl({ pem, issuer: parseCertificate(this.options.intermediateCaPem) }), text: pem };
    } catch (error) {
      this.#fetchFailures.set('TRUST_CRL_INVALID', (this.#fetchFailures.get('TRUST_CRL_INVALID') ?? 0) + 1);
      this.options.logger.error({ err: error, code: 'TRUST_CRL_INVALID', url: fetch.url.href }, 'CRL fetched from the control plane refused: not a CRL of our intermediate CA; keeping the one held');
      return undefined;
    }
  }

  #take({ crl, text }: ReadCrl): void {
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
   * CRL held still holds) or it does not verify: then it is ignored, logged at error
   * (TRUST_CRL_RECORD_INVALID) and counted, and #raiseRecord writes the CRL held over it.
   */
  async #readRecord(): Promise<ReadCrl | undefined> {
    const record = this.options.record;
    if (record === undefined) return undefined;
    let read: BoundedValue;
    try {
      read = await record.kv.getBounded(record.key, crlRecordCharsMax);
    } catch (error) {
      this.options.logger.warn({ err: error, key: record.key }, 'the highest CRL record cannot be read; judged on the CRL held until the next reload');
      return undefined;
    }
    if (read.state === 'absent') return undefined;
    if (read.state === 'tooLarge') {
      this.#recordInvalid({ reason: 'too-large', bytes: read.bytes, bytesMax: crlRecordCharsMax }, `the highest CRL record holds ${read.bytes} bytes, above the ${crlRecordCharsMax} bound: not read`);
      return undefined;
    }
    const verified = await this.#verifyRecord(read.value);
    if ('crl' in verified) return { crl: verified.crl, text: read.value };
    this.#recordInvalid({ err: verified.error, reason: 'not-our-crl', bytes: read.value.length }, 'the highest CRL record is not a CRL of our intermediate CA');
    return undefined;
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
   * Raises the record to the CRL held (compare-and-set, never lowered): after each take, and at
   * each reload, so a record the store lost (a wipe) or one that does not verify is written again
   * while the gateway runs. Only a verified CRL numbered at or above the one held is left in place.
   * A failure is logged and tried again at the next reload.
   */
  async #raiseRecord(): Promise<void> {
    const record = this.options.record;
    const taken = this.#taken;
    const text = this.#takenText;
    if (record === undefined || taken === undefined || text === undefined) return;
    if (text.length > crlRecordCharsMax) {
      // Once per CRL taken: the same CRL is not recorded at the next reload either.
      if (this.#unrecordedNumber !== taken.crlNumber) {
        this.#unrecordedNumber = taken.crlNumber;
        this.options.logger.warn({ key: record.key, crlNumber: taken.crlNumber.toString(), chars: text.length, charsMax: crlRecordCharsMax },
          'the CRL held is larger than the highest CRL record may be: not recorded (the record keeps the last one that fitted; a restart holds at least that)');
      }
      return;
    }
    try {
      for (let attempt = 0; attempt < recordWriteAttemptsMax; attempt += 1) {
        const read = await record.kv.getBounded(record.key, crlRecordCharsMax);
        if (read.state === 'tooLarge') {
          // Removed by size on the server, never sent back as a compareAndSet's `expected`; the
          // next round finds the key absent and writes only if no other gateway did meanwhile.
          await record.kv.deleteIfLarger(record.key, crlRecordCharsMax);
          continue;
        }
        const current = read.state === 'value' ? read.value : null;
        if (current === text) return;
        if (current !== null) {
          const verified = await this.#verifyRecord(current);
          if ('crl' in verified && verified.crl.crlNumber >= taken.crlNumber) return;
        }
        const written = current === null
          ? await record.kv.set(record.key, text, { onlyIfAbsent: true })
          : await record.kv.compareAndSet(record.key, current, text);
        if (written) return;
      }
      this.options.logger.warn({ key: record.key }, 'the highest CRL record kept moving; written at the next reload');
    } catch (error) {
      this.options.logger.warn({ err: error, key: record.key }, 'the highest CRL record not written; tried again at the next reload');
    }
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
