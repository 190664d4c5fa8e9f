import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SdcError } from '../../core/errors/index.js';
import type { BlobStore } from './blob-store.js';

/**
 * Where release artifacts live: a port with three adapters. `BlobArtifactStore` keeps them in the
 * control plane's blob store (embedded or S3), from which devices download them by presigned
 * URL; the file and memory adapters are for tests and older data directories. An artifact is
 * stored under its SHA-256; `put` reads a stream to the end while counting and hashing, and
 * refuses more than `bytesMax` without keeping anything.
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
  /** A presigned GET URL of the artifact (blob store only; undefined elsewhere or when it is not stored). */
  presignGet?(sha256: string, expiresInSeconds: number): Promise<string | undefined>;
  /**
   * Release uploads by presigned PUT (blob store only): a URL for the pending object `name`
   * whose signature binds the exact length, the pending object's bytes, and its removal.
   */
  readonly pendingUploads?: PendingUploads;
}

export interface PendingUploads {
  presignPut(name: string, lengthBytes: number, expiresInSeconds: number): Promise<string>;
  open(name: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  delete(name: string): Promise<void>;
}

const sha256Pattern = /^[0-9a-f]{64}$/;

/** Counts and hashes what passes through, refusing past `bytesMax` (nothing further is read). */
async function* measured(body: AsyncIterable<Uint8Array>, bytesMax: number, into: { length: number; sha256: ReturnType<typeof createHash>; sha512: ReturnType<typeof createHash> }): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    into.length += chunk.length;
    if (into.length > bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the artifact exceeds ${bytesMax} bytes`, { bytesMax });
    into.sha256.update(chunk);
    into.sha512.update(chunk);
    yield chunk;
  }
}

/**
 * Artifacts in the blob store under `ota/artifacts/<sha256>`. The digest is known only at the
 * end of an upload, and an upload that does not match what was declared must not replace a good
 * artifact, so the bytes go to `ota/uploads/<random>` first and are copied to their digest's key
 * (unless an artifact is already stored there with that length), then the upload is deleted.
 * `legacy` is read when the blob store lacks an artifact: data directories from before the blob
 * store kept them in `<dataDir>/ota/artifacts/` (FileArtifactStore).
 */
export class BlobArtifactStore implements ArtifactStore {
  readonly #blobs: BlobStore;
  readonly #legacy: ArtifactStore | undefined;

  constructor(blobs: BlobStore, legacy?: ArtifactStore) {
    this.#blobs = blobs;
    this.#legacy = legacy;
  }

  static key(sha256: string): string {
    return `ota/artifacts/${sha256}`;
  }

  /** Release uploads by presigned PUT land under `ota/release-uploads/<name>` until the control plane has checked them. */
  readonly pendingUploads: PendingUploads = {
    presignPut: (name, lengthBytes, expiresInSeconds) => this.#blobs.presign('PUT', `ota/release-uploads/${name}`, expiresInSeconds, { contentLength: lengthBytes }),
    open: (name) => this.#blobs.read(`ota/release-uploads/${name}`),
    delete: (name) => this.#blobs.delete(`ota/release-uploads/${name}`),
  };

  async put(body: AsyncIterable<Uint8Array>, options: { bytesMax: number }): Promise<StoredArtifact> {
    const upload = `ota/uploads/${randomBytes(12).toString('hex')}`;
    const seen = { length: 0, sha256: createHash('sha256'), sha512: createHash('sha512') };
    try {
      await this.#blobs.put(upload, measured(body, options.bytesMax, seen), options);
      const stored = { length: seen.length, sha256: seen.sha256.digest('hex'), sha512: seen.sha512.digest('hex') };
      const key = BlobArtifactStore.key(stored.sha256);
      if ((await this.#blobs.head(key))?.length !== stored.length) {
        const bytes = await this.#blobs.read(upload);
        if (bytes === undefined) throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', 'the uploaded artifact vanished from the blob store before it was stored under its digest');
        await this.#blobs.put(key, bytes, options);
      }
      return stored;
    } finally {
      await this.#blobs.delete(upload).catch(() => undefined);
    }
  }

  async open(sha256: string): Promise<{ stream: Readable; length: number } | undefined> {
    if (!sha256Pattern.test(sha256)) return undefined;
    const key = BlobArtifactStore.key(sha256);
    const head = await this.#blobs.head(key);
    const bytes = head === undefined ? undefined : await this.#blobs.read(key);
    if (head === undefined || bytes === undefined) return this.#legacy?.open(sha256);
    return { stream: bytes instanceof Readable ? bytes : Readable.from(bytes), length: head.length };
  }

  async presignGet(sha256: string, expiresInSeconds: number): Promise<string | undefined> {
    if (!sha256Pattern.test(sha256)) return undefined;
    const key = BlobArtifactStore.key(sha256);
    if ((await this.#blobs.head(key)) === undefined) await this.#migrateLegacy(sha256);
    if ((await this.#blobs.head(key)) === undefined) return undefined;
    return this.#blobs.presign('GET', key, expiresInSeconds);
  }

  /** An artifact of an older data directory is copied into the blob store the first time a device needs its URL. */
  async #migrateLegacy(sha256: string): Promise<void> {
    const legacy = await this.#legacy?.open(sha256);
    if (legacy === undefined) return;
    await this.#blobs.put(BlobArtifactStore.key(sha256), legacy.stream as AsyncIterable<Uint8Array>, { bytesMax: legacy.length });
  }
}

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
