import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SdcError } from '../../core/errors/index.js';

/**
 * Where release artifacts live: a port, so the S3 blob store with presigned URLs (issue 10,
 * "Artifacts and downloads", a later slice) can replace the file adapter below without touching
 * the releases. An artifact is stored under its SHA-256; `put` reads a stream to the end while
 * counting and hashing, and refuses more than `bytesMax` without keeping anything.
 */
export interface StoredArtifact {
  readonly length: number;
  readonly sha256: string;
  readonly sha512: string;
}

export interface ArtifactStore {
  /** Stores the whole stream; OTA_UPLOAD_TOO_LARGE (nothing kept) past `bytesMax`. */
  put(body: AsyncIterable<Uint8Array>, options: { bytesMax: number }): Promise<StoredArtifact>;
  /** The artifact's bytes as a stream, or undefined when none is stored under this digest. */
  open(sha256: string): Promise<{ stream: Readable; length: number } | undefined>;
}

const sha256Pattern = /^[0-9a-f]{64}$/;

/** `<dataDir>/ota/artifacts/<sha256>`: written to a temporary file, renamed when whole and hashed. */
export class FileArtifactStore implements ArtifactStore {
  readonly #directory: string;

  constructor(directory: string) {
    this.#directory = directory;
  }

  async put(body: AsyncIterable<Uint8Array>, options: { bytesMax: number }): Promise<StoredArtifact> {
    await mkdir(this.#directory, { recursive: true, mode: 0o700 });
    const temporary = join(this.#directory, `.upload-${randomBytes(8).toString('hex')}.tmp`);
    const handle = await open(temporary, 'wx', 0o600);
    const sha256 = createHash('sha256');
    const sha512 = createHash('sha512');
    let length = 0;
    try {
      try {
        for await (const chunk of body) {
          length += chunk.length;
          if (length > options.bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${options.bytesMax} bytes`, { bytesMax: options.bytesMax });
          sha256.update(chunk);
          sha512.update(chunk);
          await handle.write(chunk);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      const stored = { length, sha256: sha256.digest('hex'), sha512: sha512.digest('hex') };
      await rename(temporary, join(this.#directory, stored.sha256));
      return stored;
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  async open(sha256: string): Promise<{ stream: Readable; length: number } | undefined> {
    if (!sha256Pattern.test(sha256)) return undefined;
    const path = join(this.#directory, sha256);
    try {
      const { size } = await stat(path);
      return { stream: createReadStream(path), length: size };
    } catch {
      return undefined;
    }
  }
}

/** For tests and the simulator: bounded by `bytesMax` per artifact like the file store. */
export class MemoryArtifactStore implements ArtifactStore {
  readonly #artifacts = new Map<string, Uint8Array>();

  async put(body: AsyncIterable<Uint8Array>, options: { bytesMax: number }): Promise<StoredArtifact> {
    const chunks: Uint8Array[] = [];
    let length = 0;
    for await (const chunk of body) {
      length += chunk.length;
      if (length > options.bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${options.bytesMax} bytes`, { bytesMax: options.bytesMax });
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const stored = { length, sha256: createHash('sha256').update(bytes).digest('hex'), sha512: createHash('sha512').update(bytes).digest('hex') };
    this.#artifacts.set(stored.sha256, bytes);
    return stored;
  }

  async open(sha256: string): Promise<{ stream: Readable; length: number } | undefined> {
    const bytes = this.#artifacts.get(sha256);
    if (bytes === undefined) return undefined;
    const { Readable: ReadableClass } = await import('node:stream');
    return { stream: ReadableClass.from([bytes]), length: bytes.length };
  }
}
