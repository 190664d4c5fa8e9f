import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';
import { SdcError } from '../core/errors/index.js';
import { parseStoredKeyRing, type JwtKeyStore, type StoredKeyRing } from './jwt-key-store.js';

const fileMode = 0o600;
const directoryMode = 0o700;
/** A ring of storedKeysMax keys is about 16 KiB; anything far larger is not ours. */
const fileBytesMax = 256 * 1024;

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

/**
 * The key ring as one JSON file holding private JWKs. The file is 0600; a directory it creates
 * is 0700 (an existing directory is left as it is). The file is replaced atomically (write a
 * temp file, fsync, rename, fsync the directory), so a crash leaves the old ring or the new one.
 * Like ssh, it refuses to load a file that group or others can access.
 */
export class FileJwtKeyStore implements JwtKeyStore {
  readonly path: string;

  constructor(options: { path: string }) {
    this.path = options.path;
  }

  async load(): Promise<StoredKeyRing | undefined> {
    let text: string;
    try {
      const info = await stat(this.path);
      if ((info.mode & 0o077) !== 0) {
        throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is accessible by group or others', {
          path: this.path,
          mode: (info.mode & 0o777).toString(8),
        });
      }
      if (info.size > fileBytesMax) {
        throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is too large', { path: this.path, bytes: info.size });
      }
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if (SdcError.is(error)) throw error;
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw unavailable('read', this.path, error);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new SdcError('JWT_KEY_STORE_INVALID', 'JWT key ring file is not valid JSON', { path: this.path });
    }
    return parseStoredKeyRing(value);
  }

  async save(ring: StoredKeyRing): Promise<void> {
    const text = `${JSON.stringify(parseStoredKeyRing(ring), null, 2)}\n`;
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: directoryMode });
      await writeFileAtomic(this.path, text, { mode: fileMode });
    } catch (error) {
      throw unavailable('write', this.path, error);
    }
  }
}
