import type { KeyObject } from 'node:crypto';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { artifactKeyId, artifactPrivateKeyFromPem, generateArtifactKeyPair, rawPublicKey, type ArtifactKeyResolver } from '../../runtime/artifact-seal-node.js';
import { requirePrivateKeyFileMode } from '../../trust/key-files.js';
import { artifactKeyPath, loadOrCreateArtifactKey, type ArtifactKey } from './encrypted-artifacts.js';

/**
 * The control plane's artifact keys (docs/artifacts.md, "Key rotation"): the current X25519 key,
 * which new upload grants hand out (`D/keys/artifact.key`), and the retired ones, kept only to
 * open what was sealed to them (`D/keys/artifact-retired/<key id>.key`, 0600 in a 0700 directory,
 * like the other service keys). Every sealed upload names its key id in its header, so the ring
 * opens it with the right key, and refuses ARTIFACT_KEY_UNKNOWN once that key was removed.
 *
 * Rotation writes the current key into the retired directory first, then the new key over
 * `artifact.key` (atomically): a crash between the two leaves the old key both current and
 * retired, never lost. Other control plane processes on the same data directory read the files
 * again at each grant, listing and download, so they follow a rotation or removal made by one of them.
 */
export interface HeldArtifactKey extends ArtifactKey {
  readonly keyId: string;
}

/** Retired keys kept at most: a bound on the ring (and on the keys tried for an old version 1 upload). */
export const artifactRetiredKeysMax = 16;

export function retiredArtifactKeyDirectory(dataDir: string): string {
  return join(dataDir, 'keys', 'artifact-retired');
}

const keyFilePattern = /^([0-9a-f]{16})\.key$/;

function held(key: ArtifactKey): HeldArtifactKey {
  return { ...key, keyId: artifactKeyId(key.publicKey) };
}

export class ArtifactKeyRing {
  readonly #dataDir: string | undefined;
  #current: HeldArtifactKey;
  #retired = new Map<string, HeldArtifactKey>();
  /**
   * The keys of the last refresh by the PEM text they were read from: a refresh (at every grant
   * and download) rebuilds only a key whose file changed, since a KeyObject costs about 0.7 ms and
   * a full ring holds 17. Holds only the keys on disk at the last refresh, so it is bounded as the ring is.
   */
  #heldByPem = new Map<string, HeldArtifactKey>();
  /** Rotations and removals one at a time in this process. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dataDir: string | undefined, current: ArtifactKey) {
    this.#dataDir = dataDir;
    this.#current = held(current);
  }

  /** The ring of a data directory: the current key (made when missing) and every retired key on disk. */
  static async load(dataDir: string): Promise<ArtifactKeyRing> {
    const ring = new ArtifactKeyRing(dataDir, await loadOrCreateArtifactKey(dataDir));
    await ring.refresh();
    return ring;
  }

  /** A ring held in memory only (tests, and callers that pass one key): rotations are not written anywhere. */
  static inMemory(current: ArtifactKey): ArtifactKeyRing {
    return new ArtifactKeyRing(undefined, current);
  }

  get current(): HeldArtifactKey {
    return this.#current;
  }

  /** Key ids, the current one first, then the retired ones in key id order. */
  list(): Array<{ key_id: string; current: boolean }> {
    return [{ key_id: this.#current.keyId, current: true }, ...[...this.#retired.keys()].sort().map((keyId) => ({ key_id: keyId, current: false }))];
  }

  /** Reads the current and retired keys from the data directory again (another process may have rotated). */
  async refresh(): Promise<void> {
    if (this.#dataDir === undefined) return;
    const heldByPem = new Map<string, HeldArtifactKey>();
    const heldFrom = (pem: string): HeldArtifactKey => {
      const key = this.#heldByPem.get(pem) ?? held(fromPem(pem));
      heldByPem.set(pem, key);
      return key;
    };
    const currentPem = await readFile(artifactKeyPath(this.#dataDir), 'utf8');
    await requirePrivateKeyFileMode(artifactKeyPath(this.#dataDir));
    const current = heldFrom(currentPem);
    const retired = new Map<string, HeldArtifactKey>();
    const directory = retiredArtifactKeyDirectory(this.#dataDir);
    const names = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    for (const name of names.sort().slice(0, artifactRetiredKeysMax + 1)) {
      const keyId = keyFilePattern.exec(name)?.[1];
      if (keyId === undefined || keyId === current.keyId) continue;
      const path = join(directory, name);
      await requirePrivateKeyFileMode(path);
      const key = heldFrom(await readFile(path, 'utf8'));
      // A file named for another key than it holds is not trusted to be that key.
      if (key.keyId === keyId) retired.set(keyId, key);
    }
    this.#current = current;
    this.#retired = retired;
    this.#heldByPem = heldByPem;
  }

  /** The private keys that may open an upload whose header names `keyId` (all of them for a version 1 header without one). */
  resolver(): ArtifactKeyResolver {
    return async (keyId) => {
      // From the files at each open (rare: an operator's download), so a key removed or rotated by another process counts at once.
      await this.refresh();
      if (keyId === undefined) return this.#all().map((key) => key.privateKey);
      const found = this.#find(keyId);
      if (found === undefined) throw new SdcError('ARTIFACT_KEY_UNKNOWN', `no artifact key ${keyId} is held here (removed after a rotation, or never this control plane's)`, { keyId });
      return [found.privateKey];
    };
  }

  /** A new current key; the old one is retired (still opens what was sealed to it). */
  rotate(): Promise<{ retired: string; current: string }> {
    return this.#serialized(async () => {
      await this.refresh();
      if (this.#retired.size >= artifactRetiredKeysMax) {
        throw new SdcError('ARTIFACT_KEY_RING_FULL', `${this.#retired.size} retired artifact keys are held, the most kept: remove one first`, { retiredMax: artifactRetiredKeysMax });
      }
      const old = this.#current;
      const next = generateArtifactKeyPair();
      if (this.#dataDir !== undefined) {
        const directory = retiredArtifactKeyDirectory(this.#dataDir);
        await ensurePrivateDirectory(directory);
        await writeFileAtomic(join(directory, `${old.keyId}.key`), String(old.privateKey.export({ format: 'pem', type: 'pkcs8' })), { mode: privateFileMode });
        await writeFileAtomic(artifactKeyPath(this.#dataDir), next.privateKeyPem, { mode: privateFileMode });
      }
      this.#retired.set(old.keyId, old);
      this.#current = held(fromPem(next.privateKeyPem));
      return { retired: old.keyId, current: this.#current.keyId };
    });
  }

  /** Forgets a retired key: uploads sealed to it no longer open (ARTIFACT_KEY_UNKNOWN). */
  remove(keyId: string): Promise<void> {
    return this.#serialized(async () => {
      await this.refresh();
      if (keyId === this.#current.keyId) throw new SdcError('ARTIFACT_KEY_IN_USE', `artifact key ${keyId} is the current key: rotate first`, { keyId });
      if (!this.#retired.has(keyId)) throw new SdcError('ARTIFACT_KEY_UNKNOWN', `no retired artifact key ${keyId}`, { keyId });
      if (this.#dataDir !== undefined) await unlink(join(retiredArtifactKeyDirectory(this.#dataDir), `${keyId}.key`));
      this.#retired.delete(keyId);
    });
  }

  #all(): HeldArtifactKey[] {
    return [this.#current, ...this.#retired.values()];
  }

  #find(keyId: string): HeldArtifactKey | undefined {
    return keyId === this.#current.keyId ? this.#current : this.#retired.get(keyId);
  }

  #serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function fromPem(pem: string): ArtifactKey {
  const privateKey: KeyObject = artifactPrivateKeyFromPem(pem);
  return { privateKey, publicKey: rawPublicKey(privateKey) };
}
