import { createHash } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';
import { privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import { isDeviceId } from '../core/protocol/device-id.js';
import { requireDeviceId } from './device-profile.js';
import { parseStoreFile, readStoreFileIfExists, storeCorrupt } from './json-store-file.js';

/**
 * One-time pairing tokens: an operator creates one for a device id and hands it to whoever
 * sets the device up; the device presents it once, with its CSR, to enroll. The token is 256
 * random bits shown once as base64url (after a fixed prefix); stores keep only its SHA-256, so a leaked store does not
 * leak usable tokens. Lookup is by hash, so no secret is ever compared byte by byte.
 */
export const pairingTokenBytes = 32;
export const pairingTokenTtlMsDefault = 15 * 60 * 1000;
export const pairingTokenTtlMsMax = 24 * 60 * 60 * 1000;
/**
 * Outstanding tokens (created, not yet used, not expired) per store; creation beyond this is
 * refused until tokens are used or expire. Spent and expired records do not count: a fleet
 * enrolling in bulk frees a place with every enrollment. 100,000 holds the largest fleet we
 * provision at once (issue 15: 50,000 agents) twice over; deployments set their own
 * (`sdc serve --pairing-tokens-max`).
 */
export const pairingTokensMaxDefault = 100_000;
/** Tokens one bulk request creates at most: one transaction, one answer of about 130 bytes per token. */
export const pairingTokensPerBatchMax = 10_000;
/**
 * Tries of one token for device ids other than its own before it is spent, the last one included.
 * Such a try leaves the token usable (an installer who mistypes the id keeps the device's token;
 * review h9, finding 4) but a stolen token must not be tried against every likely id (batch ids
 * are `prefix + count`): the third wrong try spends it. Two typos are forgiven.
 */
export const pairingWrongDeviceTriesMax = 3;
/** Spent and expired records are kept this long after expiry so a late attempt is told "used"/"expired", not "unknown". */
export const pairingRecordRetentionMs = 24 * 60 * 60 * 1000;

/**
 * Tokens read `sdcpt_<43 base64url characters>`. The prefix lets secret scanners recognise a leaked
 * token (as GitHub's `ghp_` does) and keeps a token from starting with '-', which command-line
 * parsers would take for a flag (1 in 64 bare base64url tokens would).
 */
export const pairingTokenPrefix = 'sdcpt_';
const tokenPattern = /^sdcpt_[A-Za-z0-9_-]{43}$/;

export interface PairingTokenRecord {
  readonly tokenHashHex: string;
  readonly deviceId: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly usedAtMs: number | null;
  /** Tries for another device id so far; at pairingWrongDeviceTriesMax the token is spent (usedAtMs set). */
  readonly wrongDeviceTries: number;
}

/** Why a known token cannot be used for a claim, in the order they are told: used, expired, another device's. */
export type PairingRefusal = 'already-used' | 'expired' | 'other-device';

export type PairingConsumeResult =
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'consumed'; readonly record: PairingTokenRecord }
  | { readonly outcome: PairingRefusal; readonly record: PairingTokenRecord };

/** Who presents a token, and when: a token is consumed only by its own device, unused and unexpired. */
export interface PairingClaim {
  readonly deviceId: string;
  readonly now: Date;
}

/**
 * Storage port. `createBatch` stores all of its records or none (a refusal leaves the store as it
 * was). `consume` checks the claim and marks the token used in one atomic step: a token that is
 * used or expired is left as it was; one presented for another device is not spent (an installer
 * who mistypes the device id keeps the device's token) but the try is counted in the same step,
 * and the pairingWrongDeviceTriesMax-th such try spends it (answered 'other-device' with
 * `usedAtMs` set; later tries 'already-used'), however many arrive at once. Of two concurrent
 * calls for one hash exactly one sees 'consumed'.
 */
export interface PairingTokenStore {
  createBatch(records: readonly PairingTokenRecord[], now: Date): Promise<void>;
  consume(tokenHashHex: string, claim: PairingClaim): Promise<PairingConsumeResult>;
}

/** Whether a token was spent by tries for other device ids rather than enrolled with. */
export function spentByWrongDeviceTries(record: PairingTokenRecord): boolean {
  return record.usedAtMs !== null && record.wrongDeviceTries >= pairingWrongDeviceTriesMax;
}

/** Why `record` cannot be consumed for `claim`, or undefined when it can. */
export function pairingRefusalOf(record: PairingTokenRecord, claim: PairingClaim): PairingRefusal | undefined {
  if (record.usedAtMs !== null) return 'already-used';
  if (claim.now.getTime() >= record.expiresAtMs) return 'expired';
  if (record.deviceId !== claim.deviceId) return 'other-device';
  return undefined;
}

/** SHA-256 of a well-formed token, as lowercase hex; a malformed token is TRUST_PAIRING_TOKEN_INVALID. */
export function hashPairingToken(token: string): string {
  if (!tokenPattern.test(token)) throw new SdcError('TRUST_PAIRING_TOKEN_INVALID', `pairing token is not ${pairingTokenPrefix} and 43 base64url characters`);
  return createHash('sha256').update(token, 'ascii').digest('hex');
}

/** A record still counts against the capacity: created, unused, and not expired at `nowMs`. */
export function isOutstanding(record: Pick<PairingTokenRecord, 'usedAtMs' | 'expiresAtMs'>, nowMs: number): boolean {
  return record.usedAtMs === null && record.expiresAtMs > nowMs;
}

/** The refusal when `requested` more tokens would pass the limit; it names the limit and how to raise it. */
export function pairingCapacityError(options: { outstanding: number; requested: number; limit: number }): SdcError {
  const { outstanding, requested, limit } = options;
  return new SdcError('TRUST_PAIRING_CAPACITY',
    `pairing token limit reached: ${outstanding} outstanding (unused, unexpired) tokens and ${requested} more would pass the limit of ${limit}; `
    + 'wait until tokens are used or expire, or raise the limit (sdc serve --pairing-tokens-max)',
    { limit, outstanding, requested });
}

export interface CreatePairingTokenOptions {
  store: PairingTokenStore;
  deviceId: string;
  now: Date;
  random: RandomSource;
  ttlMs?: number;
}

export interface CreatedPairingToken {
  /** The secret. Show it to the operator once; it is not stored anywhere. */
  readonly token: string;
  readonly deviceId: string;
  readonly expiresAt: Date;
}

export async function createPairingToken(options: CreatePairingTokenOptions): Promise<CreatedPairingToken> {
  const [created] = await createPairingTokens({ ...options, deviceIds: [options.deviceId] });
  return created!;
}

export interface CreatePairingTokensOptions {
  store: PairingTokenStore;
  /** Distinct device ids, 1 to pairingTokensPerBatchMax. */
  deviceIds: readonly string[];
  now: Date;
  random: RandomSource;
  ttlMs?: number;
}

/** One token per device id, stored in one batch (all or none); the secrets are returned in the ids' order. */
export async function createPairingTokens(options: CreatePairingTokensOptions): Promise<CreatedPairingToken[]> {
  const deviceIds = requireBatchDeviceIds(options.deviceIds);
  const ttlMs = options.ttlMs ?? pairingTokenTtlMsDefault;
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > pairingTokenTtlMsMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `ttlMs must be from 1 to ${pairingTokenTtlMsMax}`);
  }
  const createdAtMs = options.now.getTime();
  const created = deviceIds.map((deviceId) => ({ token: newTokenSecret(options.random), deviceId }));
  const records = created.map(({ token, deviceId }): PairingTokenRecord => ({
    tokenHashHex: hashPairingToken(token), deviceId, createdAtMs, expiresAtMs: createdAtMs + ttlMs, usedAtMs: null, wrongDeviceTries: 0,
  }));
  await options.store.createBatch(records, options.now);
  const expiresAt = new Date(createdAtMs + ttlMs);
  return created.map(({ token, deviceId }) => ({ token, deviceId, expiresAt }));
}

/**
 * A fleet's ids from a prefix: `prefix` then the index, zero-padded to the width of the last one
 * (`lab-` 1..1000 gives lab-0001 .. lab-1000), so the ids sort in index order. Each must pass the
 * device-id rule (createPairingTokens checks).
 */
export function deviceIdsFromPrefix(options: { prefix: string; count: number; first?: number }): string[] {
  const first = options.first ?? 1;
  const { count, prefix } = options;
  if (!Number.isSafeInteger(count) || count < 1 || count > pairingTokensPerBatchMax || !Number.isSafeInteger(first) || first < 0) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `count must be from 1 to ${pairingTokensPerBatchMax} and first at least 0`);
  }
  const width = String(first + count - 1).length;
  return Array.from({ length: count }, (_, i) => prefix + String(first + i).padStart(width, '0'));
}

function requireBatchDeviceIds(deviceIds: readonly string[]): string[] {
  if (deviceIds.length === 0 || deviceIds.length > pairingTokensPerBatchMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `a batch names 1 to ${pairingTokensPerBatchMax} devices, not ${deviceIds.length}`);
  }
  const ids = deviceIds.map((id) => requireDeviceId(id));
  // Two live tokens for one device in one batch is a mistake in the list, not a request.
  if (new Set(ids).size !== ids.length) throw new SdcError('TRUST_INVALID_ARGUMENT', 'a batch names a device id twice');
  return ids;
}

function newTokenSecret(random: RandomSource): string {
  const secret = random.bytes(pairingTokenBytes);
  if (secret.length !== pairingTokenBytes) throw new SdcError('TRUST_INVALID_ARGUMENT', 'RandomSource returned the wrong number of bytes');
  const token = pairingTokenPrefix + Buffer.from(secret).toString('base64url');
  secret.fill(0);
  return token;
}

/**
 * The state both file and memory stores share; synchronous, so each call is atomic within a process.
 * At most `recordsMax` outstanding tokens, and as many spent or expired records again (kept for
 * the "used"/"expired" answers): past that the oldest of those are forgotten first, so a late
 * attempt with one of them is told "unknown" rather than the table growing without bound.
 */
export class PairingTokenTable {
  readonly #records = new Map<string, PairingTokenRecord>();
  readonly #recordsMax: number;

  constructor(options: { recordsMax?: number; records?: readonly PairingTokenRecord[] } = {}) {
    this.#recordsMax = options.recordsMax ?? pairingTokensMaxDefault;
    for (const record of options.records ?? []) this.#records.set(record.tokenHashHex, record);
  }

  createBatch(records: readonly PairingTokenRecord[], now: Date): void {
    const nowMs = now.getTime();
    this.#forgetStale(nowMs);
    let outstanding = 0;
    for (const record of this.#records.values()) if (isOutstanding(record, nowMs)) outstanding += 1;
    if (outstanding + records.length > this.#recordsMax) {
      throw pairingCapacityError({ outstanding, requested: records.length, limit: this.#recordsMax });
    }
    const hashes = new Set(records.map((r) => r.tokenHashHex));
    if (hashes.size !== records.length || records.some((r) => this.#records.has(r.tokenHashHex))) {
      throw new SdcError('TRUST_INVALID_ARGUMENT', 'pairing token hash already exists');
    }
    this.#forgetOldestSpent(this.#records.size + records.length - 2 * this.#recordsMax, nowMs);
    for (const record of records) this.#records.set(record.tokenHashHex, record);
  }

  consume(tokenHashHex: string, claim: PairingClaim): PairingConsumeResult {
    const record = this.#records.get(tokenHashHex);
    if (!record) return { outcome: 'unknown' };
    const refusal = pairingRefusalOf(record, claim);
    if (refusal === 'other-device') {
      const wrongDeviceTries = record.wrongDeviceTries + 1;
      const counted = { ...record, wrongDeviceTries, usedAtMs: wrongDeviceTries >= pairingWrongDeviceTriesMax ? claim.now.getTime() : null };
      this.#records.set(tokenHashHex, counted);
      return { outcome: refusal, record: counted };
    }
    if (refusal !== undefined) return { outcome: refusal, record };
    const spent = { ...record, usedAtMs: claim.now.getTime() };
    this.#records.set(tokenHashHex, spent);
    return { outcome: 'consumed', record: spent };
  }

  records(): PairingTokenRecord[] {
    return [...this.#records.values()];
  }

  #forgetStale(nowMs: number): void {
    for (const [hash, record] of this.#records) {
      if (record.expiresAtMs + pairingRecordRetentionMs <= nowMs) this.#records.delete(hash);
    }
  }

  /** Forgets `count` spent or expired records, those that expire first first (outstanding ones never). */
  #forgetOldestSpent(count: number, nowMs: number): void {
    if (count <= 0) return;
    const spent = [...this.#records.values()].filter((r) => !isOutstanding(r, nowMs)).sort((a, b) => a.expiresAtMs - b.expiresAtMs);
    for (const record of spent.slice(0, count)) this.#records.delete(record.tokenHashHex);
  }
}

export class MemoryPairingTokenStore implements PairingTokenStore {
  readonly #table: PairingTokenTable;

  constructor(options: { recordsMax?: number } = {}) {
    this.#table = new PairingTokenTable(options);
  }

  async createBatch(records: readonly PairingTokenRecord[], now: Date): Promise<void> {
    this.#table.createBatch(records, now);
  }

  async consume(tokenHashHex: string, claim: PairingClaim): Promise<PairingConsumeResult> {
    return this.#table.consume(tokenHashHex, claim);
  }
}

/**
 * Token hashes in a JSON file, for the hand-run `sdc pki pairing-token` / `sdc pki enroll` path.
 * The file is re-read before each operation and rewritten atomically; operations within a
 * process are serialized, concurrent processes are not coordinated (one operator, one shell).
 */
export class JsonFilePairingTokenStore implements PairingTokenStore {
  readonly #path: string;
  readonly #recordsMax: number | undefined;
  #operations: Promise<void> = Promise.resolve();

  constructor(path: string, options: { recordsMax?: number } = {}) {
    this.#path = path;
    this.#recordsMax = options.recordsMax;
  }

  async createBatch(records: readonly PairingTokenRecord[], now: Date): Promise<void> {
    return this.#serialized(async () => {
      const table = await this.#load();
      table.createBatch(records, now);
      await this.#save(table);
    });
  }

  async consume(tokenHashHex: string, claim: PairingClaim): Promise<PairingConsumeResult> {
    return this.#serialized(async () => {
      const table = await this.#load();
      const result = table.consume(tokenHashHex, claim);
      // A try for another device changed the record too (its count, perhaps spending it).
      if (result.outcome === 'consumed' || result.outcome === 'other-device') await this.#save(table);
      return result;
    });
  }

  async #load(): Promise<PairingTokenTable> {
    const text = await readStoreFileIfExists(this.#path);
    const records = text === undefined ? [] : parsePairingFile(text, this.#path);
    return new PairingTokenTable({ recordsMax: this.#recordsMax, records });
  }

  async #save(table: PairingTokenTable): Promise<void> {
    const file = { version: 1, records: table.records() };
    await writeFileAtomic(this.#path, JSON.stringify(file, null, 2) + '\n', { mode: privateFileMode });
  }

  #serialized<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#operations.then(task);
    this.#operations = result.then(() => undefined, () => undefined);
    return result;
  }
}

function parsePairingFile(text: string, path: string): PairingTokenRecord[] {
  const corrupt = (why: string): never => { throw storeCorrupt(path, why); };
  const file = parseStoreFile(text, path, 'pairing token file');
  if (!Array.isArray(file.records)) return corrupt('not a version 1 pairing token file');
  return file.records.map((raw: unknown): PairingTokenRecord => {
    const r = raw as Partial<PairingTokenRecord> | null;
    const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
    if (typeof r !== 'object' || r === null || typeof r.tokenHashHex !== 'string' || !/^[0-9a-f]{64}$/.test(r.tokenHashHex)
      || typeof r.deviceId !== 'string' || !isDeviceId(r.deviceId) || !isTime(r.createdAtMs) || !isTime(r.expiresAtMs)
      || !(r.usedAtMs === null || isTime(r.usedAtMs))
      // Files written before the count have none: 0.
      || !(r.wrongDeviceTries === undefined || (Number.isSafeInteger(r.wrongDeviceTries) && r.wrongDeviceTries >= 0))) {
      return corrupt('a record lacks a valid tokenHashHex, deviceId, times or wrongDeviceTries');
    }
    return {
      tokenHashHex: r.tokenHashHex, deviceId: r.deviceId, createdAtMs: r.createdAtMs, expiresAtMs: r.expiresAtMs, usedAtMs: r.usedAtMs,
      wrongDeviceTries: r.wrongDeviceTries ?? 0,
    };
  });
}
