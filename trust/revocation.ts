import { SdcError } from '../core/errors/index.js';
import { normalizeSerialHex } from './serial-number.js';

/** CRL reason codes we use (RFC 5280 5.3.1). certificateHold is left out on purpose: a device certificate is revoked for good. */
export const revocationReasons = [
  'unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof revocationReasons)[number];

export function isRevocationReason(value: string): value is RevocationReason {
  return (revocationReasons as readonly string[]).includes(value);
}

export function requireRevocationReason(value: string): RevocationReason {
  if (!isRevocationReason(value)) {
    throw new SdcError('TRUST_REVOCATION_REASON_INVALID', `reason must be one of ${revocationReasons.join(', ')}`);
  }
  return value;
}

export interface RevocationEntry {
  /** Normalized: lowercase hex, no leading zeros. */
  readonly serialHex: string;
  readonly reason: RevocationReason;
  readonly revokedAtMs: number;
}

/**
 * Where revoked serials live. Serials are normalized by the store, so callers may pass any
 * hex spelling. Implementations: memory (here), JSON file (revocation-file-store.ts); SQL later.
 */
export interface RevocationStore {
  /** Records a revocation; false if the serial was already revoked (the first record is kept). */
  revoke(serialHex: string, reason: RevocationReason, at: Date): Promise<boolean>;
  isRevoked(serialHex: string): Promise<boolean>;
  /** Entries in revocation order. */
  list(): Promise<readonly RevocationEntry[]>;
  /** The next CRL number: strictly greater than every number returned before (RFC 5280 5.2.3). */
  nextCrlNumber(): Promise<bigint>;
}

/** Far more than a fleet revokes between CA rotations; a bound keeps the CRL a sane size. */
export const revocationEntriesMaxDefault = 100_000;

/** The state both stores share: entries by serial plus the last CRL number. */
export class RevocationTable {
  readonly #entries = new Map<string, RevocationEntry>();
  readonly #entriesMax: number;
  lastCrlNumber: bigint;

  constructor(options: { entriesMax?: number; entries?: readonly RevocationEntry[]; lastCrlNumber?: bigint } = {}) {
    this.#entriesMax = options.entriesMax ?? revocationEntriesMaxDefault;
    this.lastCrlNumber = options.lastCrlNumber ?? 0n;
    for (const entry of options.entries ?? []) this.#entries.set(entry.serialHex, entry);
  }

  /** The entry that `revoke` would add, or undefined if the serial is already revoked. Does not change the table. */
  plan(serialHex: string, reason: RevocationReason, at: Date): RevocationEntry | undefined {
    const serial = normalizeSerialHex(serialHex);
    requireRevocationReason(reason);
    if (this.#entries.has(serial)) return undefined;
    if (this.#entries.size >= this.#entriesMax) {
      throw new SdcError('TRUST_REVOCATION_CAPACITY', `revocation store holds its maximum of ${this.#entriesMax} entries`);
    }
    return { serialHex: serial, reason, revokedAtMs: at.getTime() };
  }

  add(entry: RevocationEntry): void {
    this.#entries.set(entry.serialHex, entry);
  }

  has(serialHex: string): boolean {
    return this.#entries.has(normalizeSerialHex(serialHex));
  }

  entries(): RevocationEntry[] {
    return [...this.#entries.values()];
  }
}

/**
 * A RevocationStore over a RevocationTable, the delegation both stores share: every change is
 * planned on the table, handed to `persist` as the whole new snapshot, and applied to the table
 * only once that resolved, so a failed write changes nothing and a CRL number is never handed out
 * before it is durable. Changes run one at a time, so snapshots reach `persist` in order.
 * Subclasses say only how a snapshot becomes durable.
 */
export abstract class RevocationTableStore implements RevocationStore {
  readonly #table: RevocationTable;
  #changes: Promise<void> = Promise.resolve();

  protected constructor(table: RevocationTable) {
    this.#table = table;
  }

  /** Makes this snapshot durable; the table changes only after it resolves. */
  protected abstract persist(entries: readonly RevocationEntry[], lastCrlNumber: bigint): Promise<void>;

  async revoke(serialHex: string, reason: RevocationReason, at: Date): Promise<boolean> {
    return this.#serialized(async () => {
      const entry = this.#table.plan(serialHex, reason, at);
      if (!entry) return false;
      await this.persist([...this.#table.entries(), entry], this.#table.lastCrlNumber);
      this.#table.add(entry);
      return true;
    });
  }

  async isRevoked(serialHex: string): Promise<boolean> {
    return this.#table.has(serialHex);
  }

  async list(): Promise<readonly RevocationEntry[]> {
    return this.#table.entries();
  }

  async nextCrlNumber(): Promise<bigint> {
    return this.#serialized(async () => {
      const next = this.#table.lastCrlNumber + 1n;
      // Durable before it is handed out, so a crash can never make a number repeat.
      await this.persist(this.#table.entries(), next);
      this.#table.lastCrlNumber = next;
      return next;
    });
  }

  /** Runs `change` after every earlier change finished. */
  #serialized<T>(change: () => Promise<T>): Promise<T> {
    const result = this.#changes.then(change);
    this.#changes = result.then(() => undefined, () => undefined);
    return result;
  }
}

/** Revocations in memory only: the table is the store, so there is nothing to make durable. */
export class MemoryRevocationStore extends RevocationTableStore {
  constructor(options: { entriesMax?: number } = {}) {
    super(new RevocationTable(options));
  }

  protected async persist(): Promise<void> {}
}
