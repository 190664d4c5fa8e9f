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
/** Outstanding tokens per store; creation beyond this is refused until old ones age out. */
export const pairingTokensMaxDefault = 10_000;
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
}

export type PairingConsumeResult =
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'consumed'; readonly record: PairingTokenRecord }
  | { readonly outcome: 'already-used'; readonly record: PairingTokenRecord };

/** Storage port. `consume` must be atomic: of two concurrent calls for one hash, exactly one sees 'consumed'. */
export interface PairingTokenStore {
  create(record: PairingTokenRecord, now: Date): Promise<void>;
  consume(tokenHashHex: string, now: Date): Promise<PairingConsumeResult>;
}

/** SHA-256 of a well-formed token, as lowercase hex; a malformed token is TRUST_PAIRING_TOKEN_INVALID. */
export function hashPairingToken(token: string): string {
  if (!tokenPattern.test(token)) throw new SdcError('TRUST_PAIRING_TOKEN_INVALID', `pairing token is not ${pairingTokenPrefix} and 43 base64url characters`);
  return createHash('sha256').update(token, 'ascii').digest('hex');
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
  const deviceId = requireDeviceId(options.deviceId);
  const ttlMs = options.ttlMs ?? pairingTokenTtlMsDefault;
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > pairingTokenTtlMsMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `ttlMs must be from 1 to ${pairingTokenTtlMsMax}`);
  }
  const secret = options.random.bytes(pairingTokenBytes);
  if (secret.length !== pairingTokenBytes) throw new SdcError('TRUST_INVALID_ARGUMENT', 'RandomSource returned the wrong number of bytes');
  const token = pairingTokenPrefix + Buffer.from(secret).toString('base64url');
  secret.fill(0);
  const createdAtMs = options.now.getTime();
  const record: PairingTokenRecord = {
    tokenHashHex: hashPairingToken(token), deviceId, createdAtMs, expiresAtMs: createdAtMs + ttlMs, usedAtMs: null,
  };
  await options.store.create(record, options.now);
  return { token, deviceId, expiresAt: new Date(record.expiresAtMs) };
}

/** The state both stores share; synchronous, so each call is atomic within a process. */
export class PairingTokenTable {
  readonly #records = new Map<string, PairingTokenRecord>();
  readonly #recordsMax: number;

  constructor(options: { recordsMax?: number; records?: readonly PairingTokenRecord[] } = {}) {
    this.#recordsMax = options.recordsMax ?? pairingTokensMaxDefault;
    for (const record of options.records ?? []) this.#records.set(record.tokenHashHex, record);
  }

  create(record: PairingTokenRecord, now: Date): void {
    this.#forgetStale(now);
    if (this.#records.size >= this.#recordsMax) {
      throw new SdcError('TRUST_PAIRING_CAPACITY', `pairing token store holds its maximum of ${this.#recordsMax} tokens`);
    }
    if (this.#records.has(record.tokenHashHex)) throw new SdcError('TRUST_INVALID_ARGUMENT', 'pairing token hash already exists');
    this.#records.set(record.tokenHashHex, record);
  }

  consume(tokenHashHex: string, now: Date): PairingConsumeResult {
    const record = this.#records.get(tokenHashHex);
    if (!record) return { outcome: 'unknown' };
    if (record.usedAtMs !== null) return { outcome: 'already-used', record };
    const spent = { ...record, usedAtMs: now.getTime() };
    this.#records.set(tokenHashHex, spent);
    return { outcome: 'consumed', record: spent };
  }

  records(): PairingTokenRecord[] {
    return [...this.#records.values()];
  }

  #forgetStale(now: Date): void {
    for (const [hash, record] of this.#records) {
      if (record.expiresAtMs + pairingRecordRetentionMs <= now.getTime()) this.#records.delete(hash);
    }
  }
}

export class MemoryPairingTokenStore implements PairingTokenStore {
  readonly #table: PairingTokenTable;

  constructor(options: { recordsMax?: number } = {}) {
    this.#table = new PairingTokenTable(options);
  }

  async create(record: PairingTokenRecord, now: Date): Promise<void> {
    this.#table.create(record, now);
  }

  async consume(tokenHashHex: string, now: Date): Promise<PairingConsumeResult> {
    return this.#table.consume(tokenHashHex, now);
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

  async create(record: PairingTokenRecord, now: Date): Promise<void> {
    return this.#serialized(async () => {
      const table = await this.#load();
      table.create(record, now);
      await this.#save(table);
    });
  }

  async consume(tokenHashHex: string, now: Date): Promise<PairingConsumeResult> {
    return this.#serialized(async () => {
      const table = await this.#load();
      const result = table.consume(tokenHashHex, now);
      if (result.outcome === 'consumed') await this.#save(table);
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
      || !(r.usedAtMs === null || isTime(r.usedAtMs))) {
      return corrupt('a record lacks a valid tokenHashHex, deviceId or times');
    }
    return { tokenHashHex: r.tokenHashHex, deviceId: r.deviceId, createdAtMs: r.createdAtMs, expiresAtMs: r.expiresAtMs, usedAtMs: r.usedAtMs };
  });
}
