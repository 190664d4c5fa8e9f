import { SdcError } from '../../core/errors/index.js';
import type { TufFileStore } from '../tuf/driver.js';
import type { StagingStore, StagingWriter } from './download-ports.js';

/**
 * The staging port in memory, for the simulator's devices and tests: no file is read or written.
 * It is also the mock kernel's ArtifactSource (`read`), so STAGE reads the verified artifact the
 * update runner downloaded, as the real kernel reads the agent's file. Bounded: at most
 * `filesMax` files and `bytesMax` bytes in all (a write past either is TUF_LOCAL_STORE, as a
 * full disk would fail it).
 */
export interface MemoryStagingLimits {
  readonly filesMax: number;
  readonly bytesMax: number;
}

/** Enough for one update in progress: the partial, its state, the artifact, and an older artifact. */
export const memoryStagingDefaults: MemoryStagingLimits = { filesMax: 8, bytesMax: 64 * 1024 * 1024 };

interface Held {
  bytes: Uint8Array;
  length: number;
}

export class MemoryStagingStore implements StagingStore {
  readonly #files = new Map<string, Held>();
  readonly #limits: MemoryStagingLimits;
  #bytesHeld = 0;

  constructor(limits: MemoryStagingLimits = memoryStagingDefaults) {
    this.#limits = limits;
  }

  /** The mock kernel's ArtifactSource: the file's bytes, undefined when there is none. */
  read(path: string): Uint8Array | undefined {
    const held = this.#files.get(path);
    return held === undefined ? undefined : held.bytes.subarray(0, held.length);
  }

  async readText(path: string): Promise<string | undefined> {
    const bytes = this.read(path);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  async writeText(path: string, text: string): Promise<void> {
    const bytes = new TextEncoder().encode(text);
    this.#replace(path, { bytes, length: bytes.length });
  }

  async size(path: string): Promise<number> {
    return this.#files.get(path)?.length ?? 0;
  }

  async open(path: string, options: { readonly truncate: boolean }): Promise<StagingWriter> {
    if (options.truncate || !this.#files.has(path)) this.#replace(path, { bytes: new Uint8Array(0), length: 0 });
    return {
      write: async (chunk, position) => this.#write(path, chunk, position),
      sync: async () => undefined,
      close: async () => undefined,
    };
  }

  async chunks(path: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    const bytes = this.read(path);
    return bytes === undefined ? undefined : (async function* () { yield bytes; })();
  }

  async rename(from: string, to: string): Promise<void> {
    const held = this.#files.get(from);
    if (held === undefined) throw new SdcError('TUF_LOCAL_STORE', `cannot rename ${from}: no such file`, { file: from });
    this.#files.delete(from);
    this.#bytesHeld -= held.bytes.length;
    this.#replace(to, held);
  }

  async remove(path: string): Promise<void> {
    const held = this.#files.get(path);
    if (held === undefined) return;
    this.#files.delete(path);
    this.#bytesHeld -= held.bytes.length;
  }

  async ensureDirectory(): Promise<void> {
    // Paths are keys here: there is no folder to make.
  }

  /**
   * The TUF client's target directory `directory` as a view of this store, so an artifact the TUF
   * workflow downloads (a notice without a presigned URL) lands where the kernel reads it, as
   * directoryStore(targetsDir) and the staging files coincide on the real agent.
   */
  tufView(directory: string): TufFileStore {
    const pathOf = (fileName: string) => `${directory}/${fileName}`;
    return {
      read: async (fileName) => this.read(pathOf(fileName))?.slice(),
      write: async (fileName, bytes) => this.#replace(pathOf(fileName), { bytes: bytes.slice(), length: bytes.length }),
      delete: async (fileName) => this.remove(pathOf(fileName)),
    };
  }

  /** Bytes held in all (tests, and the simulator's memory figure). */
  get bytesHeld(): number {
    return this.#bytesHeld;
  }

  #replace(path: string, held: Held): void {
    const previous = this.#files.get(path);
    const added = held.bytes.length - (previous?.bytes.length ?? 0);
    if (previous === undefined && this.#files.size >= this.#limits.filesMax) throw full(path, `more than ${this.#limits.filesMax} files`);
    if (this.#bytesHeld + added > this.#limits.bytesMax) throw full(path, `more than ${this.#limits.bytesMax} bytes`);
    this.#files.set(path, held);
    this.#bytesHeld += added;
  }

  /** Writes at `position`, growing the buffer by doubling (a download appends chunk after chunk). */
  #write(path: string, chunk: Uint8Array, position: number): void {
    const held = this.#files.get(path);
    if (held === undefined) throw new SdcError('TUF_LOCAL_STORE', `cannot write ${path}: it was removed while open`, { file: path });
    if (position > held.length) throw new SdcError('TUF_LOCAL_STORE', `cannot write ${path} at ${position}: it holds ${held.length} bytes`, { file: path });
    const end = position + chunk.length;
    if (end > held.bytes.length) {
      const grown = new Uint8Array(Math.max(end, held.bytes.length * 2, 4096));
      grown.set(held.bytes.subarray(0, held.length));
      if (this.#bytesHeld + grown.length - held.bytes.length > this.#limits.bytesMax) throw full(path, `more than ${this.#limits.bytesMax} bytes`);
      this.#bytesHeld += grown.length - held.bytes.length;
      held.bytes = grown;
    }
    held.bytes.set(chunk, position);
    held.length = Math.max(held.length, end);
  }
}

function full(path: string, what: string): SdcError {
  return new SdcError('TUF_LOCAL_STORE', `cannot write ${path}: the staging store would hold ${what}`, { file: path });
}
