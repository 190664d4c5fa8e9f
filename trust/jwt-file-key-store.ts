import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createFileExclusive } from '../runtime/atomic-file.js';
import { SdcError } from '../core/errors/index.js';
import { parseStoredKeyRing, type JwtKeyStore, type KeyRingChange, type StoredKeyRing } from './jwt-key-store.js';

const fileMode = 0o600;
const directoryMode = 0o700;
/** A ring of storedKeysMax keys is about 16 KiB; anything far larger is not ours. */
const fileBytesMax = 256 * 1024;
/** Generations kept on disk besides the newest; older ones are never read again. */
const generationsKept = 4;
/** Attempts of one read-change-write before giving up: each failed one means another process wrote. */
const attemptsMax = 16;
const generationPattern = /^[1-9]\d{0,14}$/;

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

function unavailable(action: string, path: string, error: unknown): SdcError {
  return new SdcError('JWT_KEY_STORE_UNAVAILABLE', `cannot ${action} JWT key ring file`, {
    path,
    errno: errnoCode(error) ?? 'unknown',
  }, { cause: error });
}

interface Current {
  /** 0: no generation file yet (the ring, if any, is the legacy file at `path`). */
  readonly generation: number;
  readonly ring: StoredKeyRing | undefined;
}

/**
 * The key ring as JSON files holding private JWKs, shared by every control plane on one data
 * volume. Each change is a new generation file `<path>.<n>`, created exclusively (written and
 * fsynced under a temp name, then hard-linked to its name, which fails if the name exists), so
 * of two processes changing the ring at once exactly one wins and the other re-reads and
 * decides again (`update`). The ring is the newest generation; before the first one, the file at
 * `path` itself (rings written before generations existed), removed once generation 1 is
 * written. Files are 0600; a directory it creates is 0700 (an existing directory is left as it
 * is). Like ssh, it refuses to load a file that group or others can access. Decision 0017.
 */
export class FileJwtKeyStore implements JwtKeyStore {
  readonly path: string;
  readonly #directory: string;
  readonly #prefix: string;

  constructor(options: { path: string }) {
    this.path = options.path;
    this.#directory = dirname(options.path);
    this.#prefix = `${basename(options.path)}.`;
  }

  /** The file that holds generation `generation` (the newest one is the ring). */
  generationPath(generation: number): string {
    return join(this.#directory, `${this.#prefix}${generation}`);
  }

  async load(): Promise<StoredKeyRing | undefined> {
    return (await this.#current()).ring;
  }

  /** Writes `ring` as the next generation, whatever the current one holds. */
  async save(ring: StoredKeyRing): Promise<void> {
    const checked = parseStoredKeyRing(ring);
    await this.update(async () => checked);
  }

  async update(change: KeyRingChange): Promise<StoredKeyRing | undefined> {
    for (let attempt = 0; attempt < attemptsMax; attempt++) {
      const current = await this.#current();
      const next = await change(current.ring);
      if (next === undefined) return current.ring;
      const checked = parseStoredKeyRing(next);
      if (await this.#claim(current.generation + 1, checked)) return checked;
    }
    throw new SdcError('JWT_KEY_STORE_UNAVAILABLE', 'JWT key ring kept changing under this writer', { path: this.path, attempts: attemptsMax });
  }

  /** Generation numbers on disk, newest first. */
  async #generations(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.#directory);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw unavailable('list', this.#directory, error);
    }
    const generations: number[] = [];
    for (const name of names) {
      if (!name.startsWith(this.#prefix)) continue;
      const rest = name.slice(this.#prefix.length);
      if (generationPattern.test(rest)) generations.push(Number(rest));
    }
    return generations.sort((a, b) => b - a);
  }

  async #current(): Promise<Current> {
    // The newest generation can be pruned between the listing and the read only when a newer
    // one was written meanwhile: list again.
    for (let attempt = 0; attempt < attemptsMax; attempt++) {
      const [newest] = await this.#generations();
      if (newest === undefined) {
        const legacy = await this.#read(this.path);
        // No legacy file: none ever, or generation 1 was written (and the file removed) since the listing.
        if (legacy !== undefined || (await this.#generations()).length === 0) return { generation: 0, ring: legacy };
        continue;
      }
      const ring = await this.#read(this.generationPath(newest));
      if (ring !== undefined) return { generation: newest, ring };
    }
    throw new SdcError('JWT_KEY_STORE_UNAVAILABLE', 'JWT key ring kept changing under this reader', { path: this.path, attempts: attemptsMax });
  }

  async #read(path: string): Promise<StoredKeyRing | undefined> {
    let text: string;
    try {
      const info = await stat(path);
      if ((info.mode & 0o077) !== 0) {
        throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is accessible by group or others', {
          path,
          mode: (info.mode & 0o777).toString(8),
        });
      }
      if (info.size > fileBytesMax) {
        throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is too large', { path, bytes: info.size });
      }
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (SdcError.is(error)) throw error;
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw unavailable('read', path, error);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is not valid JSON', { path });
    }
    return parseStoredKeyRing(value);
  }

  /**
   * Makes `ring` generation `generation` if no process has made that generation yet: false if
   * one has (the caller re-reads). A generation written while a newer one already exists (a
   * writer that stalled past pruning) is taken back at once: no reader takes it for the newest.
   */
  async #claim(generation: number, ring: StoredKeyRing): Promise<boolean> {
    const target = this.generationPath(generation);
    try {
      await mkdir(this.#directory, { recursive: true, mode: directoryMode });
      if (!(await createFileExclusive(target, `${JSON.stringify(ring, null, 2)}\n`, { mode: fileMode }))) return false;
    } catch (error) {
      throw unavailable('write', target, error);
    }
    const generations = await this.#generations();
    if (generations.some((other) => other > generation)) {
      await unlink(target).catch(() => undefined);
      return false;
    }
    for (const old of generations) {
      if (old <= generation - generationsKept) await unlink(this.generationPath(old)).catch(() => undefined);
    }
    // The file from before generations (read as generation 0) holds retired private keys and is
    // never read again once a generation exists: its ring was the input of generation 1. Tried after
    // every change, so a writer that stopped between the two steps leaves it only until the next one.
    await unlink(this.path).catch(() => undefined);
    return true;
  }
}
