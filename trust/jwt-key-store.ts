import { SdcError } from '../core/errors/index.js';
import { isKey32, type Ed25519PrivateJwk } from './jwt-keys.js';

/** One signing key of the authority's ring. */
export interface StoredSigningKey {
  /** RFC 7638 thumbprint of the public key. */
  readonly kid: string;
  readonly createdAtMs: number;
  /** When the key stopped signing; null while it is the active key. It stays published until retiredAtMs + overlap. */
  readonly retiredAtMs: number | null;
  readonly privateJwk: Ed25519PrivateJwk;
}

/** The persisted ring, newest key first; at most one key is active (retiredAtMs null). */
export interface StoredKeyRing {
  readonly version: 1;
  readonly keys: readonly StoredSigningKey[];
}

/** Given the stored ring (undefined if none), the ring to store instead, or undefined to leave it. */
export type KeyRingChange = (current: StoredKeyRing | undefined) => Promise<StoredKeyRing | undefined>;

/**
 * Where the authority keeps its ring. Implementations: memory (tests, simulation) and file. Several
 * authorities (control planes) may share one store: `update` is how they change it.
 */
export interface JwtKeyStore {
  /** The saved ring, or undefined if none was ever saved. */
  load(): Promise<StoredKeyRing | undefined>;
  /** Replaces the saved ring atomically: a reader sees the old ring or the new one, never a mix. */
  save(ring: StoredKeyRing): Promise<void>;
  /**
   * Read-change-write as one step among every writer of the store: `change` sees the ring as it
   * is now and its result is stored only if no other writer stored a ring since; otherwise
   * `change` runs again on the newer ring. Returns the ring stored at the end.
   */
  update(change: KeyRingChange): Promise<StoredKeyRing | undefined>;
}

/** No ring the authority writes comes near this; it bounds what a corrupt store can make us parse. */
export const storedKeysMax = 64;

function isTimeMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(message: string, details: Readonly<Record<string, string | number>> = {}): SdcError {
  return new SdcError('JWT_KEY_STORE_INVALID', message, details);
}

function parseKey(value: unknown, index: number): StoredSigningKey {
  if (!isRecord(value)) throw invalid('key ring entry is not an object', { index });
  const { kid, createdAtMs, retiredAtMs, privateJwk: jwk } = value;
  if (!isKey32(kid)) throw invalid('key ring entry has no valid kid', { index });
  if (!isTimeMs(createdAtMs)) throw invalid('key ring entry has no valid createdAtMs', { index });
  if (retiredAtMs !== null && !(isTimeMs(retiredAtMs) && retiredAtMs >= createdAtMs)) {
    throw invalid('key ring entry has an invalid retiredAtMs', { index });
  }
  if (!isRecord(jwk) || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !isKey32(jwk.x) || !isKey32(jwk.d)) {
    throw invalid('key ring entry has no valid private Ed25519 JWK', { index });
  }
  return { kid, createdAtMs, retiredAtMs, privateJwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d } };
}

/**
 * Checks the shape of a ring read from storage and returns a fresh copy with only known members.
 * Cryptographic consistency (x matches d, kid matches x) is checked by the authority on load.
 */
export function parseStoredKeyRing(value: unknown): StoredKeyRing {
  if (!isRecord(value) || value.version !== 1 || !Array.isArray(value.keys)) {
    throw invalid('key ring is not a version 1 key ring');
  }
  if (value.keys.length > storedKeysMax) throw invalid('key ring has too many keys', { count: value.keys.length });
  const keys = value.keys.map(parseKey);
  if (keys.filter((k) => k.retiredAtMs === null).length > 1) throw invalid('key ring has more than one active key');
  if (new Set(keys.map((k) => k.kid)).size !== keys.length) throw invalid('key ring has a duplicate kid');
  return { version: 1, keys };
}

/** In-memory store; keeps a private copy so callers cannot mutate the saved ring. */
export class MemoryJwtKeyStore implements JwtKeyStore {
  #ring: StoredKeyRing | undefined;

  async load(): Promise<StoredKeyRing | undefined> {
    return this.#ring === undefined ? undefined : structuredClone(this.#ring);
  }

  /** Changes run one at a time, so authorities sharing this store see each other's rings. */
  #tail: Promise<unknown> = Promise.resolve();

  async save(ring: StoredKeyRing): Promise<void> {
    this.#ring = parseStoredKeyRing(structuredClone(ring));
  }

  update(change: KeyRingChange): Promise<StoredKeyRing | undefined> {
    const run = this.#tail.then(async () => {
      const next = await change(await this.load());
      if (next !== undefined) await this.save(next);
      return this.load();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
