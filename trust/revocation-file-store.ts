import { privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import { isRevocationReason, RevocationTable, RevocationTableStore, type RevocationEntry } from './revocation.js';
import { normalizeSerialHex } from './serial-number.js';
import { parseStoreFile, readStoreFileIfExists, storeCorrupt } from './json-store-file.js';

interface RevocationFile {
  version: 1;
  lastCrlNumber: string;
  entries: readonly RevocationEntry[];
}

/**
 * Revocations in one JSON file, rewritten atomically (temp file + rename) on every change, for
 * the CLI and single-process deployments. Writes within a process are serialized; two processes
 * writing the same file at once are not coordinated (last writer wins), so run one writer.
 */
export class JsonFileRevocationStore extends RevocationTableStore {
  readonly #path: string;

  private constructor(path: string, table: RevocationTable) {
    super(table);
    this.#path = path;
  }

  /** Opens the store at `path`; a missing file is an empty store, an unreadable one is TRUST_STORE_CORRUPT. */
  static async open(path: string, options: { entriesMax?: number } = {}): Promise<JsonFileRevocationStore> {
    const text = await readStoreFileIfExists(path);
    const parsed = text === undefined ? { entries: [], lastCrlNumber: 0n } : parseRevocationFile(text, path);
    return new JsonFileRevocationStore(path, new RevocationTable({ ...options, ...parsed }));
  }

  protected async persist(entries: readonly RevocationEntry[], lastCrlNumber: bigint): Promise<void> {
    const file: RevocationFile = { version: 1, lastCrlNumber: lastCrlNumber.toString(), entries };
    await writeFileAtomic(this.#path, JSON.stringify(file, null, 2) + '\n', { mode: privateFileMode });
  }
}

function parseRevocationFile(text: string, path: string): { entries: RevocationEntry[]; lastCrlNumber: bigint } {
  const corrupt = (why: string): never => { throw storeCorrupt(path, why); };
  const file = parseStoreFile(text, path, 'revocation file') as Partial<RevocationFile>;
  if (typeof file.lastCrlNumber !== 'string' || !/^\d{1,48}$/.test(file.lastCrlNumber)) return corrupt('lastCrlNumber is not a decimal string');
  if (!Array.isArray(file.entries)) return corrupt('entries is not an array');
  const entries = file.entries.map((raw: unknown): RevocationEntry => {
    const entry = raw as Partial<RevocationEntry> | null;
    if (typeof entry !== 'object' || entry === null || typeof entry.serialHex !== 'string' || !/^[0-9a-f]{1,40}$/.test(entry.serialHex)
      || typeof entry.reason !== 'string' || !isRevocationReason(entry.reason)
      || typeof entry.revokedAtMs !== 'number' || !Number.isSafeInteger(entry.revokedAtMs)) {
      return corrupt('an entry lacks a valid serialHex, reason or revokedAtMs');
    }
    return { serialHex: normalizeSerialHex(entry.serialHex), reason: entry.reason, revokedAtMs: entry.revokedAtMs };
  });
  return { entries, lastCrlNumber: BigInt(file.lastCrlNumber) };
}
